#pragma once
// Every ggml graph computation of the process runs on one long-lived thread.
//
// ggml parallelises with OpenMP, and libgomp keeps a thread team per OS thread that starts
// parallel work. Operations run on threads of their own, so each of them would grow a team; once the
// teams together outnumber the CPUs, libgomp stops spinning between operations and every barrier
// sleeps on a futex: generation measured 13x slower per token on a tiny model and up to 25% slower
// on a 1.1B one after a few calls. Funnelling computation through one thread keeps one team, as in
// llama.cpp's own tools. Work from several sessions interleaves call by call (FIFO).
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>

namespace llava {

class ComputeThread {
 public:
  // Queues f on the compute thread and returns at once; for releasing backend resources from
  // whatever thread drops the last reference, without waiting for running work.
  static void Post(std::function<void()> f) {
    ComputeThread& self = Instance();
    if (std::this_thread::get_id() == self.id_) return f();
    {
      std::lock_guard<std::mutex> lock(self.mutex_);
      self.queue_.emplace_back(std::move(f));
    }
    self.cv_.notify_one();
  }

  // Runs f on the compute thread and returns its result (or rethrows its exception). Calls made
  // from the compute thread itself run inline.
  template <typename F>
  static auto Run(F&& f) -> std::invoke_result_t<F> {
    using R = std::invoke_result_t<F>;
    ComputeThread& self = Instance();
    if (std::this_thread::get_id() == self.id_) return f();
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(f));
    std::future<R> result = task->get_future();
    {
      std::lock_guard<std::mutex> lock(self.mutex_);
      self.queue_.emplace_back([task] { (*task)(); });
    }
    self.cv_.notify_one();
    return result.get();
  }

 private:
  ComputeThread() {
    std::thread t([this] { Loop(); });
    id_ = t.get_id();
    t.detach();  // lives as long as the process; never joined, so exit cannot block on it
  }

  static ComputeThread& Instance() {
    static ComputeThread* instance = new ComputeThread();  // never destroyed (see the thread)
    return *instance;
  }

  void Loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::thread::id id_;
};

}  // namespace llava
