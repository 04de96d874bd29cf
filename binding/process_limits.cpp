#include "process_limits.h"

#include "errors.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#endif

namespace llava {

Napi::Value SetMemoryLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "setMemoryLimit(bytes) needs a number");
  const double bytes = info[0].As<Napi::Number>().DoubleValue();
  if (!(bytes >= 1) || bytes > 9.007199254740991e15) throw MakeError(env, "ERR_INVALID_ARGUMENT", "setMemoryLimit(bytes): bytes out of range");
#if defined(__linux__)
  // Since Linux 4.7, RLIMIT_DATA counts every private writable mapping: malloc's heap and its
  // large mmap'd blocks, so the KV cache, compute buffers and weights read without mmap. Memory-
  // mapped model files (shared, read-only) are not counted. Only the soft limit is lowered.
  struct rlimit lim {};
  if (getrlimit(RLIMIT_DATA, &lim) != 0) return Napi::Boolean::New(env, false);
  const rlim_t want = static_cast<rlim_t>(bytes);
  lim.rlim_cur = lim.rlim_max == RLIM_INFINITY || want < lim.rlim_max ? want : lim.rlim_max;
  return Napi::Boolean::New(env, setrlimit(RLIMIT_DATA, &lim) == 0);
#else
  // macOS does not enforce RLIMIT_DATA on mmap'd memory, and Windows has no rlimits: nothing
  // there would hold the limit.
  return Napi::Boolean::New(env, false);
#endif
}

}  // namespace llava
