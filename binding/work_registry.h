#pragma once
// Work in flight per environment. When the environment goes away (process exit, a worker_thread
// terminated mid-generation) its cleanup hook aborts every running operation and waits for the
// native threads to let go, so nothing touches a dying environment or freed memory. The wait is
// bounded: a thread still running after it is abandoned, and its outcome is never delivered.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>

namespace llava {

class WorkRegistry {
 public:
  using Flag = std::shared_ptr<std::atomic<bool>>;

  void Begin(const Flag& flag) {
    std::lock_guard<std::mutex> lock(mutex_);
    running_++;
    if (flag) flags_.insert(flag);
    if (terminating_) {
      if (flag) flag->store(true);
    }
  }

  // The operation's last step. `deliver` hands its outcome to the JS thread; it is skipped when
  // Terminate() has stopped waiting, since the environment may be gone by then.
  template <typename Deliver>
  void End(const Flag& flag, Deliver&& deliver) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!closed_) deliver();
    running_--;
    if (flag) flags_.erase(flag);
    cv_.notify_all();
  }

  // Aborts all running work and waits (bounded) for it to stop.
  void Terminate() {
    std::unique_lock<std::mutex> lock(mutex_);
    terminating_ = true;
    for (const auto& f : flags_) f->store(true);
    cv_.wait_for(lock, std::chrono::seconds(30), [this] { return running_ == 0; });
    closed_ = true;
  }

  bool terminating() {
    std::lock_guard<std::mutex> lock(mutex_);
    return terminating_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int running_ = 0;
  bool terminating_ = false;
  bool closed_ = false;
  std::set<Flag> flags_;
};

using RegistryPtr = std::shared_ptr<WorkRegistry>;

}  // namespace llava
