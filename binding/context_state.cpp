#include "context_state.h"

#include <algorithm>
#include <string>

#include "compute_thread.h"
#include "errors.h"
#include "logging.h"

namespace llava {

ContextState::ContextState(ModelPtr model, SessionParams params, uint32_t sequences)
    : model_(std::move(model)),
      params_(params),
      nSeq_(std::max<uint32_t>(1, sequences)),
      seqUsed_(nSeq_, false),
      batcher_(*this),
      governor_(params.threads, params.adaptiveThreads, &model_->threadHint),
      appliedThreads_(params.threads),
      appliedThreadsBatch_(params.threadsBatch) {}

void ContextState::ApplyThreads(int32_t threads, int32_t threadsBatch) {
  if (ctx_ == nullptr || (threads == appliedThreads_ && threadsBatch == appliedThreadsBatch_)) return;
  llama_set_n_threads(ctx_, threads, threadsBatch);
  appliedThreads_ = threads;
  appliedThreadsBatch_ = threadsBatch;
}

int32_t ContextState::UseThreadsForStep(int32_t tokens) {
  // llama.cpp runs a one-token batch with n_threads and anything larger with n_threads_batch: a
  // group's step of several tokens takes the governed count too.
  const int32_t n = governor_.Next(tokens);
  ApplyThreads(n, n);
  return n;
}

int32_t ContextState::UseAllThreads() {
  ApplyThreads(params_.threads, params_.threadsBatch);
  return params_.threads;
}

// GPU backends (lavapipe's Vulkan driver at least) are not safe against buffers being created or
// freed on one thread while another submits work: the context is made and freed where it computes.
ContextState::~ContextState() {
  if (ctx_) {
    llama_context* ctx = ctx_;
    ComputeThread::Post([ctx] { llama_free(ctx); });
  }
}

llama_context* ContextState::Ensure() {
  std::lock_guard<std::mutex> lock(initMutex_);
  if (ctx_) return ctx_;
  const ModelState& m = *model_;
  uint32_t perSeq = params_.contextSize;
  if (perSeq == 0) perSeq = static_cast<uint32_t>(std::max<int32_t>(1, llama_model_n_ctx_train(m.model)));
  // llama.cpp counts cells in 32 bits; the TypeScript layer refuses larger groups up front.
  constexpr uint64_t kMaxCells = 1ull << 24;
  if (static_cast<uint64_t>(perSeq) * nSeq_ > kMaxCells) {
    Throw("ERR_INVALID_ARGUMENT", std::to_string(nSeq_) + " sessions of " + std::to_string(perSeq) + " tokens need more than the " +
                                      std::to_string(kMaxCells) + " cells one context holds; use fewer sessions or a smaller contextSize");
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = perSeq * nSeq_;
  cp.n_seq_max = nSeq_;
  // One KV stream per sequence: each session gets its own contextSize and attends only to its own
  // cells, instead of every session's tokens in a shared buffer.
  cp.kv_unified = false;
  uint32_t ubatch = std::max<uint32_t>(1, params_.ubatchSize);
  // Images with non-causal attention (Gemma 3) must sit in one micro-batch; a smaller one would
  // trip llama.cpp's batch assertions.
  if (m.imageNonCausal) ubatch = std::max<uint32_t>(ubatch, static_cast<uint32_t>(m.imageTokens));
  cp.n_ubatch = ubatch;
  cp.n_batch = std::max<uint32_t>(params_.batchSize, ubatch);
  cp.n_threads = params_.threads;
  cp.n_threads_batch = params_.threadsBatch;
  cp.flash_attn_type = params_.flashAttention < 0   ? LLAMA_FLASH_ATTN_TYPE_AUTO
                       : params_.flashAttention == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                                     : LLAMA_FLASH_ATTN_TYPE_ENABLED;
  cp.no_perf = true;
  cp.abort_callback = [](void* data) -> bool {
    const auto& flags = static_cast<ContextState*>(data)->stepAborts;
    if (flags.empty()) return false;
    for (const auto* f : flags) {
      if (f == nullptr || !f->load()) return false;
    }
    return true;
  };
  cp.abort_callback_data = this;
  ClearLastLlamaError();
  ctx_ = ComputeThread::Run([&] { return llama_init_from_model(m.model, cp); });
  if (!ctx_) {
    std::string why = LastLlamaError();
    // llama.cpp reports allocation failures and refused options alike by returning nothing.
    const bool memory = why.find("alloc") != std::string::npos || why.find("memory") != std::string::npos || why.empty();
    Throw(memory ? "ERR_OUT_OF_MEMORY" : "ERR_INVALID_ARGUMENT", "llama.cpp could not create a context of " + std::to_string(cp.n_ctx) + " tokens" +
                              (nSeq_ > 1 ? " (" + std::to_string(nSeq_) + " sessions of " + std::to_string(perSeq) + ")" : std::string()) +
                              (why.empty() ? std::string() : ": " + why) + ". Try a smaller contextSize.");
  }
  const bool invariant = params_.deterministic != 0 && ComputeThread::Run([&] {
    if (llama_set_batch_invariant(ctx_, true)) return true;
    llama_set_batch_invariant(ctx_, false);  // a backend lacks it: the others go back to their defaults
    return false;
  });
  if (params_.deterministic == 1 && !invariant) {
    llama_context* ctx = ctx_;
    ctx_ = nullptr;
    ComputeThread::Run([ctx] { llama_free(ctx); });
    Throw("ERR_INVALID_ARGUMENT", "deterministic decoding needs batch-invariant kernels, which only the local CPU backend has; load the model without "
                             "GPU offload or rpcServers, or create the session with deterministic: false");
  }
  return ctx_;
}

uint32_t ContextState::SequenceContext() const {
  if (ctx_) return llama_n_ctx_seq(ctx_);
  return params_.contextSize;
}

int32_t ContextState::ClaimSequence() {
  std::lock_guard<std::mutex> lock(seqMutex_);
  for (uint32_t i = 0; i < nSeq_; i++) {
    if (!seqUsed_[i]) {
      seqUsed_[i] = true;
      return static_cast<int32_t>(i);
    }
  }
  return -1;
}

void ContextState::ReleaseSequence(int32_t seq) {
  std::lock_guard<std::mutex> lock(seqMutex_);
  if (seq >= 0 && static_cast<uint32_t>(seq) < nSeq_) seqUsed_[static_cast<size_t>(seq)] = false;
}

uint32_t ContextState::FreeSequences() {
  std::lock_guard<std::mutex> lock(seqMutex_);
  return static_cast<uint32_t>(std::count(seqUsed_.begin(), seqUsed_.end(), false));
}

}  // namespace llava
