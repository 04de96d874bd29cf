#pragma once
// Errors cross from worker threads to JS as (code, message) pairs; codes are the stable strings
// that lib/errors.ts knows. Native code never throws into llama.cpp and never aborts.
#include <napi.h>

#include <stdexcept>
#include <string>

namespace llava {

struct NativeError : std::runtime_error {
  std::string code;
  NativeError(std::string c, const std::string& message) : std::runtime_error(message), code(std::move(c)) {}
};

inline Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

[[noreturn]] inline void Throw(const std::string& code, const std::string& message) { throw NativeError(code, message); }

}  // namespace llava
