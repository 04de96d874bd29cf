#include "grammar_check.h"

#include "errors.h"

namespace llava {

void CheckGrammar(const std::string& g, int32_t nVocab, const GrammarLimits& limits) {
  auto refuse = [](const std::string& why) { Throw("ERR_GRAMMAR", "the GBNF grammar " + why); };
  if (g.size() > limits.maxBytes) {
    refuse("is " + std::to_string(g.size()) + " bytes long; at most " + std::to_string(limits.maxBytes) + " are accepted");
  }
  uint32_t depth = 0, rules = 0, alternatives = 0;
  const size_t n = g.size();
  size_t i = 0;
  // Skips a quoted string or a character class starting at g[i], honouring backslash escapes.
  auto skipDelimited = [&](char close) {
    for (i++; i < n && g[i] != close; i++) {
      if (g[i] == '\\') i++;
    }
    i++;  // past the closing delimiter (an unterminated one is for llama.cpp's parser to report)
  };
  while (i < n) {
    const char c = g[i];
    if (c == '#') {
      while (i < n && g[i] != '\n' && g[i] != '\r') i++;
    } else if (c == '"') {
      skipDelimited('"');
    } else if (c == '[') {
      skipDelimited(']');
    } else if (c == '<' && i + 1 < n && g[i + 1] == '[') {
      // A token by id: <[123]>
      size_t k = i + 2;
      uint64_t id = 0;
      bool digits = false;
      while (k < n && g[k] >= '0' && g[k] <= '9') {
        id = id * 10 + static_cast<uint64_t>(g[k] - '0');
        if (id > 0xffffffffull) break;
        digits = true;
        k++;
      }
      if (!digits || id >= static_cast<uint64_t>(nVocab)) {
        refuse("refers to token " + g.substr(i, std::min<size_t>(k - i + 2, 24)) + ", outside the model's vocabulary of " +
               std::to_string(nVocab) + " tokens");
      }
      i = k;
    } else if (c == '(') {
      if (++depth > limits.maxNesting) {
        refuse("nests groups more than " + std::to_string(limits.maxNesting) + " deep");
      }
      i++;
    } else if (c == ')') {
      if (depth > 0) depth--;
      i++;
    } else if (c == '|') {
      if (++alternatives > limits.maxAlternatives) {
        refuse("has more than " + std::to_string(limits.maxAlternatives) + " alternatives ('|')");
      }
      i++;
    } else if (c == ':' && g.compare(i, 3, "::=") == 0) {
      if (++rules > limits.maxRules) refuse("has more than " + std::to_string(limits.maxRules) + " rules");
      i += 3;
    } else {
      i++;
    }
  }
}

}  // namespace llava
