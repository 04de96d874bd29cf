#pragma once
// llama.cpp, ggml and mtmd log through callbacks installed here. Silent by default; JS can route
// messages at or above a level to a callback. The last error line of each thread is kept so
// that a failed load can say why.
#include <napi.h>

#include <string>

namespace llava {

void InstallLogging();
Napi::Value SetLogCallback(const Napi::CallbackInfo& info);
// The most recent ERROR-level llama.cpp message logged on this thread ("" if none).
std::string LastLlamaError();
void ClearLastLlamaError();

}  // namespace llava
