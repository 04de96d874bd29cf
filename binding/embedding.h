#pragma once
// An encoded image: the projector's output for one image, kept so that any prompt or session of
// the same model can use it without encoding again.
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "image_input.h"
#include "model_state.h"

namespace llava {

struct EmbeddingState {
  ModelPtr model;
  uint32_t nx = 0, ny = 0;  // the decoded image's size (the projector tokenizes by it)
  std::string id;           // content hash: identical pixels give identical ids
  int nEmbd = 0;
  // One entry per media chunk the image expands to (most projectors: one).
  std::vector<std::vector<float>> chunks;
  std::vector<int> chunkTokens;
  double encoderMs = 0;  // time in the vision encoder itself, as llama.cpp's tools log it
  bool encoded() const { return !chunks.empty(); }
  int totalTokens() const {
    int n = 0;
    for (int t : chunkTokens) n += t;
    return n;
  }
};

using EmbeddingPtr = std::shared_ptr<EmbeddingState>;

// An image of a request: an embedding encoded earlier, or an input to decode (and to encode
// only if its pixels are neither in the KV cache nor encoded elsewhere in the model).
struct ImageSource {
  EmbeddingPtr embedding;
  std::unique_ptr<ImageInput> input;
};

// Reads an array of images from JS: native embeddings (of `model`) or image inputs.
std::vector<ImageSource> ParseImageSources(Napi::Env env, const Napi::Value& list, const ModelPtr& model);

// An alive, encoded embedding of these pixels, if the model has one.
EmbeddingPtr FindEncoded(ModelState& model, const std::string& id);
// Runs the vision encoder over `image` into `e` and remembers it, unless an encode of the same
// pixels finished while this one waited for the encoder: that one is returned instead, so
// concurrent requests for one image encode it once. Worker thread only.
EmbeddingPtr EncodeInto(ModelState& model, const EmbeddingPtr& e, const RgbImage& image, std::atomic<bool>& abort);
// Image media chunks one image of this size expands to (most projectors: 1).
size_t CountImageChunks(ModelState& model, uint32_t nx, uint32_t ny);
// Reads { kind: 'path' | 'bytes' | 'pixels', ... } from JS; bytes come as an ImageBytes or are
// copied.
ImageInput ParseImageInput(Napi::Env env, const Napi::Object& o);

class Embedding : public Napi::ObjectWrap<Embedding> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Embedding(const Napi::CallbackInfo& info);
  void Adopt(EmbeddingPtr s) { state_ = std::move(s); }
  EmbeddingPtr State(Napi::Env env) const;
  static Embedding* FromValue(Napi::Env env, const Napi::Value& value);

  // model.encodeImage(input, abortHandle?) -> Promise<Embedding>
  static Napi::Value Encode(const Napi::CallbackInfo& info, ModelPtr model);

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value ToFloat32Array(const Napi::CallbackInfo& info);
  // A second handle on the same embedding, which a call takes the moment it is made: disposing
  // this one afterwards does not take the image away from the call.
  Napi::Value Retain(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  EmbeddingPtr state_;
};

}  // namespace llava
