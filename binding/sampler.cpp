#include "sampler.h"

#include "errors.h"
#include "grammar_check.h"
#include "logging.h"

namespace llava {

llama_sampler* BuildSampler(const llama_vocab* vocab, const SamplingParams& p) {
  // Before anything is allocated: a refused grammar throws.
  if (!p.grammar.empty()) CheckGrammar(p.grammar, llama_vocab_n_tokens(vocab));
  llama_sampler_chain_params cp = llama_sampler_chain_default_params();
  cp.no_perf = true;
  llama_sampler* chain = llama_sampler_chain_init(cp);
  if (!p.grammar.empty()) {
    ClearLastLlamaError();
    llama_sampler* g = nullptr;
    try {
      g = llama_sampler_init_grammar(vocab, p.grammar.c_str(), "root");
    } catch (const std::exception& e) {
      // llama.cpp's parser reports some malformed input by throwing (a number out of range).
      llama_sampler_free(chain);
      Throw("ERR_GRAMMAR", std::string("the GBNF grammar could not be parsed: ") + e.what());
    }
    if (!g) {
      llama_sampler_free(chain);
      std::string why = LastLlamaError();
      Throw("ERR_GRAMMAR", "the GBNF grammar could not be parsed" + (why.empty() ? std::string() : ": " + why) +
                               " (the start rule must be named `root`)");
    }
    llama_sampler_chain_add(chain, g);
  }
  if (p.repeatPenalty != 1.0f || p.frequencyPenalty != 0.0f || p.presencePenalty != 0.0f) {
    llama_sampler_chain_add(chain, llama_sampler_init_penalties(llama_vocab_n_tokens(vocab), p.repeatLastN, p.repeatPenalty,
                                                                p.frequencyPenalty, p.presencePenalty));
  }
  if (p.temperature <= 0.0f) {
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    return chain;
  }
  if (p.topK > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(p.topK));
  if (p.topP < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(p.topP, 1));
  if (p.minP > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(p.minP, 1));
  llama_sampler_chain_add(chain, llama_sampler_init_temp(p.temperature));
  llama_sampler_chain_add(chain, llama_sampler_init_dist(p.seed));
  return chain;
}

}  // namespace llava
