#pragma once
// Native memory for a large image buffer, filled from JS in slices between turns of the event
// loop. A native thread may then read it for as long as it likes: unlike the caller's Buffer, it
// cannot be changed, transferred or freed by JS while an operation runs.
#include <napi.h>

#include <memory>

namespace llava {

struct OwnedBytes {
  std::unique_ptr<unsigned char[]> data;  // not zeroed: every byte is copied in before use
  size_t size = 0;
  size_t filled = 0;  // copyFrom() calls fill it from the start, in order
};

class ImageBytes : public Napi::ObjectWrap<ImageBytes> {
 public:
  static Napi::Function Define(Napi::Env env);
  // new ImageBytes(size)
  explicit ImageBytes(const Napi::CallbackInfo& info);
  // The bytes of `value` if it is a completely filled ImageBytes, else null.
  static std::shared_ptr<const OwnedBytes> From(Napi::Env env, const Napi::Value& value);

 private:
  // copyFrom(source: Uint8Array, offset, length): appends source[offset, offset + length).
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  // seal(): the bytes copied so far are all there is (a decoder that knew only an upper bound).
  Napi::Value Seal(const Napi::CallbackInfo& info);
  std::shared_ptr<OwnedBytes> bytes_;
};

}  // namespace llava
