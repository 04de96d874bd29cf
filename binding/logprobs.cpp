#include "logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace llava {

TokenLogprob ReadLogprobs(const float* logits, int32_t nVocab, llama_token chosen, int32_t top) {
  TokenLogprob out;
  if (logits == nullptr || nVocab <= 0) return out;
  float max = -INFINITY;
  for (int32_t i = 0; i < nVocab; i++) max = std::max(max, logits[i]);
  double sum = 0;
  for (int32_t i = 0; i < nVocab; i++) sum += std::exp(static_cast<double>(logits[i]) - max);
  const double logZ = static_cast<double>(max) + std::log(sum);
  auto choice = [&](llama_token t) { return TokenChoice{t, logits[t], static_cast<double>(logits[t]) - logZ}; };
  if (chosen >= 0 && chosen < nVocab) out.chosen = choice(chosen);

  const int32_t k = std::min(std::max(top, 0), nVocab);
  if (k == 0) return out;
  std::vector<llama_token> ids(static_cast<size_t>(nVocab));
  std::iota(ids.begin(), ids.end(), 0);
  auto better = [&](llama_token a, llama_token b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), better);
  out.top.reserve(static_cast<size_t>(k));
  for (int32_t i = 0; i < k; i++) out.top.push_back(choice(ids[static_cast<size_t>(i)]));
  return out;
}

}  // namespace llava
