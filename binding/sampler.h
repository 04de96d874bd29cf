#pragma once
// Builds llama.cpp's sampler chain from the generation options.
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "llama.h"

namespace llava {

struct SamplingParams {
  float temperature = 0.8f;  // 0 = greedy
  int32_t topK = 40;
  float topP = 0.95f;
  float minP = 0.05f;
  float repeatPenalty = 1.0f;
  int32_t repeatLastN = 64;
  float frequencyPenalty = 0.0f;
  float presencePenalty = 0.0f;
  uint32_t seed = LLAMA_DEFAULT_SEED;
  std::string grammar;  // GBNF; empty = none

  // Set from a chat rendered by llama.cpp's chat layer (chat_stream.h); as common/sampling.cpp.
  bool grammarLazy = false;                   // the grammar waits for a trigger
  std::vector<std::string> triggerPatterns;   // regular expressions over the generated text
  std::vector<llama_token> triggerTokens;
  std::vector<llama_token> grammarPrefill;    // the generation prompt, accepted by the grammar first
  bool budget = false;                        // a reasoning-budget sampler (common/reasoning-budget.h)
  std::vector<llama_token> budgetStart;
  std::vector<std::vector<llama_token>> budgetEnd;
  std::vector<llama_token> budgetForced;
  int32_t budgetTokens = INT_MAX;
  std::vector<llama_token> budgetPrefill;
};

// Returns a chain the caller frees with llama_sampler_free. Throws ERR_GRAMMAR on a bad grammar.
llama_sampler* BuildSampler(const llama_vocab* vocab, const SamplingParams& p);

}  // namespace llava
