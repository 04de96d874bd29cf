#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "errors.h"
#include "grammar_check.h"
#include "logging.h"

namespace llava {

namespace {

// A grammar applied to every candidate costs a third of generation speed with a 32k vocabulary
// (measured on the benchmark pair). As llama.cpp's common_sampler does (and so llama-server), the
// token is first chosen without the grammar, then checked against it alone; only when the grammar
// refuses it are the candidates constrained and the choice made again. A greedy choice is the
// same either way: the most likely token the grammar allows.
struct GrammarGate {
  llama_sampler* grammar;
  llama_sampler* chain;  // everything else
  std::vector<llama_token_data> saved;
};

void GateApply(llama_sampler* smpl, llama_token_data_array* cur) {
  auto* g = static_cast<GrammarGate*>(smpl->ctx);
  g->saved.assign(cur->data, cur->data + cur->size);
  const llama_token_data_array before = *cur;
  llama_sampler_apply(g->chain, cur);
  if (cur->selected >= 0 && cur->selected < static_cast<int64_t>(cur->size)) {
    llama_token_data one = {cur->data[cur->selected].id, 1.0f, 0.0f};
    llama_token_data_array single = {&one, 1, -1, false};
    llama_sampler_apply(g->grammar, &single);
    if (one.logit != -INFINITY) return;  // the grammar allows it
  }
  std::copy(g->saved.begin(), g->saved.end(), before.data);
  *cur = before;
  llama_sampler_apply(g->grammar, cur);
  llama_sampler_apply(g->chain, cur);
}

void GateAccept(llama_sampler* smpl, llama_token token) {
  auto* g = static_cast<GrammarGate*>(smpl->ctx);
  llama_sampler_accept(g->grammar, token);
  llama_sampler_accept(g->chain, token);
}

void GateReset(llama_sampler* smpl) {
  auto* g = static_cast<GrammarGate*>(smpl->ctx);
  llama_sampler_reset(g->grammar);
  llama_sampler_reset(g->chain);
}

void GateFree(llama_sampler* smpl) {
  auto* g = static_cast<GrammarGate*>(smpl->ctx);
  llama_sampler_free(g->grammar);
  llama_sampler_free(g->chain);
  delete g;
}

llama_sampler_i kGateInterface = {
    /*.name =*/[](const llama_sampler*) { return "llava-grammar-gate"; },
    /*.accept =*/GateAccept,
    /*.apply =*/GateApply,
    /*.reset =*/GateReset,
    /*.clone =*/nullptr,
    /*.free =*/GateFree,
    /*.backend_init =*/nullptr,
    /*.backend_accept =*/nullptr,
    /*.backend_apply =*/nullptr,
    /*.backend_set_input =*/nullptr,
    /*.backend_reset =*/nullptr,
    /*.copy_state =*/nullptr,
};

}  // namespace

llama_sampler* BuildSampler(const llama_vocab* vocab, const SamplingParams& p) {
  // Before anything is allocated: a refused grammar throws.
  if (!p.grammar.empty()) CheckGrammar(p.grammar, llama_vocab_n_tokens(vocab));
  llama_sampler_chain_params cp = llama_sampler_chain_default_params();
  cp.no_perf = true;
  llama_sampler* chain = llama_sampler_chain_init(cp);
  llama_sampler* grammar = nullptr;
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
    grammar = g;
  }
  if (p.repeatPenalty != 1.0f || p.frequencyPenalty != 0.0f || p.presencePenalty != 0.0f) {
    llama_sampler_chain_add(chain, llama_sampler_init_penalties(llama_vocab_n_tokens(vocab), p.repeatLastN, p.repeatPenalty,
                                                                p.frequencyPenalty, p.presencePenalty));
  }
  if (p.temperature <= 0.0f) {
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
  } else {
    if (p.topK > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(p.topK));
    if (p.topP < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(p.topP, 1));
    if (p.minP > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(p.minP, 1));
    llama_sampler_chain_add(chain, llama_sampler_init_temp(p.temperature));
    llama_sampler_chain_add(chain, llama_sampler_init_dist(p.seed));
  }
  if (grammar == nullptr) return chain;
  return llama_sampler_init(&kGateInterface, new GrammarGate{grammar, chain, {}});
}

}  // namespace llava
