#pragma once
// Carries finished operations from their threads back to the JS thread, one queue per environment.
// It keeps the event loop alive only while operations are in flight, like pending libuv work does.
//
// Teardown order matters: the queue is created before the work registry's cleanup hook is added,
// so that hook (abort everything, wait for the threads) runs first, and the queue's own cleanup
// (Node finalizes the thread-safe function) runs after every thread has made its last call. What
// is still queued then is freed by the finalizer, on the JS thread: an operation holds its model,
// and must not leak with it when a worker_thread is terminated.
#include <napi.h>

#include <memory>
#include <mutex>
#include <vector>

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
    // Calls without data run this function, so Node never holds an allocation of ours in its
    // queue: at teardown it drops queued calls unrun.
    Napi::Function drain = Napi::Function::New(
        env,
        [this](const Napi::CallbackInfo& info) {
          Drain(info.Env());
          return info.Env().Undefined();
        },
        "llava.complete");
    std::shared_ptr<Pending> pending = pending_;
    tsfn_ = Napi::ThreadSafeFunction::New(env, drain, "llava.complete", 0, 1, [pending](Napi::Env) {
      std::vector<Completion*> left;
      {
        std::lock_guard<std::mutex> lock(pending->mutex);
        pending->closed = true;
        left.swap(pending->items);
      }
      for (Completion* c : left) delete c;
    });
    tsfn_.Unref(env);
  }

  // JS thread: an operation has started.
  void Hold(Napi::Env env) {
    if (held_++ == 0) tsfn_.Ref(env);
  }

  // Any thread. Ownership of `c` passes to the queue; false if it could not take it (the
  // environment is closing), in which case the caller still owns it.
  bool Post(Completion* c) {
    std::lock_guard<std::mutex> lock(pending_->mutex);
    if (pending_->closed) return false;
    pending_->items.push_back(c);
    if (pending_->scheduled) return true;
    if (tsfn_.NonBlockingCall() != napi_ok) {
      pending_->items.pop_back();
      return false;
    }
    pending_->scheduled = true;
    return true;
  }

 private:
  struct Pending {
    std::mutex mutex;
    std::vector<Completion*> items;
    bool scheduled = false;
    bool closed = false;
  };

  // JS thread.
  void Drain(Napi::Env env) {
    std::vector<Completion*> items;
    {
      std::lock_guard<std::mutex> lock(pending_->mutex);
      pending_->scheduled = false;
      items.swap(pending_->items);
    }
    for (Completion* c : items) {
      std::unique_ptr<Completion> owned(c);
      try {
        owned->Settle(env);
      } catch (...) {
      }
      if (--held_ == 0) tsfn_.Unref(env);
    }
  }

  std::shared_ptr<Pending> pending_ = std::make_shared<Pending>();
  Napi::ThreadSafeFunction tsfn_;
  size_t held_ = 0;  // JS thread only
};

using CompletionQueuePtr = std::shared_ptr<CompletionQueue>;

}  // namespace llava
