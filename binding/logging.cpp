#include "logging.h"

#include "log.h"  // llama.cpp common

#include <atomic>
#include <mutex>

#include "ggml.h"
#include "llama.h"
#include "mtmd-helper.h"
#include "mtmd.h"

namespace llava {
namespace {

struct LogSink {
  std::mutex mutex;
  Napi::ThreadSafeFunction tsfn;
  bool active = false;
  unsigned generation = 0;  // which callback is installed; a finalizer only retires its own
  int minLevel = GGML_LOG_LEVEL_WARN;
};

LogSink& Sink() {
  static LogSink* sink = new LogSink();  // never destroyed: llama.cpp may log during exit
  return *sink;
}

thread_local std::string tlsLastError;
thread_local std::vector<std::string>* tlsLayerDevices = nullptr;
thread_local std::string tlsPending;  // llama.cpp emits one message in several CONT pieces
thread_local int tlsPendingLevel = GGML_LOG_LEVEL_NONE;

struct LogMessage {
  int level;
  std::string text;
};

const char* LevelName(int level) {
  switch (level) {
    case GGML_LOG_LEVEL_DEBUG: return "debug";
    case GGML_LOG_LEVEL_INFO: return "info";
    case GGML_LOG_LEVEL_WARN: return "warn";
    case GGML_LOG_LEVEL_ERROR: return "error";
    default: return "info";
  }
}

// "load_tensors: layer  12 assigned to device RPC0, is_swa = 0": llama.cpp says nowhere else.
void NoteLayerDevice(const std::string& text) {
  static const std::string kPrefix = "load_tensors: layer ", kDevice = " assigned to device ";
  if (text.compare(0, kPrefix.size(), kPrefix) != 0) return;
  const size_t at = text.find(kDevice);
  if (at == std::string::npos) return;
  const size_t from = at + kDevice.size();
  tlsLayerDevices->push_back(text.substr(from, text.find(',', from) - from));
}

void Forward(int level, std::string text) {
  if (level == GGML_LOG_LEVEL_ERROR) tlsLastError = text;
  if (tlsLayerDevices && level == GGML_LOG_LEVEL_DEBUG) NoteLayerDevice(text);
  LogSink& sink = Sink();
  std::lock_guard<std::mutex> lock(sink.mutex);
  if (!sink.active || level < sink.minLevel) return;
  auto* msg = new LogMessage{level, std::move(text)};
  napi_status st = sink.tsfn.NonBlockingCall(msg, [](Napi::Env env, Napi::Function fn, LogMessage* m) {
    std::unique_ptr<LogMessage> owned(m);
    if (env == nullptr || fn.IsEmpty()) return;
    try {
      fn.Call({Napi::String::New(env, LevelName(owned->level)), Napi::String::New(env, owned->text)});
    } catch (...) {
      // A throwing log callback must not take generation down with it.
    }
  });
  if (st != napi_ok) delete msg;
}

void OnLog(ggml_log_level level, const char* text, void*) {
  if (text == nullptr) return;
  std::string piece(text);
  if (level == GGML_LOG_LEVEL_CONT) {
    tlsPending += piece;
  } else {
    tlsPending = piece;
    tlsPendingLevel = level;
  }
  if (!tlsPending.empty() && tlsPending.back() == '\n') {
    tlsPending.pop_back();
    Forward(tlsPendingLevel, std::move(tlsPending));
    tlsPending.clear();
  }
}

}  // namespace

void InstallLogging() {
  llama_log_set(OnLog, nullptr);
  mtmd_log_set(OnLog, nullptr);
  mtmd_helper_log_set(OnLog, nullptr);
  // llama.cpp's common library (chat layer, schema converter) writes to stderr from a thread of
  // its own; a library must not. Its errors reach the caller as exceptions instead.
  common_log_set_verbosity_thold(-1);
}

std::string LastLlamaError() { return tlsLastError; }
void ClearLastLlamaError() { tlsLastError.clear(); }
void RecordLayerDevices(std::vector<std::string>* devices) { tlsLayerDevices = devices; }

// setLogCallback(fn | null, minLevel: 'debug'|'info'|'warn'|'error')
Napi::Value SetLogCallback(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LogSink& sink = Sink();
  std::lock_guard<std::mutex> lock(sink.mutex);
  if (sink.active) {
    sink.tsfn.Release();
    sink.active = false;
  }
  if (info.Length() > 0 && info[0].IsFunction()) {
    std::string level = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "warn";
    sink.minLevel = level == "debug" ? GGML_LOG_LEVEL_DEBUG
                    : level == "info"  ? GGML_LOG_LEVEL_INFO
                    : level == "error" ? GGML_LOG_LEVEL_ERROR
                                       : GGML_LOG_LEVEL_WARN;
    const unsigned generation = ++sink.generation;
    // Node finalizes the function when its environment is torn down (a worker_thread that set the
    // callback exits); logging from other threads must stop using it from then on.
    sink.tsfn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "llava-native-log", 256, 1,
                                              [generation](Napi::Env) {
                                                LogSink& s = Sink();
                                                std::lock_guard<std::mutex> l(s.mutex);
                                                if (s.generation == generation) s.active = false;
                                              });
    sink.tsfn.Unref(env);  // logging alone must never keep the process alive
    sink.active = true;
  }
  return env.Undefined();
}

}  // namespace llava
