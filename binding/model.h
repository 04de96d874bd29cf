#pragma once
#include <napi.h>

#include "model_state.h"

namespace llava {

class Model : public Napi::ObjectWrap<Model> {
 public:
  static Napi::Function Define(Napi::Env env);
  // load(params, abortHandle?, onProgress?) -> Promise<Model>
  static Napi::Value Load(const Napi::CallbackInfo& info);

  explicit Model(const Napi::CallbackInfo& info);
  void Adopt(ModelPtr state) { state_ = std::move(state); }
  // The live state, or a thrown ERR_DISPOSED.
  ModelPtr State(Napi::Env env) const;

  static Model* FromValue(Napi::Env env, const Napi::Value& value);

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Tokenize(const Napi::CallbackInfo& info);
  Napi::Value Detokenize(const Napi::CallbackInfo& info);
  Napi::Value EncodeImage(const Napi::CallbackInfo& info);
  Napi::Value EncodeAudio(const Napi::CallbackInfo& info);
  Napi::Value EncodeCount(const Napi::CallbackInfo& info);
  Napi::Value CountTokens(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  ModelPtr state_;
};

}  // namespace llava
