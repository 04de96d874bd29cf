#pragma once
// llama.cpp, ggml and mtmd log through callbacks installed here. Silent by default; JS can route
// messages at or above a level to a callback. The last error line of each thread is kept so
// that a failed load can say why.
#include <napi.h>

#include <string>
#include <vector>

namespace llava {

void InstallLogging();
Napi::Value SetLogCallback(const Napi::CallbackInfo& info);
// The most recent ERROR-level llama.cpp message logged on this thread ("" if none).
std::string LastLlamaError();
void ClearLastLlamaError();
// While set, the devices llama.cpp assigns each layer to as it loads a model on this thread are
// appended to *devices (layer order, the output layer last); nullptr stops it.
void RecordLayerDevices(std::vector<std::string>* devices);

}  // namespace llava
