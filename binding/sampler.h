#pragma once
// Builds llama.cpp's sampler chain from the generation options.
#include <cstdint>
#include <string>

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
};

// Returns a chain the caller frees with llama_sampler_free. Throws ERR_GRAMMAR on a bad grammar.
llama_sampler* BuildSampler(const llama_vocab* vocab, const SamplingParams& p);

}  // namespace llava
