#pragma once
// How many threads each generation step of a context uses.
//
// A generation step is a small graph of short operations with a barrier after each: its threads
// spend much of the step waiting for each other. When another process takes one of the cores, the
// thread on it is descheduled and every barrier waits a time slice for it: two threads can then be
// several times slower than one, and on a small model they can be slower than one on an idle
// machine too. No signal tells this better than the steps' own times, so the governor measures:
// it keeps the recent step times of the thread count in use, now and then runs a few steps with
// the next count down or up its list (max, max - 1, halvings), and moves there when that is
// clearly faster. A sharp rise of the current count's times (another process started) triggers a
// trial of fewer threads at once; a trial that loses makes the next one wait longer, so that an
// idle machine pays about 1% for the watching.
//
// Changing the count is meant not to change results: ggml's CPU operations compute each output
// row in one piece whichever thread takes it, and the one that split a row's work by thread count
// (flash attention for a single query) does not since deps/patches/0004. test/threads.test.ts
// checks that operation bit for bit and whole answers on the test models.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace llava {

// What the sessions of one model last found: a new session starts from that count instead of
// learning from scratch (a server that makes a session per request would otherwise spend each
// request's first steps at a count the machine's load made slow). Written and read by sessions on
// the compute thread and by their creators; hence atomics.
struct ThreadHint {
  std::atomic<int32_t> maxThreads{0};  // the session thread count the hint was learnt under
  std::atomic<int32_t> threads{0};     // 0: nothing learnt yet
  std::atomic<int64_t> atNs{0};        // steady_clock time it was last confirmed
  static constexpr int64_t kFreshNs = 30'000'000'000;  // older than this, it says nothing
  static int64_t NowNs();                              // the clock atNs is read on
};

class ThreadGovernor {
 public:
  // `maxThreads`: the session's thread count; `adaptive` false keeps to it. `hint` (may be null)
  // is read at the first step and kept up to date with what this governor finds.
  ThreadGovernor(int32_t maxThreads, bool adaptive, ThreadHint* hint = nullptr);

  // Threads for the next generation step of `tokens` tokens, one per session (steps of different
  // sizes are learnt apart).
  int32_t Next(int32_t tokens);
  // The step run with Next()'s answer took `seconds`.
  void Record(int32_t tokens, int32_t threads, double seconds);

 private:
  static constexpr int kWindow = 8;           // recent step times kept for the count in use
  static constexpr int kTrialSteps = 3;       // steps a trial of another count runs
  static constexpr int64_t kMinInterval = 16;  // steps between trials, at first and after a move
  static constexpr int64_t kMaxInterval = 256;
  static constexpr double kMargin = 0.92;     // a trial must be this much faster (time ratio) to win
  static constexpr double kDrift = 1.3;       // current times this much above the settled level: try now
  static constexpr double kHopeless = 1.5;    // a trial step this much slower ends the trial at once

  struct Bucket {
    size_t current = 0;  // index into candidates_
    std::array<double, kWindow> recent{};  // (trial steps need a full window first)
    int recentCount = 0;
    int recentNext = 0;
    double settled = 0;  // median of `recent` when the count was last chosen or confirmed
    int64_t steps = 0;
    int64_t nextTrial = kWindow;  // the first trial as soon as the count in use has its window
    int64_t interval = kMinInterval;
    int trial = -1;  // candidate index on trial, -1 when none
    std::array<double, kTrialSteps> trialTimes{};
    int trialCount = 0;
    bool tryFewer = true;  // which neighbour the next scheduled trial takes
    bool started = false;  // the hint has been looked at
  };

  static double Median(const double* v, int n);
  static int BucketOf(int32_t tokens);
  void StartTrial(Bucket& b, bool fewer);
  void EndTrial(Bucket& b);

  void TakeHint(Bucket& b);
  void Publish(const Bucket& b);

  bool adaptive_;
  ThreadHint* hint_;
  std::vector<int32_t> candidates_;  // descending: max, max - 1, then halvings down to 1
  std::array<Bucket, 4> buckets_{};   // steps of 1, 2, 3-4 and more tokens (sessions of a group)
};

}  // namespace llava
