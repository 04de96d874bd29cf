#pragma once
// One AsyncWorker per blocking operation: Run() executes on libuv's thread pool and may throw;
// every C++ exception becomes a rejected promise with a stable `code`.
#include <napi.h>

#include <exception>
#include <new>
#include <string>

#include "abort_handle.h"
#include "addon_data.h"
#include "errors.h"

namespace llava {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  // `abort` is the operation's cancellation flag; the environment's cleanup sets it on teardown.
  PromiseWorker(Napi::Env env, const char* name, AbortFlag abort)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        registry_(AddonData::Of(env)->work),
        flag_(std::move(abort)) {
    registry_->Begin(flag_);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  // Delivers what thread-safe callbacks have not delivered yet (progress, streamed pieces), so
  // that JS sees all of it before the promise settles. Runs on the JS thread, success or not.
  virtual void Flush(Napi::Env) {}

  void Execute() final {
    struct EndGuard {
      PromiseWorker* w;
      ~EndGuard() { w->EndOnce(); }
    } guard{this};
    try {
      Run();
    } catch (const NativeError& e) {
      code_ = e.code;
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "ERR_INTERNAL";
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = "ERR_INTERNAL";
      SetError(e.what());
    } catch (...) {
      code_ = "ERR_INTERNAL";
      SetError("unknown native error");
    }
  }

  // Work cancelled before it ran never reached Execute.
  ~PromiseWorker() override { EndOnce(); }

  void EndOnce() {
    if (ended_) return;
    ended_ = true;
    registry_->End(flag_);
  }

  // Nothing may throw out of these: a dying environment makes every N-API call fail.
  void OnOK() override {
    if (registry_->terminating()) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      Flush(env);
    } catch (...) {
    }
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      try {
        deferred_.Reject(e.Value());
      } catch (...) {
      }
    } catch (const std::exception& e) {
      try {
        deferred_.Reject(MakeError(env, "ERR_INTERNAL", e.what()).Value());
      } catch (...) {
      }
    } catch (...) {
    }
  }

  void OnError(const Napi::Error& e) override {
    if (registry_->terminating()) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      Flush(env);
    } catch (...) {
    }
    try {
      deferred_.Reject(MakeError(env, code_, e.Message()).Value());
    } catch (...) {
    }
  }

  std::string code_ = "ERR_INTERNAL";
  Napi::Promise::Deferred deferred_;
  RegistryPtr registry_;
  AbortFlag flag_;
  bool ended_ = false;
};

}  // namespace llava
