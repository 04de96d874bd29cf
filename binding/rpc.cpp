#include "rpc.h"

#include <algorithm>
#include <cstring>

#include "errors.h"
#include "promise_worker.h"

#if defined(__linux__)
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>
#endif

namespace llava {
namespace {

// ggml-rpc's entry points, looked up through the backend registry: the backend is linked in
// (static builds) or a module next to the addon (portable builds), and this works for both.
struct RpcFns {
  ggml_backend_reg_t (*addServer)(const char*) = nullptr;
  void (*setTimeouts)(const char*, uint32_t, uint32_t) = nullptr;
  uint64_t (*getFailures)(const char*, char*, size_t) = nullptr;
  void (*startServer)(const char*, const char*, size_t, size_t, ggml_backend_dev_t*) = nullptr;
};

const RpcFns* Fns() {
  static const RpcFns* fns = [] () -> const RpcFns* {
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("RPC");
    if (!reg) return nullptr;
    auto* f = new RpcFns();
    f->addServer = reinterpret_cast<decltype(f->addServer)>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_add_server"));
    f->setTimeouts = reinterpret_cast<decltype(f->setTimeouts)>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_set_timeouts"));
    f->getFailures = reinterpret_cast<decltype(f->getFailures)>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_get_failures"));
    f->startServer = reinterpret_cast<decltype(f->startServer)>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_start_server"));
    // all four, or the backend is not the patched one: without failure reports it would abort
    if (!f->addServer || !f->setTimeouts || !f->getFailures || !f->startServer) return nullptr;
    return f;
  }();
  return fns;
}

const RpcFns& Require() {
  const RpcFns* f = Fns();
  if (!f) Throw("ERR_RPC", "this build of llava-native has no RPC backend");
  return *f;
}

uint64_t Failures(const std::string& endpoint, std::string* last = nullptr) {
  char buf[512];
  const uint64_t n = Require().getFailures(endpoint.c_str(), buf, sizeof(buf));
  if (last) *last = buf;
  return n;
}

class DevicesWorker : public PromiseWorker {
 public:
  DevicesWorker(Napi::Env env, std::vector<std::string> endpoints, RpcTimeouts timeouts)
      : PromiseWorker(env, "llava.rpcDevices", nullptr), endpoints_(std::move(endpoints)), timeouts_(timeouts), link_(endpoints_) {}

 protected:
  void Run() override {
    std::vector<ggml_backend_dev_t> devs = ConnectRpcServers(endpoints_, timeouts_);
    for (ggml_backend_dev_t dev : devs) {
      Row r;
      r.name = ggml_backend_dev_name(dev);
      r.endpoint = RpcEndpointOf(dev);
      ggml_backend_dev_memory(dev, &r.free, &r.total);
      rows_.push_back(std::move(r));
    }
    // the memory queries went over the wire too
    const std::string failure = link_.NewFailure();
    if (!failure.empty()) Throw("ERR_RPC", failure);
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array out = Napi::Array::New(env, rows_.size());
    for (size_t i = 0; i < rows_.size(); i++) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("name", rows_[i].name);
      d.Set("description", rows_[i].endpoint);
      d.Set("type", "rpc");
      d.Set("endpoint", rows_[i].endpoint);
      d.Set("memoryFree", static_cast<double>(rows_[i].free));
      d.Set("memoryTotal", static_cast<double>(rows_[i].total));
      out.Set(static_cast<uint32_t>(i), d);
    }
    return out;
  }

 private:
  struct Row {
    std::string name, endpoint;
    size_t free = 0, total = 0;
  };
  std::vector<std::string> endpoints_;
  RpcTimeouts timeouts_;
  std::vector<Row> rows_;
  RpcLink link_;  // failures from before this call are not its own
};

}  // namespace

bool RpcAvailable() { return Fns() != nullptr; }

RpcLink::RpcLink(std::vector<std::string> endpoints) : endpoints_(std::move(endpoints)) {
  for (const std::string& e : endpoints_) baseline_.push_back(Failures(e));
}

std::string RpcLink::NewFailure() const {
  for (size_t i = 0; i < endpoints_.size(); i++) {
    std::string last;
    if (Failures(endpoints_[i], &last) > baseline_[i]) return "the RPC server at " + endpoints_[i] + " failed (" + last + ")";
  }
  return std::string();
}

void RpcLink::Check() {
  if (!failed_.load()) {
    const std::string failure = NewFailure();
    if (!failure.empty()) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error_.empty()) error_ = failure + "; this model is unusable now: dispose() it and load it again once the server is back";
      failed_.store(true);
    }
  }
  if (failed_.load()) Throw("ERR_RPC", Error());
}

std::string RpcLink::Error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

