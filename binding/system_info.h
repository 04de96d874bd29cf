#pragma once
#include <napi.h>

namespace llava {
Napi::Value SystemInfo(const Napi::CallbackInfo& info);
}
