#pragma once
// One AsyncWorker per blocking operation: Run() executes on libuv's thread pool and may throw;
// every C++ exception becomes a rejected promise with a stable `code`.
#include <napi.h>

#include <exception>
#include <new>
#include <string>

#include "errors.h"

namespace llava {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

  void Execute() final {
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

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(MakeError(env, "ERR_INTERNAL", e.what()).Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    deferred_.Reject(MakeError(env, code_, e.Message()).Value());
  }

  std::string code_ = "ERR_INTERNAL";
  Napi::Promise::Deferred deferred_;
};

}  // namespace llava
