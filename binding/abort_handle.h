#pragma once
// A cancellation flag shared between JS (which sets it from an AbortSignal) and the worker thread
// (which polls it, and hands it to llama.cpp's progress and abort callbacks).
#include <napi.h>

#include <atomic>
#include <memory>

namespace llava {

using AbortFlag = std::shared_ptr<std::atomic<bool>>;

class AbortHandle : public Napi::ObjectWrap<AbortHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit AbortHandle(const Napi::CallbackInfo& info);
  AbortFlag flag() const { return flag_; }

  // The flag behind an optional JS AbortHandle argument; a fresh, never-set flag otherwise.
  static AbortFlag From(const Napi::Value& value);

 private:
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value Aborted(const Napi::CallbackInfo& info);
  AbortFlag flag_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace llava
