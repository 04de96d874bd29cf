#include "thread_governor.h"

#include <algorithm>
#include <chrono>

namespace llava {

int64_t ThreadHint::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ThreadGovernor::ThreadGovernor(int32_t maxThreads, bool adaptive, ThreadHint* hint) : adaptive_(adaptive), hint_(hint) {
  // All threads, one fewer (one core taken by something else is the commonest case), then
  // halvings: 8 -> 8, 7, 4, 2, 1.
  const int32_t max = std::max<int32_t>(1, maxThreads);
  candidates_.push_back(max);
  if (max > 1) candidates_.push_back(max - 1);
  for (int32_t n = max / 2; n >= 1; n /= 2) {
    if (n < candidates_.back()) candidates_.push_back(n);
  }
}

int ThreadGovernor::BucketOf(int32_t tokens) {
  if (tokens <= 1) return 0;
  if (tokens <= 2) return 1;
  if (tokens <= 4) return 2;
  return 3;
}

double ThreadGovernor::Median(const double* v, int n) {
  std::array<double, kWindow> tmp{};
  std::copy(v, v + n, tmp.begin());
  std::sort(tmp.begin(), tmp.begin() + n);
  return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

int32_t ThreadGovernor::Next(int32_t tokens) {
  if (!adaptive_ || candidates_.size() == 1) return candidates_[0];
  Bucket& b = buckets_[BucketOf(tokens)];
  if (!b.started) TakeHint(b);
  if (b.trial < 0 && b.recentCount == kWindow) {
    const double now = Median(b.recent.data(), kWindow);
    if (now > b.settled * kDrift) {
      StartTrial(b, /*fewer=*/true);  // slower all of a sudden: something else took CPU time
    } else if (b.steps >= b.nextTrial) {
      StartTrial(b, b.tryFewer);
      b.tryFewer = !b.tryFewer;
    }
  }
  return candidates_[b.trial >= 0 ? b.trial : b.current];
}

void ThreadGovernor::TakeHint(Bucket& b) {
  b.started = true;
  if (hint_ == nullptr || hint_->maxThreads.load() != candidates_[0]) return;
  const int32_t threads = hint_->threads.load();
  if (threads <= 0 || ThreadHint::NowNs() - hint_->atNs.load() > ThreadHint::kFreshNs) return;
  for (size_t i = 0; i < candidates_.size(); i++) {
    if (candidates_[i] == threads) {
      b.current = i;
      // What another session found recently is as good as a trial this one won or lost.
      b.interval = kMinInterval * 4;
      b.nextTrial = kWindow + b.interval;
      return;
    }
  }
}

void ThreadGovernor::Publish(const Bucket& b) {
  if (hint_ == nullptr) return;
  hint_->maxThreads.store(candidates_[0]);
  hint_->threads.store(candidates_[b.current]);
  hint_->atNs.store(ThreadHint::NowNs());
}

void ThreadGovernor::StartTrial(Bucket& b, bool fewer) {
  // At either end, the only neighbour there is.
  if (b.current == candidates_.size() - 1) fewer = false;
  if (b.current == 0) fewer = true;
  b.trial = static_cast<int>(fewer ? b.current + 1 : b.current - 1);
  b.trialCount = 0;
}

void ThreadGovernor::Record(int32_t tokens, int32_t threads, double seconds) {
  if (!adaptive_ || candidates_.size() == 1) return;
  Bucket& b = buckets_[BucketOf(tokens)];
  b.steps++;
  if (b.trial >= 0 && threads == candidates_[b.trial]) {
    b.trialTimes[b.trialCount++] = seconds;
    // A step far slower than the current count's is verdict enough: a trial under contention
    // then costs one step, not three.
    const bool hopeless = seconds > kHopeless * Median(b.recent.data(), b.recentCount);
    if (b.trialCount == kTrialSteps || hopeless) EndTrial(b);
    return;
  }
  if (threads != candidates_[b.current]) return;
  b.recent[b.recentNext] = seconds;
  b.recentNext = (b.recentNext + 1) % kWindow;
  if (b.recentCount < kWindow) b.recentCount++;
  if (b.recentCount == kWindow && b.settled == 0) b.settled = Median(b.recent.data(), kWindow);
}

void ThreadGovernor::EndTrial(Bucket& b) {
  const double trial = Median(b.trialTimes.data(), b.trialCount);
  const double now = Median(b.recent.data(), b.recentCount);
  if (trial < now * kMargin) {
    // Move, and learn the new count's times from scratch.
    b.current = static_cast<size_t>(b.trial);
    b.recentCount = 0;
    b.recentNext = 0;
    b.settled = 0;
    b.interval = kMinInterval;
  } else {
    // Stay; the level the current count is judged against is today's.
    b.settled = now;
    b.interval = std::min(kMaxInterval, b.interval * 2);
  }
  b.trial = -1;
  b.nextTrial = b.steps + b.interval;
  Publish(b);
}

}  // namespace llava
