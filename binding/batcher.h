#pragma once
// Decodes the tokens of all sessions of one context together.
//
// Generation is memory-bound: one pass over the weights costs about the same for one token as
// for four, so sessions that share a context (a session group) submit each step here and the
// last one to arrive decodes everybody's tokens in one llama_batch, then samples each session's
// next token from its row of logits before the next decode can overwrite them. A session that
// does not submit within kWindow is not waited for. A plain session is a group of one: it leads
// at once.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <vector>

#include "llama.h"
#include "logprobs.h"

namespace llava {

class ContextState;

struct DecodeJob {
  // What to decode: text tokens of one sequence at consecutive positions, or (exclusive) a
  // function that must run alone on the context, such as decoding an image's embeddings.
  llama_seq_id seq = 0;
  const llama_token* tokens = nullptr;
  int32_t nTokens = 0;
  llama_pos pos = 0;
  bool logitsLast = false;            // compute logits for the last token
  llama_sampler* sampler = nullptr;   // then sample from them into `sampled`
  int32_t logprobs = -1;              // and, when >= 0, read the sampled token's log-probability
                                      // and this many alternatives into `logprob`
  std::function<int32_t()> exclusive;
  bool generationStep = false;        // one sampled token fed back: the thread governor's domain
  std::atomic<bool>* abort = nullptr;

  // Results, valid once Submit returns.
  int32_t rc = 0;  // llama_decode's return code
  llama_token sampled = -1;
  TokenLogprob logprob;
  std::exception_ptr error;

  // Batcher bookkeeping.
  bool done = false;
  int32_t outIndex = -1;
  size_t stepJobs = 0;  // how many jobs the decode that ran this one carried
};

class Batcher {
 public:
  explicit Batcher(ContextState& context) : context_(context) {}
  ~Batcher();

  // A session joins while it evaluates a prompt and generates, so the others wait for its steps.
  void Join();
  void Leave();
  // Blocks until the job has run; rethrows what the job's own work threw.
  void Submit(DecodeJob& job);

  static constexpr std::chrono::milliseconds kWindow{10};

 private:
  void Lead(std::unique_lock<std::mutex>& lock);
  void Execute(std::vector<DecodeJob*>& jobs);  // on the compute thread

  ContextState& context_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<DecodeJob*> pending_;
  size_t joined_ = 0;
  bool leading_ = false;
  llama_batch batch_{};
  int32_t capacity_ = 0;
};

// Join()/Leave() for a scope.
class BatcherMembership {
 public:
  explicit BatcherMembership(Batcher& b) : b_(b) { b_.Join(); }
  ~BatcherMembership() { b_.Leave(); }
  BatcherMembership(const BatcherMembership&) = delete;
  BatcherMembership& operator=(const BatcherMembership&) = delete;

 private:
  Batcher& b_;
};

}  // namespace llava
