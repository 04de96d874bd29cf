#pragma once
// The answer rules of a chat rendered by llama.cpp's chat layer, as lib/chat passes them to
// generate() (NativeChatSpec in lib/chat/index.ts), read into a ChatSpec.
#include <napi.h>

#include <memory>

#include "chat_stream.h"

namespace llava {

std::shared_ptr<const ChatSpec> ParseChatSpec(const Napi::Object& o);

// A parsed answer as JS sees it (NativeChatMessage): { content, reasoning, toolCalls, parseError? }.
Napi::Object ChatMessageToJs(Napi::Env env, const ChatMessage& message);

}  // namespace llava
