#include "image_bytes.h"

#include <cstring>
#include <new>

#include "addon_data.h"
#include "errors.h"

namespace llava {

Napi::Function ImageBytes::Define(Napi::Env env) {
  return DefineClass(env, "ImageBytes", {InstanceMethod<&ImageBytes::CopyFrom>("copyFrom"), InstanceMethod<&ImageBytes::Seal>("seal")});
}

ImageBytes::ImageBytes(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ImageBytes>(info) {
  Napi::Env env = info.Env();
  const double size = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(size >= 0 && size <= 4294967295.0)) throw MakeError(env, "ERR_INVALID_ARGUMENT", "ImageBytes(size) expects a size below 4 GiB");
  bytes_ = std::make_shared<OwnedBytes>();
  bytes_->size = static_cast<size_t>(size);
  bytes_->data.reset(new (std::nothrow) unsigned char[bytes_->size ? bytes_->size : 1]);
  if (!bytes_->data) throw MakeError(env, "ERR_OUT_OF_MEMORY", "no memory for an image of " + std::to_string(bytes_->size) + " bytes");
}

Napi::Value ImageBytes::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsNumber()) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "copyFrom(source, offset, length) expected");
  }
  auto src = info[0].As<Napi::TypedArray>();
  const double offset = info[1].As<Napi::Number>().DoubleValue();
  const double length = info[2].As<Napi::Number>().DoubleValue();
  // The source is checked as it is now: the caller may have detached or shrunk it since the call.
  const size_t have = src.ByteLength();
  if (!(offset >= 0 && length >= 0 && offset + length <= static_cast<double>(have)) || src.ArrayBuffer().Data() == nullptr) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "the image buffer was detached or shrunk while it was being read; leave it unchanged until the call settles");
  }
  const size_t n = static_cast<size_t>(length);
  if (n > bytes_->size - bytes_->filled) throw MakeError(env, "ERR_INVALID_ARGUMENT", "more bytes than the image holds");
  const auto* p = static_cast<const unsigned char*>(src.ArrayBuffer().Data()) + src.ByteOffset() + static_cast<size_t>(offset);
  std::memcpy(bytes_->data.get() + bytes_->filled, p, n);
  bytes_->filled += n;
  return env.Undefined();
}

Napi::Value ImageBytes::Seal(const Napi::CallbackInfo& info) {
  bytes_->size = bytes_->filled;
  return info.Env().Undefined();
}

std::shared_ptr<const OwnedBytes> ImageBytes::From(Napi::Env env, const Napi::Value& value) {
  AddonData* data = AddonData::Of(env);
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->imageBytesCtor.Value())) return nullptr;
  ImageBytes* self = Napi::ObjectWrap<ImageBytes>::Unwrap(value.As<Napi::Object>());
  if (self->bytes_->filled != self->bytes_->size) throw MakeError(env, "ERR_INTERNAL", "the image bytes were not completely copied");
  return self->bytes_;
}

}  // namespace llava
