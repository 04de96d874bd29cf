#pragma once
#include <napi.h>

#include "context_state.h"

namespace llava {

// One context with a sequence per session: new SessionGroup(model, params, sessions). Sessions
// created with it (new Session(model, params, group)) are decoded together.
class SessionGroup : public Napi::ObjectWrap<SessionGroup> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit SessionGroup(const Napi::CallbackInfo& info);
  static SessionGroup* FromValue(Napi::Env env, const Napi::Value& value);
  ContextPtr State(Napi::Env env) const;

 private:
  Napi::Value FreeSessions(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  ContextPtr state_;
};

// Reads the context options shared by Session and SessionGroup.
SessionParams ParseSessionParams(const Napi::Object& o);

}  // namespace llava
