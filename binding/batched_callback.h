#pragma once
// Values produced on a worker thread for a JS callback (load progress, streamed pieces). They
// queue here; one thread-safe call at a time carries everything queued so far, so a JS thread
// slower than the producer gets batches instead of a backlog of calls. Flush() delivers the rest
// synchronously before the operation's promise settles.
#include <napi.h>

#include <memory>
#include <mutex>
#include <vector>

namespace llava {

template <typename T>
class BatchedCallback {
 public:
  using DeliverFn = void (*)(Napi::Env, Napi::Function, std::vector<T>);

  BatchedCallback(Napi::Env env, const Napi::Value& fn, const char* name, DeliverFn deliver) : deliver_(deliver) {
    if (!fn.IsFunction()) return;
    // Node finalizes the function when the environment is torn down, possibly while the producer
    // thread still runs; after that it must not be called at all.
    tsfn_ = Napi::ThreadSafeFunction::New(env, fn.As<Napi::Function>(), name, 0, 1, [q = queue_](Napi::Env) {
      std::lock_guard<std::mutex> lock(q->mutex);
      q->closed = true;
    });
    fn_ = Napi::Persistent(fn.As<Napi::Function>());
    active_ = true;
  }

  ~BatchedCallback() {
    if (!active_) return;
    std::lock_guard<std::mutex> lock(queue_->mutex);
    if (!queue_->closed) tsfn_.Release();
  }

  // Any thread.
  void Push(T value) {
    if (!active_) return;
    // The call is made under the lock so that the finalizer cannot run in between.
    std::lock_guard<std::mutex> lock(queue_->mutex);
    if (queue_->closed) return;
    queue_->items.push_back(std::move(value));
    if (queue_->scheduled) return;
    auto* q = new std::shared_ptr<Queue>(queue_);
    const DeliverFn deliver = deliver_;
    napi_status st = tsfn_.NonBlockingCall(q, [deliver](Napi::Env env, Napi::Function fn, std::shared_ptr<Queue>* data) {
      std::unique_ptr<std::shared_ptr<Queue>> owned(data);
      if (env == nullptr) return;
      try {
        deliver(env, fn, (*owned)->Take());
      } catch (...) {
        // lib/ wraps user callbacks; nothing thrown here may reach the worker.
      }
    });
    if (st == napi_ok) {
      queue_->scheduled = true;
    } else {
      delete q;
    }
  }

  // JS thread.
  void Flush(Napi::Env env) {
    if (active_) deliver_(env, fn_.Value(), queue_->Take());
  }

 private:
  // Shared with calls still in flight, which may run after this object is gone.
  struct Queue {
    std::mutex mutex;
    std::vector<T> items;
    bool scheduled = false;
    bool closed = false;
    std::vector<T> Take() {
      std::lock_guard<std::mutex> lock(mutex);
      scheduled = false;
      return std::move(items);
    }
  };

  std::shared_ptr<Queue> queue_ = std::make_shared<Queue>();
  Napi::ThreadSafeFunction tsfn_;
  Napi::FunctionReference fn_;
  DeliverFn deliver_;
  bool active_ = false;
};

}  // namespace llava
