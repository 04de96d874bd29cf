#include "abort_handle.h"

#include "addon_data.h"

namespace llava {

Napi::Function AbortHandle::Define(Napi::Env env) {
  return DefineClass(env, "AbortHandle",
                     {InstanceMethod<&AbortHandle::Abort>("abort"), InstanceMethod<&AbortHandle::Aborted>("aborted")});
}

AbortHandle::AbortHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AbortHandle>(info) {}

Napi::Value AbortHandle::Abort(const Napi::CallbackInfo& info) {
  flag_->store(true);
  return info.Env().Undefined();
}

Napi::Value AbortHandle::Aborted(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), flag_->load()); }

AbortFlag AbortHandle::From(const Napi::Value& value) {
  if (value.IsObject()) {
    Napi::Object obj = value.As<Napi::Object>();
    AddonData* data = AddonData::Of(value.Env());
    if (obj.InstanceOf(data->abortHandleCtor.Value())) return Napi::ObjectWrap<AbortHandle>::Unwrap(obj)->flag();
  }
  return std::make_shared<std::atomic<bool>>(false);
}

}  // namespace llava
