// The choice of files for `hf:owner/repo[:tag]` is llama.cpp's, not a re-implementation: the
// listing travels to common_download_get_hf_plan_from_files (deps/patches/0009), which is what
// llama-cli and llama-server call after fetching the same listing.
#include "hub_plan.h"

#include <string>
#include <vector>

#include "common.h"
#include "download.h"
#include "errors.h"
#include "promise_worker.h"

namespace llava {

namespace {

class HubPlanWorker : public PromiseWorker {
 public:
  HubPlanWorker(Napi::Env env, std::vector<std::string> files, std::string repo, std::string file, bool mmproj)
      : PromiseWorker(env, "llava.hubPlan", nullptr), files_(std::move(files)), repo_(std::move(repo)), file_(std::move(file)), mmproj_(mmproj) {}

 protected:
  void Run() override {
    hf_cache::hf_files all;
    all.reserve(files_.size());
    for (auto& p : files_) {
      hf_cache::hf_file f;
      f.path = p;
      f.local_path = p;  // the plan reports which files; where they live is the caller's business
      all.push_back(std::move(f));
    }
    common_params_model model;
    model.hf_repo = repo_;
    model.hf_file = file_;
    common_download_opts opts;
    opts.download_mmproj = mmproj_;
    try {
      plan_ = common_download_get_hf_plan_from_files(all, model, opts);
    } catch (const std::exception& e) {
      // A tag is spliced into a std::regex; the TS layer admits only [A-Za-z0-9_.-], this is the backstop.
      Throw("ERR_INVALID_ARGUMENT", std::string("llama.cpp could not use this repository or tag: ") + e.what());
    }
  }

  Napi::Value Result(Napi::Env env) override {
    auto orNull = [&](const hf_cache::hf_file& f) -> Napi::Value {
      return f.path.empty() ? env.Null() : Napi::String::New(env, f.path);
    };
    Napi::Object out = Napi::Object::New(env);
    out.Set("primary", orNull(plan_.primary));
    Napi::Array parts = Napi::Array::New(env, plan_.model_files.size());
    for (size_t i = 0; i < plan_.model_files.size(); i++) parts.Set(static_cast<uint32_t>(i), plan_.model_files[i].path);
    out.Set("modelFiles", parts);
    out.Set("mmproj", orNull(plan_.mmproj));
    out.Set("preset", orNull(plan_.preset));
    return out;
  }

 private:
  std::vector<std::string> files_;
  std::string repo_;
  std::string file_;
  bool mmproj_;
  common_download_hf_plan plan_;
};

}  // namespace

Napi::Value HubPlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsArray() || !info[1].IsString() || !info[2].IsString() || !info[3].IsBoolean()) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "hubPlan(files, repoWithTag, file, mmproj) expected");
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<std::string> files;
  files.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsString()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "hubPlan: every file must be a string");
    files.push_back(v.As<Napi::String>().Utf8Value());
  }
  auto* w = new HubPlanWorker(env, std::move(files), info[1].As<Napi::String>().Utf8Value(),
                              info[2].As<Napi::String>().Utf8Value(), info[3].As<Napi::Boolean>().Value());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace llava
