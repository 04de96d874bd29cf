#include "embedding.h"

#include <chrono>
#include <cstring>

#include "abort_handle.h"
#include "addon_data.h"
#include "compute_thread.h"
#include "errors.h"
#include "image_bytes.h"
#include "logging.h"
#include "promise_worker.h"

namespace llava {

EmbeddingPtr FindEncoded(ModelState& model, const std::string& id) {
  std::lock_guard<std::mutex> lock(model.embeddingsMutex);
  auto it = model.embeddings.find(id);
  if (it == model.embeddings.end()) return nullptr;
  EmbeddingPtr e = it->second.lock();
  if (!e) model.embeddings.erase(it);
  return e;
}

void RequireEncoder(const ModelState& model, bool audio) {
  const char* given = audio ? "sound was given" : "an image was given";
  if (!model.vision) Throw(audio ? "ERR_NO_AUDIO" : "ERR_NO_VISION", std::string(given) + " but the model was loaded without a projector (mmproj)");
  if (audio && !model.hearsAudio()) Throw("ERR_NO_AUDIO", "sound was given but the projector has no audio encoder");
  if (!audio && !mtmd_support_vision(model.vision)) Throw("ERR_NO_VISION", "an image was given but the projector has no vision encoder");
}

mtmd_bitmap* PlaceholderBitmap(const EmbeddingState& e) {
  return e.audio ? mtmd_bitmap_init_from_audio(static_cast<size_t>(e.nSamples), nullptr) : mtmd_bitmap_init(e.nx, e.ny, nullptr);
}

size_t CountMediaChunks(ModelState& model, const EmbeddingState& e) {
  mtmd_bitmap* bmp = PlaceholderBitmap(e);
  mtmd_input_chunks* chunks = mtmd_input_chunks_init();
  std::string marker = mtmd_default_marker();
  mtmd_input_text text = {marker.c_str(), marker.size(), false, true};
  const mtmd_bitmap* bmps[] = {bmp};
  const int32_t rc = mtmd_tokenize(model.vision, chunks, &text, bmps, 1);
  size_t n = 0;
  for (size_t i = 0; rc == 0 && i < mtmd_input_chunks_size(chunks); i++) {
    if (mtmd_input_chunk_get_type(mtmd_input_chunks_get(chunks, i)) != MTMD_INPUT_CHUNK_TYPE_TEXT) n++;
  }
  mtmd_input_chunks_free(chunks);
  mtmd_bitmap_free(bmp);
  if (rc != 0 || n == 0) {
    Throw(e.audio ? "ERR_AUDIO_DECODE" : "ERR_IMAGE_DECODE",
          std::string("the projector could not lay out the ") + (e.audio ? "sound" : "image") + " (mtmd error " + std::to_string(rc) + ")");
  }
  return n;
}

namespace {

// Runs the encoder over every media chunk of `bmp` (which it frees) into `e`.
EmbeddingPtr EncodeBitmap(ModelState& model, const EmbeddingPtr& e, mtmd_bitmap* bmp, std::atomic<bool>& abort) {
  const bool audio = e->audio;
  const char* kind = audio ? "sound" : "image";
  const char* code = audio ? "ERR_AUDIO_ENCODE" : "ERR_IMAGE_ENCODE";
  if (!bmp) Throw(audio ? "ERR_AUDIO_DECODE" : "ERR_IMAGE_DECODE", std::string("the ") + kind + " could not be turned into a bitmap");
  mtmd_bitmap_set_id(bmp, e->id.c_str());
  mtmd_input_chunks* chunks = mtmd_input_chunks_init();
  struct Cleanup {
    mtmd_bitmap* b;
    mtmd_input_chunks* c;
    ~Cleanup() {
      mtmd_input_chunks_free(c);
      mtmd_bitmap_free(b);
    }
  } cleanup{bmp, chunks};
  std::string marker = mtmd_default_marker();
  mtmd_input_text text = {marker.c_str(), marker.size(), false, true};
  const mtmd_bitmap* bmps[] = {bmp};

  std::vector<std::vector<float>> out;
  std::vector<int> tokens;
  {
    // mtmd's encoder keeps per-context buffers: one encode at a time per model.
    std::lock_guard<std::mutex> lock(model.visionMutex);
    if (EmbeddingPtr done = FindEncoded(model, e->id)) return done;
    ClearLastLlamaError();
    if (mtmd_tokenize(model.vision, chunks, &text, bmps, 1) != 0) {
      std::string why = LastLlamaError();
      Throw(code, std::string("the projector could not preprocess the ") + kind + (why.empty() ? std::string() : ": " + why));
    }
    for (size_t i = 0; i < mtmd_input_chunks_size(chunks); i++) {
      const mtmd_input_chunk* c = mtmd_input_chunks_get(chunks, i);
      if (mtmd_input_chunk_get_type(c) == MTMD_INPUT_CHUNK_TYPE_TEXT) continue;
      if (abort.load()) Throw("ERR_ABORTED", std::string(audio ? "audio" : "image") + " encoding was aborted");
      ClearLastLlamaError();
      const auto t0 = std::chrono::steady_clock::now();
      const int32_t status = ComputeThread::Run([&] { return mtmd_encode_chunk(model.vision, c); });
      e->encoderMs += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (status != 0) {
        std::string why = LastLlamaError();
        Throw(code, std::string(audio ? "the audio" : "the vision") + " encoder failed" + (why.empty() ? std::string() : ": " + why));
      }
      const size_t n = mtmd_input_chunk_get_n_tokens(c);
      const float* embd = mtmd_get_output_embd(model.vision);
      out.emplace_back(embd, embd + n * static_cast<size_t>(e->nEmbd));
      tokens.push_back(static_cast<int>(n));
    }
    model.encodeCount++;
    if (out.empty()) Throw(code, std::string("the projector produced no tokens for this ") + kind);
    e->chunks = std::move(out);
    e->chunkTokens = std::move(tokens);
    // Registered before the encoder is free again, so an encode of the same content waiting for
    // it finds this one.
    std::lock_guard<std::mutex> registry(model.embeddingsMutex);
    model.embeddings[e->id] = e;
  }
  return e;
}

}  // namespace

EmbeddingPtr EncodeInto(ModelState& model, const EmbeddingPtr& e, const RgbImage& image, std::atomic<bool>& abort) {
  return EncodeBitmap(model, e, mtmd_bitmap_init(image.width, image.height, image.rgb.data()), abort);
}

EmbeddingPtr EncodeInto(ModelState& model, const EmbeddingPtr& e, const PcmAudio& audio, std::atomic<bool>& abort) {
  return EncodeBitmap(model, e, mtmd_bitmap_init_from_audio(audio.samples.size(), audio.samples.data()), abort);
}

EmbeddingPtr NewEmbedding(const ModelPtr& model, const RgbImage& image, const std::string& id) {
  auto e = std::make_shared<EmbeddingState>();
  e->model = model;
  e->nx = image.width;
  e->ny = image.height;
  e->id = id;
  e->nEmbd = llama_model_n_embd_inp(model->model);
  return e;
}

EmbeddingPtr NewEmbedding(const ModelPtr& model, const PcmAudio& audio, const std::string& id) {
  auto e = std::make_shared<EmbeddingState>();
  e->model = model;
  e->audio = true;
  e->nSamples = audio.samples.size();
  e->sampleRate = audio.sampleRate;
  e->id = id;
  e->nEmbd = llama_model_n_embd_inp(model->model);
  return e;
}

namespace {

class EncodeWorker : public PromiseWorker {
 public:
  EncodeWorker(Napi::Env env, ModelPtr model, std::unique_ptr<ImageInput> image, std::unique_ptr<AudioInput> audio, AbortFlag abort)
      : PromiseWorker(env, audio ? "llava.encodeAudio" : "llava.encodeImage", abort),
        model_(std::move(model)),
        image_(std::move(image)),
        audio_(std::move(audio)),
        abort_(std::move(abort)) {
    GuardRpc(model_->rpc);
  }

