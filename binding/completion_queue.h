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
    // No JS function and no per-call data: Node never holds an allocation of ours in its queue
    // (at teardown it drops queued calls unrun), and the drain is a plain C++ call, so nothing
    // here calls into a JS engine that may be terminating.
    Napi::String name = Napi::String::New(env, "llava.complete");
    auto* pending = new std::shared_ptr<Pending>(pending_);
    napi_status st = napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, pending, &Finalize, this, &CallJs, &tsfn_);
    if (st != napi_ok) {
      delete pending;
      throw Napi::Error::New(env, "could not create the completion queue");
    }
    napi_unref_threadsafe_function(env, tsfn_);
  }

  // JS thread: an operation has started.
  void Hold(Napi::Env env) {
    if (held_++ == 0) napi_ref_threadsafe_function(env, tsfn_);
  }

  // Any thread. Ownership of `c` passes to the queue; false if it could not take it (the
  // environment is closing), in which case the caller still owns it.
  bool Post(Completion* c) {
    std::lock_guard<std::mutex> lock(pending_->mutex);
    if (pending_->closed) return false;
    pending_->items.push_back(c);
    if (pending_->scheduled) return true;
    if (napi_call_threadsafe_function(tsfn_, nullptr, napi_tsfn_nonblocking) != napi_ok) {
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

  // JS thread. `env` is null when Node drops the call at teardown.
  static void CallJs(napi_env env, napi_value, void* context, void*) {
    if (env == nullptr) return;
    static_cast<CompletionQueue*>(context)->Drain(Napi::Env(env));
  }

  // JS thread, once the environment is done with the function: whatever is still queued is freed.
  static void Finalize(napi_env, void* data, void*) {
    std::unique_ptr<std::shared_ptr<Pending>> owned(static_cast<std::shared_ptr<Pending>*>(data));
    std::vector<Completion*> left;
    {
      std::lock_guard<std::mutex> lock((*owned)->mutex);
      (*owned)->closed = true;
      left.swap((*owned)->items);
    }
    for (Completion* c : left) delete c;
  }

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
      if (--held_ == 0) napi_unref_threadsafe_function(env, tsfn_);
    }
  }

  std::shared_ptr<Pending> pending_ = std::make_shared<Pending>();
  napi_threadsafe_function tsfn_ = nullptr;
  size_t held_ = 0;  // JS thread only
};

using CompletionQueuePtr = std::shared_ptr<CompletionQueue>;

}  // namespace llava
