#pragma once
// One PromiseWorker per blocking operation. Run() executes on a thread of its own, not on libuv's
// pool: a generation spends most of its life waiting for the compute thread, and four sessions
// holding the pool's four threads would stall the application's file system, DNS, zlib and crypto
// work for as long as they generate. Every C++ exception becomes a rejected promise with a stable
// `code`; the outcome reaches the JS thread through the environment's CompletionQueue.
#include <napi.h>

#include <exception>
#include <new>
#include <string>
#include <system_error>
#include <thread>

#include "abort_handle.h"
#include "addon_data.h"
#include "completion_queue.h"
#include "errors.h"
#include "rpc.h"

namespace llava {

class PromiseWorker : public Completion {
 public:
  // `abort` is the operation's cancellation flag; the environment's cleanup sets it on teardown.
  PromiseWorker(Napi::Env env, const char* name, AbortFlag abort)
      : env_(env),
        name_(name),
        deferred_(Napi::Promise::Deferred::New(env)),
        registry_(AddonData::Of(env)->work),
        completions_(AddonData::Of(env)->completions),
        flag_(std::move(abort)) {
    registry_->Begin(flag_);
  }

  // A worker that never started (a subclass constructor threw) still ends its registration.
  ~PromiseWorker() override {
    if (!ended_) registry_->End(flag_, [] {});
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  // Starts the operation. From here on the worker owns itself: it is deleted once settled.
  void Queue() {
    completions_->Hold(env_);
    try {
      std::thread([this] { Execute(); }).detach();
    } catch (const std::system_error& e) {
      Fail("ERR_INTERNAL", std::string("could not start a thread for ") + name_ + ": " + e.what());
      Finish();
    }
  }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  // Delivers what thread-safe callbacks have not delivered yet (progress, streamed pieces), so
  // that JS sees all of it before the promise settles. Runs on the JS thread, success or not.
  virtual void Flush(Napi::Env) {}

  Napi::Env Env() const { return env_; }

  // The operation works on a model with layers on RPC servers: it is refused when one of their
  // connections has failed, and its outcome becomes ERR_RPC when one fails while it runs (the
  // failed connection's calls had no effect, so nothing it computed can be trusted).
  void GuardRpc(std::shared_ptr<RpcLink> link) { rpc_ = std::move(link); }

 private:
  void Execute() {
    try {
      if (rpc_) rpc_->Check();
      Run();
      if (rpc_) rpc_->Check();
    } catch (const NativeError& e) {
      Fail(e.code, e.what());
    } catch (const std::bad_alloc&) {
      Fail("ERR_OUT_OF_MEMORY", std::string("out of memory in ") + name_);
    } catch (const std::exception& e) {
      Fail("ERR_INTERNAL", e.what());
    } catch (...) {
      Fail("ERR_INTERNAL", "unknown native error");
    }
    if (failed_ && rpc_ && code_ != "ERR_RPC") {
      try {
        rpc_->Check();
      } catch (const NativeError& e) {
        Fail(e.code, e.what());
      }
    }
    Finish();
  }

  void Fail(std::string code, std::string message) {
    failed_ = true;
    code_ = std::move(code);
    message_ = std::move(message);
  }

  // The last thing the operation's thread does: once posted, the JS thread may settle and delete
  // this worker at any moment, so nothing of it is touched afterwards. If the environment gave up
  // waiting for this thread (teardown), the worker is left alone rather than touched off-thread.
  void Finish() {
    ended_ = true;
    RegistryPtr registry = registry_;
    CompletionQueuePtr completions = completions_;
    AbortFlag flag = flag_;
    registry->End(flag, [&] { completions->Post(this); });
  }

  // Nothing may throw out of here: a dying environment makes every N-API call fail.
  void Settle(Napi::Env env) final {
    if (registry_->terminating()) return;
    Napi::HandleScope scope(env);
    try {
      Flush(env);
    } catch (...) {
    }
    if (failed_) {
      try {
        deferred_.Reject(MakeError(env, code_, message_).Value());
      } catch (...) {
      }
      return;
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

  Napi::Env env_;
  const char* name_;
  Napi::Promise::Deferred deferred_;
  RegistryPtr registry_;
  CompletionQueuePtr completions_;
  AbortFlag flag_;
  std::shared_ptr<RpcLink> rpc_;
  bool failed_ = false;
  bool ended_ = false;
  std::string code_ = "ERR_INTERNAL";
  std::string message_;
};

}  // namespace llava