 protected:
  void Run() override {
    const auto t0 = std::chrono::steady_clock::now();
    if (image_) {
      RgbImage image = DecodeImage(*image_);
      image_.reset();  // the encoded bytes (or given pixels) in native memory are not needed past here
      Encode(image, ContentId(image), "image");
    } else {
      PcmAudio audio = DecodeAudio(*audio_, model_->audioSampleRate());
      audio_.reset();
      Encode(audio, AudioContentId(audio), "audio");
    }
    elapsedMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  template <typename Content>
  void Encode(const Content& content, const std::string& id, const char* kind) {
    if (abort_->load()) Throw("ERR_ABORTED", std::string(kind) + " encoding was aborted");
    state_ = FindEncoded(*model_, id);
    reused_ = state_ != nullptr;
    if (!state_) {
      EmbeddingPtr e = NewEmbedding(model_, content, id);
      state_ = EncodeInto(*model_, e, content, *abort_);
      reused_ = state_ != e;
    }
  }

  Napi::Value Result(Napi::Env env) override {
    const double encoderMs = reused_ ? 0.0 : state_->encoderMs;
    Napi::Object obj = AddonData::Of(env)->embeddingCtor.New({});
    Embedding::FromValue(env, obj)->Adopt(std::move(state_));
    obj.Set("encodeMs", elapsedMs_);
    obj.Set("encoderMs", encoderMs);
    obj.Set("reused", reused_);
    return obj;
  }

 private:
  ModelPtr model_;
  std::unique_ptr<ImageInput> image_;
  std::unique_ptr<AudioInput> audio_;
  AbortFlag abort_;
  EmbeddingPtr state_;
  double elapsedMs_ = 0;
  bool reused_ = false;
};

// Bytes from JS: an ImageBytes the TypeScript layer filled in slices (large buffers), or a buffer
// copied now (small ones), so that no native thread ever reads memory JS owns.
template <typename Input>
void TakeBytes(Napi::Env env, const Napi::Value& v, Input& in) {
  if (std::shared_ptr<const OwnedBytes> owned = ImageBytes::From(env, v)) {
    in.bytes = owned->data.get();
    in.size = owned->size;
    in.keep = std::move(owned);
    return;
  }
  if (!v.IsTypedArray() && !v.IsArrayBuffer()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "media data must be a Buffer or Uint8Array");
  const unsigned char* p = nullptr;
  size_t n = 0;
  if (v.IsArrayBuffer()) {
    auto ab = v.As<Napi::ArrayBuffer>();
    p = static_cast<const unsigned char*>(ab.Data());
    n = ab.ByteLength();
  } else {
    auto ta = v.As<Napi::TypedArray>();
    p = static_cast<const unsigned char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    n = ta.ByteLength();
  }
  in.owned.assign(p, p + n);
  in.bytes = in.owned.data();
  in.size = n;
}

}  // namespace

ImageInput ParseImageInput(Napi::Env env, const Napi::Object& o) {
  ImageInput in;
  std::string kind = o.Get("kind").ToString().Utf8Value();
  Napi::Value maxPixels = o.Get("maxPixels");
  in.maxPixels = maxPixels.IsNumber() && maxPixels.As<Napi::Number>().DoubleValue() >= 1
                     ? static_cast<uint64_t>(maxPixels.As<Napi::Number>().DoubleValue())
                     : (64ull << 20);
  Napi::Value orient = o.Get("orient");
  in.orient = !orient.IsBoolean() || orient.As<Napi::Boolean>().Value();
  Napi::Value background = o.Get("background");
  if (background.IsArray() && background.As<Napi::Array>().Length() == 3) {
    for (uint32_t c = 0; c < 3; c++) {
      const double v = background.As<Napi::Array>().Get(c).ToNumber().DoubleValue();
      in.background[c] = static_cast<unsigned char>(v >= 0 && v <= 255 ? v : 255);
    }
  }
  Napi::Value composite = o.Get("composite");
  in.composite = composite.IsBoolean() && composite.As<Napi::Boolean>().Value();
  Napi::Value frame = o.Get("frame");
  if (frame.IsNumber()) in.frame = frame.As<Napi::Number>().Uint32Value();
  if (kind == "path") {
    in.kind = ImageInput::Kind::Path;
    in.path = o.Get("path").ToString().Utf8Value();
  } else if (kind == "bytes" || kind == "pixels") {
    in.kind = kind == "bytes" ? ImageInput::Kind::Bytes : ImageInput::Kind::Pixels;
    TakeBytes(env, o.Get("data"), in);
    if (kind == "pixels") {
      in.width = o.Get("width").ToNumber().Uint32Value();
      in.height = o.Get("height").ToNumber().Uint32Value();
      in.format = o.Get("format").ToString().Utf8Value();
    }
  } else if (kind == "size") {
    in.kind = ImageInput::Kind::Size;
    in.width = o.Get("width").ToNumber().Uint32Value();
    in.height = o.Get("height").ToNumber().Uint32Value();
  } else {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "unknown image input kind '" + kind + "'");
  }
  return in;
}

AudioInput ParseAudioInput(Napi::Env env, const Napi::Object& o) {
  AudioInput in;
  const std::string source = o.Get("source").ToString().Utf8Value();
  Napi::Value maxSeconds = o.Get("maxSeconds");
  if (maxSeconds.IsNumber() && maxSeconds.As<Napi::Number>().DoubleValue() > 0) in.maxSeconds = maxSeconds.As<Napi::Number>().DoubleValue();
  if (source == "path") {
    in.kind = AudioInput::Kind::Path;
    in.path = o.Get("path").ToString().Utf8Value();
  } else if (source == "bytes" || source == "pcm") {
    in.kind = source == "bytes" ? AudioInput::Kind::Bytes : AudioInput::Kind::Pcm;
    TakeBytes(env, o.Get("data"), in);
    if (source == "pcm") {
      in.sampleRate = o.Get("sampleRate").ToNumber().Uint32Value();
      in.channels = o.Get("channels").ToNumber().Uint32Value();
      // float32 samples are read in place: the copy (or native buffer) must be aligned for them
      if (reinterpret_cast<uintptr_t>(in.bytes) % alignof(float) != 0) {
        std::vector<unsigned char> aligned(in.bytes, in.bytes + in.size);
        in.owned.swap(aligned);
        in.bytes = in.owned.data();
        in.keep.reset();
      }
    }
  } else {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "unknown audio input source '" + source + "'");
  }
  return in;
}

