#pragma once
#include <napi.h>

namespace llava {
// setMemoryLimit(bytes): caps this process's private writable memory (RLIMIT_DATA), for the child
// process of an isolated model. Returns whether the platform applied it.
Napi::Value SetMemoryLimit(const Napi::CallbackInfo& info);
}
