#pragma once
// Bounds on a GBNF grammar, checked before llama.cpp parses it. llama.cpp's parser and its
// left-recursion check recurse once per nesting level and per chained rule (a deep grammar
// overflows the thread's stack), and sampling cost grows with the number of rules and
// alternatives; none of that can be interrupted once started.
#include <cstdint>
#include <string>

namespace llava {

struct GrammarLimits {
  size_t maxBytes = 1u << 20;       // grammar text
  uint32_t maxNesting = 128;        // ( ) groups inside one another
  uint32_t maxRules = 4096;         // `name ::= …` definitions
  uint32_t maxAlternatives = 4096;  // `|` in the whole grammar (each one is a parse stack per sampled token)
};

// Throws NativeError(ERR_GRAMMAR) naming the limit crossed, or a token reference `<[id]>` outside
// the vocabulary. Does not check the syntax itself: llama.cpp's parser does that.
void CheckGrammar(const std::string& grammar, int32_t nVocab, const GrammarLimits& limits = GrammarLimits());

}  // namespace llava
