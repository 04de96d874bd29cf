#pragma once
// renderChat(model, requestJson, timeoutMs): a conversation rendered by llama.cpp's own chat layer
// (common/chat.cpp: its Jinja engine, template workarounds, tool and reasoning formats), exactly
// as llama-server renders it. Resolves with the result as JSON: the prompt, and what generation
// needs to constrain and parse the answer (grammar, triggers, parser, stops, thinking tags).
#include <napi.h>

namespace llava {

Napi::Value RenderChat(const Napi::CallbackInfo& info);

}  // namespace llava
