#pragma once
// Test hooks for the CPU thread machinery: the thread governor against a scripted cost model, and
// one flash-attention operation computed with a given thread count.
#include <napi.h>

namespace llava {
Napi::Value TraceThreadGovernor(const Napi::CallbackInfo& info);
Napi::Value FlashAttentionDecode(const Napi::CallbackInfo& info);
}