std::vector<MediaSource> ParseMediaSources(Napi::Env env, const Napi::Value& list, const ModelPtr& model) {
  std::vector<MediaSource> out;
  if (!list.IsArray()) return out;
  Napi::Array arr = list.As<Napi::Array>();
  AddonData* data = AddonData::Of(env);
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value item = arr.Get(i);
    const std::string where = "media[" + std::to_string(i) + "]";
    if (!item.IsObject()) throw MakeError(env, "ERR_INVALID_ARGUMENT", where + " is not an image or a sound");
    Napi::Object obj = item.As<Napi::Object>();
    MediaSource src;
    if (obj.InstanceOf(data->embeddingCtor.Value())) {
      src.embedding = Embedding::FromValue(env, item)->State(env);
      if (src.embedding->model != model) {
        throw MakeError(env, "ERR_INVALID_ARGUMENT", where + " was encoded by another model; encode it with this model");
      }
    } else if (obj.Get("kind").ToString().Utf8Value() == "audio") {
      src.audio = std::make_unique<AudioInput>(ParseAudioInput(env, obj));
    } else {
      src.image = std::make_unique<ImageInput>(ParseImageInput(env, obj));
    }
    out.push_back(std::move(src));
  }
  return out;
}

Napi::Function Embedding::Define(Napi::Env env) {
  return DefineClass(env, "Embedding",
                     {InstanceMethod<&Embedding::Info>("info"), InstanceMethod<&Embedding::ToFloat32Array>("toFloat32Array"),
                      InstanceMethod<&Embedding::Retain>("retain"), InstanceMethod<&Embedding::Dispose>("dispose")});
}

