#include <napi.h>

#include <mutex>

#include "abort_handle.h"
#include "backends.h"
#include "chat_render.h"
#include "chat_test_hooks.h"
#include "addon_data.h"
#include "embedding.h"
#include "thread_test_hooks.h"
#include "image_bytes.h"
#include "hub_plan.h"
#include "json_schema.h"
#include "llama.h"
#include "logging.h"
#include "model.h"
#include "session.h"
#include "session_group.h"
#include "process_limits.h"
#include "rpc.h"
#include "system_info.h"

namespace llava {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  static std::once_flag once;
  std::call_once(once, [] {
    InstallLogging();
    LoadBackends();
    llama_backend_init();
  });

  auto* data = new AddonData();
  Napi::Function abortHandle = AbortHandle::Define(env);
  Napi::Function model = Model::Define(env);
  Napi::Function session = Session::Define(env);
  Napi::Function sessionGroup = SessionGroup::Define(env);
  Napi::Function embedding = Embedding::Define(env);
  Napi::Function imageBytes = ImageBytes::Define(env);
  data->abortHandleCtor = Napi::Persistent(abortHandle);
  data->modelCtor = Napi::Persistent(model);
  data->sessionCtor = Napi::Persistent(session);
  data->sessionGroupCtor = Napi::Persistent(sessionGroup);
  data->embeddingCtor = Napi::Persistent(embedding);
  data->imageBytesCtor = Napi::Persistent(imageBytes);
  env.SetInstanceData<AddonData>(data);
  // Created before the cleanup hook below is added, so that hook runs first at teardown (hooks run
  // in reverse order): see completion_queue.h.
  data->completions = std::make_shared<CompletionQueue>(env);
  // Runs before the environment's instance data is freed: stop and wait for native work.
  RegistryPtr work = data->work;
  napi_add_env_cleanup_hook(
      env, [](void* arg) { static_cast<RegistryPtr*>(arg)->get()->Terminate(), delete static_cast<RegistryPtr*>(arg); },
      new RegistryPtr(work));

  exports.Set("AbortHandle", abortHandle);
  exports.Set("Model", model);
  exports.Set("Session", session);
  exports.Set("SessionGroup", sessionGroup);
  exports.Set("Embedding", embedding);
  exports.Set("ImageBytes", imageBytes);
  exports.Set("loadModel", Napi::Function::New(env, Model::Load, "loadModel"));
  exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
  exports.Set("rpcDevices", Napi::Function::New(env, RpcDevices, "rpcDevices"));
  exports.Set("rpcServe", Napi::Function::New(env, RpcServe, "rpcServe"));
  exports.Set("traceThreadGovernor", Napi::Function::New(env, TraceThreadGovernor, "traceThreadGovernor"));
  exports.Set("flashAttentionDecode", Napi::Function::New(env, FlashAttentionDecode, "flashAttentionDecode"));
  exports.Set("chatGrammarAccepts", Napi::Function::New(env, ChatGrammarAccepts, "chatGrammarAccepts"));
  exports.Set("chatParseStreamed", Napi::Function::New(env, ChatParseStreamed, "chatParseStreamed"));
  exports.Set("renderChat", Napi::Function::New(env, RenderChat, "renderChat"));
  exports.Set("hubPlan", Napi::Function::New(env, HubPlan, "hubPlan"));
  exports.Set("jsonSchemaToGrammar", Napi::Function::New(env, JsonSchemaToGrammar, "jsonSchemaToGrammar"));
  exports.Set("setMemoryLimit", Napi::Function::New(env, SetMemoryLimit, "setMemoryLimit"));
  exports.Set("shutdown", Napi::Function::New(
                              env,
                              [](const Napi::CallbackInfo& info) {
                                AddonData::Of(info.Env())->work->Terminate();
                                return info.Env().Undefined();
                              },
                              "shutdown"));
  exports.Set("setLogCallback", Napi::Function::New(env, SetLogCallback, "setLogCallback"));
  return exports;
}

}  // namespace llava

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return llava::Init(env, exports); }

NODE_API_MODULE(llava_native, InitModule)
