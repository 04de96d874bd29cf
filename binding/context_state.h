#pragma once
// A llama_context shared by one or more sessions, each owning one sequence (seq_id) of it. A plain
// session has a context of its own with one sequence; a session group has one context whose
// sequences are handed out to its sessions, so that their tokens are decoded together (Batcher).
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "batcher.h"
#include "model_state.h"
#include "thread_governor.h"

namespace llava {

struct SessionParams {
  uint32_t contextSize = 0;  // per sequence; 0 = the model's training context
  uint32_t batchSize = 2048;
  uint32_t ubatchSize = 512;
  int32_t threads = 4;
  int32_t threadsBatch = 4;
  int32_t flashAttention = -1;  // -1 auto, 0 off, 1 on
  // Batch-invariant kernels (llama_set_batch_invariant): -1 where every backend has them, 0 off,
  // 1 on (refused where a backend lacks them).
  int32_t deterministic = -1;
  bool adaptiveThreads = true;  // generation steps may use fewer threads when that is faster
};

class ContextState {
 public:
  ContextState(ModelPtr model, SessionParams params, uint32_t sequences);
  ~ContextState();
  ContextState(const ContextState&) = delete;
  ContextState& operator=(const ContextState&) = delete;

  // Creates the llama_context on first use (a worker thread; throws NativeError).
  llama_context* Ensure();
  llama_context* ctx() const { return ctx_; }
  // Positions one sequence can hold.
  uint32_t SequenceContext() const;
  uint32_t sequences() const { return nSeq_; }

  // A free sequence id, or -1 when every sequence is taken.
  int32_t ClaimSequence();
  void ReleaseSequence(int32_t seq);
  uint32_t FreeSequences();

  const ModelPtr& model() const { return model_; }
  const SessionParams& params() const { return params_; }
  Batcher& batcher() { return batcher_; }

  // Threads for the next decode: generation steps (one token per session) ask the governor;
  // prompts and images use the session's counts. Return the count a one-token batch runs with.
  // Compute thread only.
  int32_t UseThreadsForStep(int32_t tokens);
  int32_t UseAllThreads();
  ThreadGovernor& governor() { return governor_; }

  // The abort flags of the jobs in the running decode: llama.cpp stops the decode only when every
  // one of them is set, so one session's abort never cuts another's work short. Touched only on
  // the compute thread.
  std::vector<std::atomic<bool>*> stepAborts;

 private:
  ModelPtr model_;
  SessionParams params_;
  uint32_t nSeq_;
  llama_context* ctx_ = nullptr;
  std::mutex initMutex_;
  std::mutex seqMutex_;
  std::vector<bool> seqUsed_;
  Batcher batcher_;
  ThreadGovernor governor_;
  int32_t appliedThreads_ = 0;
  int32_t appliedThreadsBatch_ = 0;
  void ApplyThreads(int32_t threads, int32_t threadsBatch);
};

using ContextPtr = std::shared_ptr<ContextState>;

}  // namespace llava
