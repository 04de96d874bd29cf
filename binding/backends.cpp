#include "backends.h"

#include "ggml-backend.h"

#if defined(LLAVA_BACKEND_DL) && !defined(_WIN32)
#include <dlfcn.h>

#include <string>
#endif

namespace llava {

void LoadBackends() {
#if defined(LLAVA_BACKEND_DL)
#if defined(_WIN32)
  ggml_backend_load_all();
#else
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&LoadBackends), &info) != 0 && info.dli_fname != nullptr) {
    std::string path = info.dli_fname;
    const size_t slash = path.find_last_of('/');
    ggml_backend_load_all_from_path(slash == std::string::npos ? "." : path.substr(0, slash).c_str());
  } else {
    ggml_backend_load_all();
  }
#endif
#endif
}

}  // namespace llava
