#include "session_group.h"

#include <algorithm>

#include "addon_data.h"
#include "errors.h"
#include "js_number.h"
#include "model.h"

namespace llava {
SessionParams ParseSessionParams(const Napi::Object& o) {
  SessionParams p;
  p.contextSize = static_cast<uint32_t>(std::min(16777216.0, std::max(0.0, Num(o, "contextSize", 0))));
  p.batchSize = static_cast<uint32_t>(std::min(1048576.0, std::max(1.0, Num(o, "batchSize", 2048))));
  p.ubatchSize = static_cast<uint32_t>(std::min(1048576.0, std::max(1.0, Num(o, "ubatchSize", 512))));
  p.threads = static_cast<int32_t>(std::min(1024.0, std::max(1.0, Num(o, "threads", 4))));
  p.threadsBatch = static_cast<int32_t>(std::min(1024.0, std::max(1.0, Num(o, "threadsBatch", p.threads))));
  p.flashAttention = static_cast<int32_t>(std::min(1.0, std::max(-1.0, Num(o, "flashAttention", -1))));
  p.deterministic = static_cast<int32_t>(std::min(1.0, std::max(-1.0, Num(o, "deterministic", -1))));
  const Napi::Value adaptive = o.Get("adaptiveThreads");
  p.adaptiveThreads = !adaptive.IsBoolean() || adaptive.As<Napi::Boolean>().Value();
  return p;
}

Napi::Function SessionGroup::Define(Napi::Env env) {
  return DefineClass(env, "SessionGroup",
                     {InstanceMethod<&SessionGroup::FreeSessions>("freeSessions"), InstanceMethod<&SessionGroup::Dispose>("dispose")});
}

SessionGroup::SessionGroup(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionGroup>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[1].IsObject() || !info[2].IsNumber()) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "SessionGroup(model, params, sessions) expected");
  }
  ModelPtr model = Model::FromValue(env, info[0])->State(env);
  if (model->vocabOnly) throw MakeError(env, "ERR_INVALID_ARGUMENT", "the model was loaded with vocabOnly: it has a tokenizer and a chat template but no weights to run; load it without vocabOnly to generate");
  const double n = info[2].As<Napi::Number>().DoubleValue();
  const double maxSeq = static_cast<double>(llama_max_parallel_sequences());
  if (!(n >= 1 && n <= maxSeq)) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "a session group holds 1 to " + std::to_string(static_cast<int>(maxSeq)) + " sessions");
  }
  state_ = std::make_shared<ContextState>(std::move(model), ParseSessionParams(info[1].As<Napi::Object>()), static_cast<uint32_t>(n));
}

SessionGroup* SessionGroup::FromValue(Napi::Env env, const Napi::Value& value) {
  AddonData* data = AddonData::Of(env);
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->sessionGroupCtor.Value())) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "expected a native SessionGroup");
  }
  return Napi::ObjectWrap<SessionGroup>::Unwrap(value.As<Napi::Object>());
}

ContextPtr SessionGroup::State(Napi::Env env) const {
  if (!state_) throw MakeError(env, "ERR_DISPOSED", "the session group has been disposed; create a new one with model.createSessionGroup()");
  return state_;
}

Napi::Value SessionGroup::FreeSessions(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), State(info.Env())->FreeSequences());
}

// Sessions still alive keep the context (shared_ptr); it is freed with the last of them.
Napi::Value SessionGroup::Dispose(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

}  // namespace llava
