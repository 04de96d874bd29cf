#pragma once
#include <napi.h>

#include "session_state.h"

namespace llava {

class Session : public Napi::ObjectWrap<Session> {
 public:
  static Napi::Function Define(Napi::Env env);
  // new Session(model, { contextSize, batchSize, ubatchSize, threads, threadsBatch, flashAttention }[, group]):
  // a context of its own, or a sequence of a SessionGroup's context (whose options then apply).
  explicit Session(const Napi::CallbackInfo& info);

 private:
  // generate(request, abortHandle, onPieces(pieces)) -> Promise<result>
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value Reset(const Napi::CallbackInfo& info);
  Napi::Value CacheInfo(const Napi::CallbackInfo& info);
  // save(path) / load(path) -> Promise<void>
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value FileTask(const Napi::CallbackInfo& info, const char* name, void (*task)(SessionState&, const std::string&));
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  SessionPtr State(Napi::Env env) const;

  SessionPtr state_;
};

}  // namespace llava
