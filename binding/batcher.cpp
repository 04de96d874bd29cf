#include "batcher.h"

#include <algorithm>

#include "compute_thread.h"
#include "context_state.h"

namespace llava {

Batcher::~Batcher() {
  if (capacity_ > 0) llama_batch_free(batch_);
}

void Batcher::Join() {
  std::lock_guard<std::mutex> lock(mutex_);
  joined_++;
}

void Batcher::Leave() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    joined_--;
  }
  cv_.notify_all();  // whoever waited for this session's step need not wait any longer
}

void Batcher::Submit(DecodeJob& job) {
  std::unique_lock<std::mutex> lock(mutex_);
  job.done = false;
  pending_.push_back(&job);
  cv_.notify_all();
  auto deadline = std::chrono::steady_clock::now() + kWindow;
  while (!job.done) {
    if (!leading_ && (pending_.size() >= joined_ || std::chrono::steady_clock::now() >= deadline)) {
      Lead(lock);
      continue;
    }
    if (leading_) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, deadline);
    }
  }
  if (job.error) std::rethrow_exception(job.error);
}

void Batcher::Lead(std::unique_lock<std::mutex>& lock) {
  leading_ = true;
  std::vector<DecodeJob*> take;
  if (pending_.front()->exclusive) {
    take.push_back(pending_.front());
    pending_.erase(pending_.begin());
  } else {
    const int32_t limit = static_cast<int32_t>(llama_n_batch(context_.ctx()));
    int32_t total = 0;
    for (auto it = pending_.begin(); it != pending_.end();) {
      DecodeJob* j = *it;
      if (!j->exclusive && (take.empty() || total + j->nTokens <= limit)) {
        take.push_back(j);
        total += j->nTokens;
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    // With one KV stream per sequence, llama.cpp puts only consecutive, increasing sequence ids in
    // one micro-batch: in arrival order, four sessions' tokens would take up to four passes.
    std::sort(take.begin(), take.end(), [](const DecodeJob* a, const DecodeJob* b) { return a->seq < b->seq; });
  }
  lock.unlock();
  try {
    ComputeThread::Run([&] { Execute(take); });
  } catch (...) {
    for (DecodeJob* j : take) j->error = std::current_exception();
  }
  lock.lock();
  for (DecodeJob* j : take) {
    j->stepJobs = take.size();
    j->done = true;
  }
  leading_ = false;
  cv_.notify_all();
}

void Batcher::Execute(std::vector<DecodeJob*>& jobs) {
  llama_context* ctx = context_.ctx();
  struct StepAborts {
    std::vector<std::atomic<bool>*>& v;
    ~StepAborts() { v.clear(); }
  } stepAborts{context_.stepAborts};
  for (DecodeJob* j : jobs) context_.stepAborts.push_back(j->abort);

  if (jobs.size() == 1 && jobs[0]->exclusive) {
    context_.UseAllThreads();
    try {
      jobs[0]->rc = jobs[0]->exclusive();
      if (const auto& rpc = context_.model()->rpc) rpc->Check();
    } catch (...) {
      jobs[0]->error = std::current_exception();
    }
    return;
  }

  int32_t total = 0;
  for (const DecodeJob* j : jobs) total += j->nTokens;
  if (total > capacity_) {
    if (capacity_ > 0) llama_batch_free(batch_);
    capacity_ = std::max<int32_t>(total, static_cast<int32_t>(llama_n_batch(ctx)));
    batch_ = llama_batch_init(capacity_, 0, 1);
  }
  int32_t n = 0;
  for (DecodeJob* j : jobs) {
    j->outIndex = -1;
    for (int32_t k = 0; k < j->nTokens; k++, n++) {
      batch_.token[n] = j->tokens[k];
      batch_.pos[n] = j->pos + k;
      batch_.n_seq_id[n] = 1;
      batch_.seq_id[n][0] = j->seq;
      const bool out = j->logitsLast && k == j->nTokens - 1;
      batch_.logits[n] = out;
      if (out) j->outIndex = n;
    }
  }
  batch_.n_tokens = n;
  // Only a decode made of generation steps alone is governed; prompt text, however short, uses
  // the session's counts.
  const bool steps = std::all_of(jobs.begin(), jobs.end(), [](const DecodeJob* j) { return j->generationStep; });
  const int32_t threads = steps ? context_.UseThreadsForStep(n) : context_.UseAllThreads();
  const auto start = std::chrono::steady_clock::now();
  const int32_t rc = llama_decode(ctx, batch_);
  // A failed RPC connection computes nothing: its logits are zeros, never to be sampled.
  if (const auto& rpc = context_.model()->rpc) rpc->Check();
  if (rc == 0 && steps) {
    context_.governor().Record(n, threads, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  for (DecodeJob* j : jobs) {
    j->rc = rc;
    if (rc != 0 || j->sampler == nullptr || j->outIndex < 0) continue;
    try {
      j->sampled = llama_sampler_sample(j->sampler, ctx, j->outIndex);
      if (j->logprobs >= 0) {
        const int32_t nVocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
        j->logprob = ReadLogprobs(llama_get_logits_ith(ctx, j->outIndex), nVocab, j->sampled, j->logprobs);
      }
    } catch (...) {
      j->error = std::current_exception();
    }
  }
}

}  // namespace llava