std::vector<ggml_backend_dev_t> ConnectRpcServers(const std::vector<std::string>& endpoints, const RpcTimeouts& timeouts) {
  const RpcFns& f = Require();
  std::vector<ggml_backend_dev_t> devs;
  for (const std::string& e : endpoints) {
    f.setTimeouts(e.c_str(), timeouts.connectMs, timeouts.callMs);
    const uint64_t before = Failures(e);
    ggml_backend_reg_t reg = f.addServer(e.c_str());
    std::string last;
    const bool failed = Failures(e, &last) > before;
    if (!reg || failed) {
      Throw("ERR_RPC", "could not use the RPC server at " + e + ": " + (last.empty() ? std::string("it reports no devices") : last) +
                           ". Check that `llava-native rpc-server` (or llama.cpp's rpc-server of the same protocol version) runs there");
    }
    for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); i++) devs.push_back(ggml_backend_reg_dev_get(reg, i));
  }
  return devs;
}

std::string RpcEndpointOf(ggml_backend_dev_t dev) {
  ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
  if (!reg || std::strcmp(ggml_backend_reg_name(reg), "RPC") != 0) return std::string();
  return ggml_backend_dev_description(dev);
}

std::vector<std::string> ParseEndpoints(Napi::Env env, const Napi::Value& value) {
  std::vector<std::string> out;
  if (value.IsUndefined() || value.IsNull()) return out;
  if (!value.IsArray()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "rpcServers must be an array of 'host:port' strings");
  Napi::Array a = value.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsString()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "rpcServers must be an array of 'host:port' strings");
    out.push_back(v.As<Napi::String>().Utf8Value());
  }
  return out;
}

RpcTimeouts ParseTimeouts(const Napi::Value& value) {
  RpcTimeouts t;
  if (!value.IsObject()) return t;
  Napi::Object o = value.As<Napi::Object>();
  if (o.Get("connectMs").IsNumber()) t.connectMs = o.Get("connectMs").As<Napi::Number>().Uint32Value();
  if (o.Get("callMs").IsNumber()) t.callMs = o.Get("callMs").As<Napi::Number>().Uint32Value();
  return t;
}

Napi::Value RpcDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!RpcAvailable()) throw MakeError(env, "ERR_RPC", "this build of llava-native has no RPC backend");
  auto* w = new DevicesWorker(env, ParseEndpoints(env, info[0]), ParseTimeouts(info[1]));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value RpcServe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!RpcAvailable()) throw MakeError(env, "ERR_RPC", "this build of llava-native has no RPC backend");
  if (info.Length() < 1 || !info[0].IsObject()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "rpcServe() expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  const std::string endpoint = o.Get("host").ToString().Utf8Value() + ":" + std::to_string(o.Get("port").ToNumber().Int32Value());
  const std::string cacheDir = o.Get("cacheDir").IsString() ? o.Get("cacheDir").As<Napi::String>().Utf8Value() : std::string();
  const size_t threads = static_cast<size_t>(std::max(1, o.Get("threads").IsNumber() ? o.Get("threads").As<Napi::Number>().Int32Value() : 1));
  std::vector<ggml_backend_dev_t> devs;
  if (o.Get("devices").IsArray()) {
    Napi::Array names = o.Get("devices").As<Napi::Array>();
    for (uint32_t i = 0; i < names.Length(); i++) {
      const std::string name = names.Get(i).ToString().Utf8Value();
      ggml_backend_dev_t dev = ggml_backend_dev_by_name(name.c_str());
      if (!dev) throw MakeError(env, "ERR_INVALID_ARGUMENT", "no device named " + name + " in this build; see listDevices()");
      devs.push_back(dev);
    }
  }
  if (devs.empty()) {
    // as llama.cpp's rpc-server: the GPUs when there are any, else the CPU
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
      ggml_backend_dev_t d = ggml_backend_dev_get(i);
      if (ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_GPU || ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_IGPU) devs.push_back(d);
    }
    if (devs.empty()) devs.push_back(ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU));
  }
#if defined(__linux__)
  // A server process outlives no parent that started it (even one killed with SIGKILL): it blocks
  // in ggml's accept loop, where no JS could notice the parent gone.
  if (o.Get("parentPid").IsNumber()) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != o.Get("parentPid").As<Napi::Number>().Int32Value()) _exit(0);
  }
#endif
  Require().startServer(endpoint.c_str(), cacheDir.empty() ? nullptr : cacheDir.c_str(), threads, devs.size(), devs.data());
  // it returns only when it could not listen
  throw MakeError(env, "ERR_RPC", "could not serve on " + endpoint + " (is the port in use, or the address not this machine's?)");
}

}  // namespace llava
