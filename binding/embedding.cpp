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

size_t CountImageChunks(ModelState& model, uint32_t nx, uint32_t ny) {
  mtmd_bitmap* bmp = mtmd_bitmap_init(nx, ny, nullptr);
  mtmd_input_chunks* chunks = mtmd_input_chunks_init();
  std::string marker = mtmd_default_marker();
  mtmd_input_text text = {marker.c_str(), marker.size(), false, true};
  const mtmd_bitmap* bmps[] = {bmp};
  size_t n = 0;
  if (mtmd_tokenize(model.vision, chunks, &text, bmps, 1) == 0) {
    for (size_t i = 0; i < mtmd_input_chunks_size(chunks); i++) {
      if (mtmd_input_chunk_get_type(mtmd_input_chunks_get(chunks, i)) == MTMD_INPUT_CHUNK_TYPE_IMAGE) n++;
    }
  }
  mtmd_input_chunks_free(chunks);
  mtmd_bitmap_free(bmp);
  return n;
}

EmbeddingPtr EncodeInto(ModelState& model, const EmbeddingPtr& e, const RgbImage& image, std::atomic<bool>& abort) {
  mtmd_bitmap* bmp = mtmd_bitmap_init(image.width, image.height, image.rgb.data());
  if (!bmp) Throw("ERR_IMAGE_DECODE", "the image could not be turned into a bitmap");
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
      Throw("ERR_IMAGE_ENCODE", "the projector could not preprocess the image" + (why.empty() ? std::string() : ": " + why));
    }
    for (size_t i = 0; i < mtmd_input_chunks_size(chunks); i++) {
      const mtmd_input_chunk* c = mtmd_input_chunks_get(chunks, i);
      if (mtmd_input_chunk_get_type(c) != MTMD_INPUT_CHUNK_TYPE_IMAGE) continue;
      if (abort.load()) Throw("ERR_ABORTED", "image encoding was aborted");
      ClearLastLlamaError();
      const auto t0 = std::chrono::steady_clock::now();
      const int32_t status = ComputeThread::Run([&] { return mtmd_encode_chunk(model.vision, c); });
      e->encoderMs += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (status != 0) {
        std::string why = LastLlamaError();
        Throw("ERR_IMAGE_ENCODE", "the vision encoder failed" + (why.empty() ? std::string() : ": " + why));
      }
      const size_t n = mtmd_input_chunk_get_n_tokens(c);
      const float* embd = mtmd_get_output_embd(model.vision);
      out.emplace_back(embd, embd + n * static_cast<size_t>(e->nEmbd));
      tokens.push_back(static_cast<int>(n));
    }
    model.encodeCount++;
    if (out.empty()) Throw("ERR_IMAGE_ENCODE", "the projector produced no image tokens for this image");
    e->chunks = std::move(out);
    e->chunkTokens = std::move(tokens);
    // Registered before the encoder is free again, so an encode of the same pixels waiting for it
    // finds this one.
    std::lock_guard<std::mutex> registry(model.embeddingsMutex);
    model.embeddings[e->id] = e;
  }
  return e;
}

namespace {

class EncodeWorker : public PromiseWorker {
 public:
  EncodeWorker(Napi::Env env, ModelPtr model, ImageInput input, AbortFlag abort)
      : PromiseWorker(env, "llava.encodeImage", abort), model_(std::move(model)), input_(std::move(input)), abort_(std::move(abort)) {}

 protected:
  void Run() override {
    const auto t0 = std::chrono::steady_clock::now();
    RgbImage image = DecodeImage(input_);
    input_.owned.clear();
    input_.owned.shrink_to_fit();
    input_.keep.reset();  // the encoded bytes (or decoded pixels) in native memory are not needed past here
    input_.bytes = nullptr;
    input_.size = 0;
    if (abort_->load()) Throw("ERR_ABORTED", "image encoding was aborted");
    const std::string id = ContentId(image);
    state_ = FindEncoded(*model_, id);
    reused_ = state_ != nullptr;
    if (!state_) {
      auto e = std::make_shared<EmbeddingState>();
      e->model = model_;
      e->nx = image.width;
      e->ny = image.height;
      e->id = id;
      e->nEmbd = llama_model_n_embd_inp(model_->model);
      state_ = EncodeInto(*model_, e, image, *abort_);
      reused_ = state_ != e;
    }
    elapsedMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
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
  ImageInput input_;
  AbortFlag abort_;
  EmbeddingPtr state_;
  double elapsedMs_ = 0;
  bool reused_ = false;
};

// Bytes from JS: an ImageBytes the TypeScript layer filled in slices (large buffers), or a buffer
// copied now (small ones), so that no native thread ever reads memory JS owns.
void TakeBytes(Napi::Env env, const Napi::Value& v, ImageInput& in) {
  if (std::shared_ptr<const OwnedBytes> owned = ImageBytes::From(env, v)) {
    in.bytes = owned->data.get();
    in.size = owned->size;
    in.keep = std::move(owned);
    return;
  }
  if (!v.IsTypedArray() && !v.IsArrayBuffer()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "image data must be a Buffer or Uint8Array");
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
  } else {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "unknown image input kind '" + kind + "'");
  }
  return in;
}

std::vector<ImageSource> ParseImageSources(Napi::Env env, const Napi::Value& list, const ModelPtr& model) {
  std::vector<ImageSource> out;
  if (!list.IsArray()) return out;
  Napi::Array arr = list.As<Napi::Array>();
  AddonData* data = AddonData::Of(env);
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value item = arr.Get(i);
    const std::string where = "images[" + std::to_string(i) + "]";
    if (!item.IsObject()) throw MakeError(env, "ERR_INVALID_ARGUMENT", where + " is not an image");
    ImageSource src;
    if (item.As<Napi::Object>().InstanceOf(data->embeddingCtor.Value())) {
      src.embedding = Embedding::FromValue(env, item)->State(env);
      if (src.embedding->model != model) {
        throw MakeError(env, "ERR_INVALID_ARGUMENT", where + " was encoded by another model; encode it with this model");
      }
    } else {
      src.input = std::make_unique<ImageInput>(ParseImageInput(env, item.As<Napi::Object>()));
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
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "expected a native image embedding");
  }
  return Napi::ObjectWrap<Embedding>::Unwrap(value.As<Napi::Object>());
}

EmbeddingPtr Embedding::State(Napi::Env env) const {
  if (!state_) throw MakeError(env, "ERR_DISPOSED", "the image embedding has been disposed; encode the image again");
  return state_;
}

Napi::Value Embedding::Encode(const Napi::CallbackInfo& info, ModelPtr model) {
  Napi::Env env = info.Env();
  if (!model->vision) {
    throw MakeError(env, "ERR_NO_VISION", "this model was loaded without a projector; pass `mmproj` to loadModel() to use images");
  }
  if (!mtmd_support_vision(model->vision)) throw MakeError(env, "ERR_NO_VISION", "this projector has no vision encoder");
  if (info.Length() < 1 || !info[0].IsObject()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "encodeImage() expects an image input");
  ImageInput in = ParseImageInput(env, info[0].As<Napi::Object>());
  auto* worker = new EncodeWorker(env, std::move(model), std::move(in), AbortHandle::From(info[1]));
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
  out.Set("width", s->nx);
  out.Set("height", s->ny);
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
