#pragma once
// Per-environment state (main thread and each worker_thread get their own), so the addon is
// context-aware: constructors are looked up here, never in process-wide statics.
#include <napi.h>

namespace llava {

struct AddonData {
  Napi::FunctionReference abortHandleCtor;
  Napi::FunctionReference modelCtor;
  Napi::FunctionReference sessionCtor;
  Napi::FunctionReference embeddingCtor;

  static AddonData* Of(Napi::Env env) { return env.GetInstanceData<AddonData>(); }
};

}  // namespace llava
