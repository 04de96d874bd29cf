#pragma once
// Per-environment state (main thread and each worker_thread get their own), so the addon is
// context-aware: constructors are looked up here, never in process-wide statics.
#include <napi.h>

#include "completion_queue.h"
#include "work_registry.h"

namespace llava {

struct AddonData {
  Napi::FunctionReference abortHandleCtor;
  Napi::FunctionReference modelCtor;
  Napi::FunctionReference sessionCtor;
  Napi::FunctionReference sessionGroupCtor;
  Napi::FunctionReference embeddingCtor;
  Napi::FunctionReference imageBytesCtor;
  RegistryPtr work = std::make_shared<WorkRegistry>();
  CompletionQueuePtr completions;

  static AddonData* Of(Napi::Env env) { return env.GetInstanceData<AddonData>(); }
};

}  // namespace llava