Embedding::Embedding(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Embedding>(info) {}

Embedding* Embedding::FromValue(Napi::Env env, const Napi::Value& value) {
  AddonData* data = AddonData::Of(env);
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->embeddingCtor.Value())) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "expected a native embedding");
  }
  return Napi::ObjectWrap<Embedding>::Unwrap(value.As<Napi::Object>());
}

EmbeddingPtr Embedding::State(Napi::Env env) const {
  if (!state_) throw MakeError(env, "ERR_DISPOSED", "the embedding has been disposed; encode the image or sound again");
  return state_;
}

Napi::Value Embedding::Encode(const Napi::CallbackInfo& info, ModelPtr model) {
  Napi::Env env = info.Env();
  if (!model->vision) {
    throw MakeError(env, "ERR_NO_VISION", "this model was loaded without a projector; pass `mmproj` to loadModel() to use images");
  }
  if (!mtmd_support_vision(model->vision)) throw MakeError(env, "ERR_NO_VISION", "this projector has no vision encoder");
  if (info.Length() < 1 || !info[0].IsObject()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "encodeImage() expects an image input");
  auto in = std::make_unique<ImageInput>(ParseImageInput(env, info[0].As<Napi::Object>()));
  auto* worker = new EncodeWorker(env, std::move(model), std::move(in), nullptr, AbortHandle::From(info[1]));
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

Napi::Value Embedding::EncodeAudio(const Napi::CallbackInfo& info, ModelPtr model) {
  Napi::Env env = info.Env();
  if (!model->vision) {
    throw MakeError(env, "ERR_NO_AUDIO", "this model was loaded without a projector; pass an `mmproj` with an audio encoder to loadModel() to use sound");
  }
  if (!model->hearsAudio()) throw MakeError(env, "ERR_NO_AUDIO", "this projector has no audio encoder (it takes images only)");
  if (info.Length() < 1 || !info[0].IsObject()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "encodeAudio() expects an audio input");
  auto in = std::make_unique<AudioInput>(ParseAudioInput(env, info[0].As<Napi::Object>()));
  auto* worker = new EncodeWorker(env, std::move(model), nullptr, std::move(in), AbortHandle::From(info[1]));
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

Napi::Value Embedding::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EmbeddingPtr s = State(env);
  Napi::Object out = Napi::Object::New(env);
  out.Set("nTokens", s->totalTokens());
  out.Set("nEmbd", s->nEmbd);
  out.Set("kind", s->audio ? "audio" : "image");
  out.Set("width", s->nx);
  out.Set("height", s->ny);
  out.Set("samples", static_cast<double>(s->nSamples));
  out.Set("sampleRate", s->sampleRate);
  out.Set("id", s->id);
  return out;
}

Napi::Value Embedding::ToFloat32Array(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EmbeddingPtr s = State(env);
  size_t total = 0;
  for (const auto& c : s->chunks) total += c.size();
  Napi::Float32Array out = Napi::Float32Array::New(env, total);
  size_t off = 0;
  for (const auto& c : s->chunks) {
    std::memcpy(out.Data() + off, c.data(), c.size() * sizeof(float));
    off += c.size();
  }
  return out;
}

Napi::Value Embedding::Retain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EmbeddingPtr s = State(env);
  Napi::Object obj = AddonData::Of(env)->embeddingCtor.New({});
  FromValue(env, obj)->Adopt(std::move(s));
  return obj;
}

Napi::Value Embedding::Dispose(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

}  // namespace llava
