#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "errors.h"
#include "grammar_check.h"
#include "logging.h"
#include "reasoning-budget.h"

namespace llava {

namespace {

// A grammar applied to every candidate costs a third of generation speed with a 32k vocabulary
// (measured on the benchmark pair). As llama.cpp's common_sampler does (and so llama-server), the
// token is first chosen without the grammar, then checked against it alone; only when the grammar
// refuses it are the candidates constrained and the choice made again. A greedy choice is the
// same either way: the most likely token the grammar allows.
// A reasoning budget (chat layer) masks the candidates before anything else, and while it counts
// the tokens of a thinking block a lazy grammar stays out of the way (common_sampler_sample and
// common_sampler_accept in common/sampling.cpp).
struct GrammarGate {
  llama_sampler* grammar;  // may be null when only a budget is set
  llama_sampler* budget;   // may be null
  llama_sampler* chain;    // everything else
  bool lazy;
  std::vector<llama_token_data> saved;
};

bool GrammarApplies(const GrammarGate& g) {
  if (!g.grammar) return false;
  if (!g.budget || !g.lazy) return true;
  const auto state = common_reasoning_budget_get_state(g.budget);
  return state == REASONING_BUDGET_IDLE || state == REASONING_BUDGET_DONE;
}

void GateApply(llama_sampler* smpl, llama_token_data_array* cur) {
  auto* g = static_cast<GrammarGate*>(smpl->ctx);
  g->saved.assign(cur->data, cur->data + cur->size);
  const llama_token_data_array before = *cur;
  if (g->budget) llama_sampler_apply(g->budget, cur);
  llama_sampler_apply(g->chain, cur);
  if (!GrammarApplies(*g)) return;
  if (cur->selected >= 0 && cur->selected < static_cast<int64_t>(cur->size)) {
    llama_token_data one = {cur->data[cur->selected].id, 1.0f, 0.0f};
    llama_token_data_array single = {&one, 1, -1, false};
    llama_sampler_apply(g->grammar, &single);
    if (one.logit != -INFINITY) return;  // the grammar allows it
  }
  std::copy(g->saved.begin(), g->saved.end(), before.data);
  *cur = before;
  if (g->budget) llama_sampler_apply(g->budget, cur);
  llama_sampler_apply(g->grammar, cur);
  llama_sampler_apply(g->chain, cur);
}

void GateAccept(llama_sampler* smpl, llama_token token) {
  auto* g = static_cast<GrammarGate*>(smpl->ctx);
  const bool acceptGrammar = GrammarApplies(*g);
  if (g->budget) {
    llama_sampler_accept(g->budget, token);
    // The end of a thinking block may itself hold a tool-call trigger: replay it to the grammar.
    if (g->grammar && !acceptGrammar && common_reasoning_budget_get_state(g->budget) == REASONING_BUDGET_DONE) {
      if (const llama_tokens* end = common_reasoning_budget_get_end_match(g->budget)) {
        for (llama_token t : *end) llama_sampler_accept(g->grammar, t);
      }
    }
  }
  if (g->grammar && acceptGrammar) llama_sampler_accept(g->grammar, token);
  llama_sampler_accept(g->chain, token);
}

void GateReset(llama_sampler* smpl) {
  auto* g = static_cast<GrammarGate*>(smpl->ctx);
  if (g->grammar) llama_sampler_reset(g->grammar);
  if (g->budget) llama_sampler_reset(g->budget);
  llama_sampler_reset(g->chain);
}

void GateFree(llama_sampler* smpl) {
  auto* g = static_cast<GrammarGate*>(smpl->ctx);
  if (g->grammar) llama_sampler_free(g->grammar);
  if (g->budget) llama_sampler_free(g->budget);
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
      if (p.grammarLazy) {
        std::vector<const char*> patterns;
        for (const auto& t : p.triggerPatterns) patterns.push_back(t.c_str());
        g = llama_sampler_init_grammar_lazy_patterns(vocab, p.grammar.c_str(), "root", patterns.data(), patterns.size(),
                                                     p.triggerTokens.data(), p.triggerTokens.size());
      } else {
        g = llama_sampler_init_grammar(vocab, p.grammar.c_str(), "root");
      }
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
    try {
      for (llama_token t : p.grammarPrefill) llama_sampler_accept(grammar, t);
    } catch (const std::exception& e) {
      llama_sampler_free(grammar);
      llama_sampler_free(chain);
      Throw("ERR_CHAT_TEMPLATE", std::string("the grammar llama.cpp's chat layer wrote for this template does not accept the template's own "
                                             "generation prompt as this model's tokens spell it (a template written for another model's "
                                             "vocabulary?): ") + e.what());
    }
  }
  llama_sampler* budget = nullptr;
  if (p.budget) {
    budget = common_reasoning_budget_init(vocab, {p.budgetStart}, p.budgetEnd, p.budgetForced, p.budgetTokens);
    for (llama_token t : p.budgetPrefill) llama_sampler_accept(budget, t);
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
  if (grammar == nullptr && budget == nullptr) return chain;
  return llama_sampler_init(&kGateInterface, new GrammarGate{grammar, budget, chain, p.grammarLazy, {}});
}

}  // namespace llava
