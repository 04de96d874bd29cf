#pragma once
// Carries finished operations from their threads back to the JS thread, one queue per environment.
// It keeps the event loop alive only while operations are in flight, like pending libuv work does.
//
// Teardown order matters: the queue is created before the work registry's cleanup hook is added,
// so that hook (abort everything, wait for the threads) runs first and the queue's own cleanup
// (Node closes the thread-safe function and hands over what is still queued, with a null env)
// runs after every thread has made its last call.
#include <napi.h>

#include <memory>

namespace llava {

// An operation's outcome, settled on the JS thread.
class Completion {
 public:
  virtual ~Completion() = default;
  // JS thread. Not called when the environment is being torn down.
  virtual void Settle(Napi::Env env) = 0;
};

class CompletionQueue {
 public:
  explicit CompletionQueue(Napi::Env env) {
    tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function(), "llava.complete", 0, 1);
    tsfn_.Unref(env);
  }

  // JS thread: an operation has started.
  void Hold(Napi::Env env) {
    if (held_++ == 0) tsfn_.Ref(env);
  }

  // Any thread. Ownership of `c` passes to the queue; false if it could not take it (the
  // environment is closing), in which case the caller still owns it.
  bool Post(Completion* c) {
    return tsfn_.NonBlockingCall(c, [this](Napi::Env env, Napi::Function, Completion* done) {
             // A null env means teardown: the queue may be gone, only the completion is freed.
             if (static_cast<napi_env>(env) == nullptr) {
               delete done;
               return;
             }
             Deliver(env, done);
           }) == napi_ok;
  }

 private:
  void Deliver(Napi::Env env, Completion* c) {
    std::unique_ptr<Completion> owned(c);
    try {
      owned->Settle(env);
    } catch (...) {
    }
    if (--held_ == 0) tsfn_.Unref(env);
  }

  Napi::ThreadSafeFunction tsfn_;
  size_t held_ = 0;  // JS thread only
};

using CompletionQueuePtr = std::shared_ptr<CompletionQueue>;

}  // namespace llava
