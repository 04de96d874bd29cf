#pragma once
// Values produced on a worker thread for a JS callback (load progress, streamed pieces). They
// queue here; one thread-safe call at a time carries everything queued so far, so a JS thread
// slower than the producer gets batches instead of a backlog of calls. Flush() delivers the rest
// synchronously before the operation's promise settles.
//
// Calls carry no data of their own (the queue is the thread-safe function's context): when a
// worker_thread is torn down, Node drops pending calls without running them, and nothing of ours
// is lost with them; the queue is freed by the finalizer.
#include <napi.h>

#include <memory>
#include <mutex>
#include <vector>

namespace llava {

template <typename T>
class BatchedCallback {
 public:
  using DeliverFn = void (*)(Napi::Env, Napi::Function, std::vector<T>);

  BatchedCallback(Napi::Env env, const Napi::Value& fn, const char* name, DeliverFn deliver) {
    if (!fn.IsFunction()) return;
    queue_->deliver = deliver;
    auto* context = new std::shared_ptr<Queue>(queue_);
    if (napi_create_threadsafe_function(env, fn, nullptr, Napi::String::New(env, name), 0, 1, context, &Finalize, context, &CallJs, &tsfn_) !=
        napi_ok) {
      delete context;
      throw Napi::Error::New(env, std::string("could not create the callback queue ") + name);
    }
    fn_ = Napi::Persistent(fn.As<Napi::Function>());
    active_ = true;
  }

  ~BatchedCallback() {
    if (!active_) return;
    std::lock_guard<std::mutex> lock(queue_->mutex);
    if (!queue_->closed) napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
  }

  // Any thread.
  void Push(T value) {
    if (!active_) return;
    // The call is made under the lock so that the finalizer cannot run in between.
    std::lock_guard<std::mutex> lock(queue_->mutex);
    if (queue_->closed) return;
    queue_->items.push_back(std::move(value));
    if (queue_->scheduled) return;
    if (napi_call_threadsafe_function(tsfn_, nullptr, napi_tsfn_nonblocking) == napi_ok) queue_->scheduled = true;
  }

  // JS thread.
  void Flush(Napi::Env env) {
    if (active_) queue_->deliver(env, fn_.Value(), queue_->Take());
  }

 private:
  // Shared with the thread-safe function, which may outlive this object.
  struct Queue {
    std::mutex mutex;
    std::vector<T> items;
    DeliverFn deliver = nullptr;
    bool scheduled = false;
    bool closed = false;
    std::vector<T> Take() {
      std::lock_guard<std::mutex> lock(mutex);
      scheduled = false;
      return std::move(items);
    }
  };

  // JS thread. Both are null when Node drops the call at teardown.
  static void CallJs(napi_env env, napi_value fn, void* context, void*) {
    if (env == nullptr || fn == nullptr) return;
    std::shared_ptr<Queue>& queue = *static_cast<std::shared_ptr<Queue>*>(context);
    try {
      queue->deliver(Napi::Env(env), Napi::Function(env, fn), queue->Take());
    } catch (...) {
      // lib/ wraps user callbacks; nothing thrown here may reach the worker.
    }
  }

  // Node finalizes the function when it is released or the environment is torn down, possibly
  // while the producer thread still runs; after that it must not be called at all.
  static void Finalize(napi_env, void* data, void*) {
    std::unique_ptr<std::shared_ptr<Queue>> owned(static_cast<std::shared_ptr<Queue>*>(data));
    std::lock_guard<std::mutex> lock((*owned)->mutex);
    (*owned)->closed = true;
  }

  std::shared_ptr<Queue> queue_ = std::make_shared<Queue>();
  napi_threadsafe_function tsfn_ = nullptr;
  Napi::FunctionReference fn_;
  bool active_ = false;
};

}  // namespace llava
