#include <napi.h>

#include "llama.h"
#include "system_info.h"

namespace llava {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  llama_backend_init();
  exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
  return exports;
}

}  // namespace llava

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return llava::Init(env, exports); }

NODE_API_MODULE(llava_native, InitModule)
