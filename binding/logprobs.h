#pragma once
// The model's next-token distribution as log-probabilities, read from a row of logits right
// after the decode that produced it (the next decode overwrites the row): the token the sampler
// chose and the most likely alternatives. The distribution is the model's own, before
// temperature, penalties or a grammar: what a caller compares across runs or machines.
#include <cstdint>
#include <vector>

#include "llama.h"

namespace llava {

struct TokenChoice {
  llama_token token = -1;
  float logit = 0;      // the raw logit, bit for bit
  double logprob = 0;   // logit - log(sum(exp(logits)))
};

struct TokenLogprob {
  TokenChoice chosen;
  std::vector<TokenChoice> top;  // most likely first; ties by token id
};

// top: how many alternatives (clamped to the vocabulary).
TokenLogprob ReadLogprobs(const float* logits, int32_t nVocab, llama_token chosen, int32_t top);

}  // namespace llava
