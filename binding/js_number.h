#pragma once
#include <napi.h>

namespace llava {

// o[key] as a double, or `fallback` when it is absent, not a number, or NaN (NaN never reaches
// llama.cpp). The TypeScript layer validates ranges; this is the native layer's last guard.
inline double Num(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) return fallback;
  double d = v.As<Napi::Number>().DoubleValue();
  return d == d ? d : fallback;
}

}  // namespace llava
