#pragma once
// An encoded image or sound: the projector's output for one medium, kept so that any prompt or
// session of the same model can use it without encoding again.
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "audio_input.h"
#include "image_input.h"
#include "model_state.h"

namespace llava {

struct EmbeddingState {
  ModelPtr model;
  bool audio = false;
  uint32_t nx = 0, ny = 0;  // images: the decoded size (the projector tokenizes by it)
  uint64_t nSamples = 0;    // sound: mono samples at the model's rate (ditto)
  uint32_t sampleRate = 0;
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

// A medium of a request: an embedding encoded earlier, or an image or a sound to decode (and to
// encode only if its content is neither in the KV cache nor encoded elsewhere in the model).
struct MediaSource {
  EmbeddingPtr embedding;
  std::unique_ptr<ImageInput> image;
  std::unique_ptr<AudioInput> audio;
};

// Reads an array of media from JS: native embeddings (of `model`), image or audio inputs.
std::vector<MediaSource> ParseMediaSources(Napi::Env env, const Napi::Value& list, const ModelPtr& model);

// Refuses a medium the model cannot take: no projector, or one without the audio (`audio`) or
// vision encoder (ERR_NO_AUDIO / ERR_NO_VISION).
void RequireEncoder(const ModelState& model, bool audio);

// A bitmap of the medium's size without its content: mtmd lays out the tokens from it.
mtmd_bitmap* PlaceholderBitmap(const EmbeddingState& e);

// An alive, encoded embedding of these pixels, if the model has one.
EmbeddingPtr FindEncoded(ModelState& model, const std::string& id);
// Runs the vision encoder over `image` into `e` and remembers it, unless an encode of the same
// pixels finished while this one waited for the encoder: that one is returned instead, so
// concurrent requests for one image encode it once. Worker thread only.
EmbeddingPtr EncodeInto(ModelState& model, const EmbeddingPtr& e, const RgbImage& image, std::atomic<bool>& abort);
EmbeddingPtr EncodeInto(ModelState& model, const EmbeddingPtr& e, const PcmAudio& audio, std::atomic<bool>& abort);
// A state for the medium, not yet encoded.
EmbeddingPtr NewEmbedding(const ModelPtr& model, const RgbImage& image, const std::string& id);
EmbeddingPtr NewEmbedding(const ModelPtr& model, const PcmAudio& audio, const std::string& id);
// Media chunks the medium expands to (most images: 1; sound: one per 30 s window for most).
size_t CountMediaChunks(ModelState& model, const EmbeddingState& e);
// Reads { kind: 'path' | 'bytes' | 'pixels', ... } from JS; bytes come as an ImageBytes or are
// copied.
ImageInput ParseImageInput(Napi::Env env, const Napi::Object& o);
// Reads { kind: 'audio', source: 'path' | 'bytes' | 'pcm', ... } from JS, the same way.
AudioInput ParseAudioInput(Napi::Env env, const Napi::Object& o);

class Embedding : public Napi::ObjectWrap<Embedding> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Embedding(const Napi::CallbackInfo& info);
  void Adopt(EmbeddingPtr s) { state_ = std::move(s); }
  EmbeddingPtr State(Napi::Env env) const;
  static Embedding* FromValue(Napi::Env env, const Napi::Value& value);

  // model.encodeImage(input, abortHandle?) -> Promise<Embedding>
  static Napi::Value Encode(const Napi::CallbackInfo& info, ModelPtr model);
  // model.encodeAudio(input, abortHandle?) -> Promise<Embedding>
  static Napi::Value EncodeAudio(const Napi::CallbackInfo& info, ModelPtr model);

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
