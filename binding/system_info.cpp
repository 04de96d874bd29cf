#include "system_info.h"

#include "ggml-backend.h"
#include "llama.h"

namespace llava {

Napi::Value SystemInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("llamaCppCommit", LLAVA_LLAMA_COMMIT);

  Napi::Array backends = Napi::Array::New(env);
  for (size_t i = 0; i < ggml_backend_reg_count(); i++) {
    backends.Set(static_cast<uint32_t>(i), ggml_backend_reg_name(ggml_backend_reg_get(i)));
  }
  out.Set("backends", backends);

  Napi::Array devices = Napi::Array::New(env);
  for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", ggml_backend_dev_name(dev));
    d.Set("description", ggml_backend_dev_description(dev));
    const char* type = "cpu";
    switch (ggml_backend_dev_type(dev)) {
      case GGML_BACKEND_DEVICE_TYPE_GPU: type = "gpu"; break;
      case GGML_BACKEND_DEVICE_TYPE_IGPU: type = "igpu"; break;
      case GGML_BACKEND_DEVICE_TYPE_ACCEL: type = "accel"; break;
      default: break;
    }
    d.Set("type", type);
    size_t freeMem = 0, totalMem = 0;
    ggml_backend_dev_memory(dev, &freeMem, &totalMem);
    d.Set("memoryFree", static_cast<double>(freeMem));
    d.Set("memoryTotal", static_cast<double>(totalMem));
    devices.Set(static_cast<uint32_t>(i), d);
  }
  out.Set("devices", devices);

  // llama.cpp's own one-line summary, e.g. "CPU : SSE3 = 1 | AVX2 = 1 | ...".
  out.Set("cpuFeatures", llama_print_system_info());
  out.Set("supportsMmap", llama_supports_mmap());
  out.Set("supportsGpuOffload", llama_supports_gpu_offload());
  out.Set("maxDevices", static_cast<double>(llama_max_devices()));
  return out;
}

}  // namespace llava
