#pragma once
// Test hook: a chat answer read by the parser generation uses, fed as a stream one character at a
// time (as llama.cpp's own chat tests feed it), so that tests can check the parsed message and
// that the streamed pieces add up to it.
#include <napi.h>

namespace llava {

// chatParseStreamed(spec: NativeChatSpec, text) -> { content, reasoning, toolCalls, parseError?, streamed: { content, reasoning, toolCalls } }
Napi::Value ChatParseStreamed(const Napi::CallbackInfo& info);

// chatGrammarAccepts(model, spec, grammar, text) -> { accepted, tokens, error? }: the sampler that
// generation builds for this chat (lazy grammar, triggers, generation prompt, reasoning budget)
// takes `text`, tokenized by the model, token by token without refusing one.
Napi::Value ChatGrammarAccepts(const Napi::CallbackInfo& info);

}  // namespace llava
