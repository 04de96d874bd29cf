#include "model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <vector>

#include "abort_handle.h"
#include "batched_callback.h"
#include "embedding.h"
#include "session_state.h"
#include "addon_data.h"
#include "compute_thread.h"
#include "errors.h"
#include "ggml-backend.h"
#include "gguf.h"
#include "logging.h"
#include "model_fingerprint.h"
#include "model_validator.h"
#include "device_plan.h"
#include "promise_worker.h"
#include "rpc.h"

namespace llava {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxImageTokensOption = 65536;

struct LoadParams {
  std::string modelPath;
  std::string mmprojPath;
  PlacementOptions placement;
  bool useMmap = true;
  bool vocabOnly = false;  // the tokenizer and chat template alone: no weights, no sessions
  int threads = 4;
  int imageMinTokens = -1;  // dynamic-resolution projectors' token budget per image; -1: the file's
  int imageMaxTokens = -1;
};

std::string MetaString(const llama_model* model, const char* key) {
  char buf[512];
  int32_t n = llama_model_meta_val_str(model, key, buf, sizeof(buf));
  return n < 0 ? std::string() : std::string(buf);
}

size_t LongestToken(const llama_vocab* vocab) {
  size_t longest = 1;
  char buf[256];
  const int32_t n = llama_vocab_n_tokens(vocab);
  for (llama_token t = 0; t < n; t++) {
    const int32_t len = llama_token_to_piece(vocab, t, buf, sizeof(buf), 0, true);
    longest = std::max(longest, static_cast<size_t>(len < 0 ? -len : len));
  }
  return longest;
}

// Reads a few keys of the projector file without loading tensors (gguf's own parser).
void ReadProjectorMeta(const std::string& path, std::string& projector, int& imageSize) {
  gguf_init_params params = {/*no_alloc*/ true, /*ctx*/ nullptr};
  gguf_context* g = gguf_init_from_file(path.c_str(), params);
  if (!g) return;
  int64_t k = gguf_find_key(g, "clip.projector_type");
  if (k < 0) k = gguf_find_key(g, "clip.vision.projector_type");
  if (k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_STRING) projector = gguf_get_val_str(g, k);
  if (projector.empty()) {
    int64_t llava = gguf_find_key(g, "clip.has_llava_projector");
    if (llava >= 0) projector = "mlp";
  }
  k = gguf_find_key(g, "clip.vision.image_size");
  if (k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_UINT32) imageSize = static_cast<int>(gguf_get_val_u32(g, k));
  gguf_free(g);
}

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, LoadParams params, AbortFlag abort, Napi::Value onProgress)
      : PromiseWorker(env, "llava.loadModel", abort),
        params_(std::move(params)),
        abort_(std::move(abort)),
        progress_(env, onProgress, "llava.loadProgress", &DeliverProgress) {}

 protected:
  void Run() override {
    CheckFile(params_.modelPath, "model");
    if (!params_.mmprojPath.empty()) CheckFile(params_.mmprojPath, "mmproj");

    std::error_code ec;
    double modelBytes = static_cast<double>(fs::file_size(params_.modelPath, ec));
    double projBytes = params_.mmprojPath.empty() ? 0.0 : static_cast<double>(fs::file_size(params_.mmprojPath, ec));
    modelShare_ = modelBytes + projBytes > 0 ? modelBytes / (modelBytes + projBytes) : 1.0;

    auto state = std::make_shared<ModelState>();
    state->modelPath = params_.modelPath;
    state->mmprojPath = params_.mmprojPath;
    state->threads = params_.threads;

    const ModelFacts facts = ValidateTextModel(params_.modelPath);
    if (!params_.mmprojPath.empty()) ValidateProjector(params_.mmprojPath, facts);

    plan_ = PlanDevices(params_.placement, facts, modelBytes, projBytes, params_.vocabOnly);
    if (!params_.placement.rpcServers.empty()) {
      state->rpc = std::make_shared<RpcLink>(params_.placement.rpcServers);
      GuardRpc(state->rpc);
    }
    gpuLayersUsed_ = plan_.offloadedLayers;

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = plan_.gpuLayers;
    if (!plan_.devices.empty()) mp.devices = plan_.devices.data();
    if (plan_.hasSplit) mp.tensor_split = plan_.split.data();
    if (!params_.useMmap) mp.load_mode = LLAMA_LOAD_MODE_NONE;
    mp.vocab_only = params_.vocabOnly;
    state->vocabOnly = params_.vocabOnly;
    mp.progress_callback = [](float p, void* self) -> bool {
      auto* w = static_cast<LoadWorker*>(self);
      w->Report(p * w->modelShare_);
      return !w->abort_->load();
    };
    mp.progress_callback_user_data = this;

    ClearLastLlamaError();
    std::vector<std::string> layerDevices;
    state->model = ComputeThread::Run([&] {
      RecordLayerDevices(&layerDevices);
      llama_model* m = llama_model_load_from_file(params_.modelPath.c_str(), mp);
      RecordLayerDevices(nullptr);
      return m;
    });
    if (abort_->load()) Throw("ERR_ABORTED", "model loading was aborted");
    if (!state->model) {
      std::string why = LastLlamaError();
      Throw("ERR_MODEL_LOAD", "llama.cpp could not load the model file " + params_.modelPath +
                                  (why.empty() ? "" : ": " + why) +
                                  ". Check that it is a complete GGUF text model supported by llama.cpp " LLAVA_LLAMA_COMMIT ".");
    }

    // Read now, while the file is the one just loaded (and in the page cache): a few milliseconds.
    NotePlacement(*state, layerDevices, plan_);
    state->textFingerprint = FileFingerprint(params_.modelPath);
    state->maxTokenBytes = LongestToken(state->vocab());

    if (!params_.mmprojPath.empty()) {
      ReadProjectorMeta(params_.mmprojPath, state->projectorType, imageSize_);
      mtmd_context_params cp = mtmd_context_params_default();
      cp.use_gpu = plan_.projectorUseGpu;
      cp.device = plan_.projector;
      state->projectorDevice = plan_.projectorName;
      cp.print_timings = false;
      cp.n_threads = params_.threads;
      cp.warmup = true;
      cp.image_min_tokens = params_.imageMinTokens;
      cp.image_max_tokens = params_.imageMaxTokens;
      cp.progress_callback = [](float p, void* self) -> bool {
        auto* w = static_cast<LoadWorker*>(self);
        w->Report(w->modelShare_ + p * (1.0 - w->modelShare_));
        return !w->abort_->load();
      };
      cp.progress_callback_user_data = this;
      ClearLastLlamaError();
      // Loading the projector runs a warm-up encode.
      state->vision = ComputeThread::Run([&] { return mtmd_init_from_file(params_.mmprojPath.c_str(), state->model, cp); });
      if (abort_->load()) Throw("ERR_ABORTED", "model loading was aborted");
      if (!state->vision) {
        std::string why = LastLlamaError();
        if (why.find("mismatch") != std::string::npos) {
          Throw("ERR_MMPROJ_MISMATCH", "the projector " + params_.mmprojPath + " does not fit the text model " +
                                           params_.modelPath + ": " + why +
                                           ". Use the mmproj file published together with this text model.");
        }
        Throw("ERR_MMPROJ_LOAD", "llama.cpp could not load the projector file " + params_.mmprojPath +
                                     (why.empty() ? "" : ": " + why) + ". Check that it is a complete mmproj GGUF.");
      }
      MeasureImageTokens(*state);
      state->projectorFingerprint = FileFingerprint(params_.mmprojPath);
    }
    Report(1.0);
    state_ = std::move(state);
  }

  Napi::Value Result(Napi::Env env) override {
    AddonData* data = AddonData::Of(env);
    Napi::Object obj = data->modelCtor.New({});
    Model::FromValue(env, obj)->Adopt(std::move(state_));
    obj.Set("gpuLayers", gpuLayersUsed_);
    return obj;
  }

 private:
  static void CheckFile(const std::string& path, const char* what) {
    std::error_code ec;
    if (!fs::exists(path, ec)) Throw("ERR_FILE_NOT_FOUND", std::string("the ") + what + " file " + path + " does not exist");
    if (!fs::is_regular_file(path, ec))
      Throw("ERR_FILE_NOT_FOUND", std::string("the ") + what + " path " + path + " is not a regular file");
  }

  // Tokenizes one placeholder image at the projector's native size: how many tokens an image
  // costs, and whether its tokens need one micro-batch.
  void MeasureImageTokens(ModelState& state) {
    if (!mtmd_support_vision(state.vision) || imageSize_ <= 0) return;
    mtmd_bitmap* bmp = mtmd_bitmap_init(imageSize_, imageSize_, nullptr);
    mtmd_input_chunks* chunks = mtmd_input_chunks_init();
    std::string marker = mtmd_default_marker();
    mtmd_input_text text = {marker.c_str(), marker.size(), false, true};
    const mtmd_bitmap* bmps[] = {bmp};
    if (mtmd_tokenize(state.vision, chunks, &text, bmps, 1) == 0) {
      for (size_t i = 0; i < mtmd_input_chunks_size(chunks); i++) {
        const mtmd_input_chunk* c = mtmd_input_chunks_get(chunks, i);
        if (mtmd_input_chunk_get_type(c) != MTMD_INPUT_CHUNK_TYPE_IMAGE) continue;
        state.imageTokens += static_cast<int>(mtmd_input_chunk_get_n_tokens(c));
        state.imageNonCausal = state.imageNonCausal || mtmd_decode_use_non_causal(state.vision, c);
      }
    }
    mtmd_input_chunks_free(chunks);
    mtmd_bitmap_free(bmp);
  }

  static void DeliverProgress(Napi::Env env, Napi::Function fn, std::vector<double> values) {
    for (double v : values) fn.Call({Napi::Number::New(env, v)});
  }

  void Report(double fraction) { progress_.Push(fraction); }

  void Flush(Napi::Env env) override { progress_.Flush(env); }

  LoadParams params_;
  AbortFlag abort_;
  BatchedCallback<double> progress_;
  double modelShare_ = 1.0;
  int imageSize_ = 0;
  int gpuLayersUsed_ = 0;
  DevicePlan plan_;
  ModelPtr state_;
};

// Counts the tokens a prompt and its images take, reading only the images' headers: mtmd lays
// out placeholder bitmaps of the right size without any pixels.
class CountWorker : public PromiseWorker {
 public:
  CountWorker(Napi::Env env, ModelPtr model, std::string prompt, std::vector<MediaSource> images, bool addSpecial, bool parseSpecial)
      : PromiseWorker(env, "llava.countTokens", nullptr),
        model_(std::move(model)),
        prompt_(std::move(prompt)),
        images_(std::move(images)),
        addSpecial_(addSpecial),
        parseSpecial_(parseSpecial) {}

 protected:
  void Run() override {
    if (!model_->vision) {
      // sound is named first: the missing projector is an audio model's
      for (const auto& src : images_) {
        if (src.audio) RequireEncoder(*model_, true);
      }
      if (!images_.empty()) RequireEncoder(*model_, false);
      const llama_vocab* vocab = model_->vocab();
      int32_t n = -llama_tokenize(vocab, prompt_.data(), static_cast<int32_t>(prompt_.size()), nullptr, 0, addSpecial_, parseSpecial_);
      textTokens_ = n;
      return;
    }
    std::vector<mtmd_bitmap*> owned;
    std::vector<const mtmd_bitmap*> bitmaps;
    struct Cleanup {
      std::vector<mtmd_bitmap*>& b;
      mtmd_input_chunks* c = nullptr;
      ~Cleanup() {
        for (auto* x : b) mtmd_bitmap_free(x);
        if (c) mtmd_input_chunks_free(c);
      }
    } cleanup{owned};
    for (auto& src : images_) {
      EmbeddingState shape;  // the size mtmd lays the tokens out by, from headers alone
      if (src.embedding) {
        shape.audio = src.embedding->audio;
        shape.nx = src.embedding->nx;
        shape.ny = src.embedding->ny;
        shape.nSamples = src.embedding->nSamples;
      } else if (src.audio) {
        RequireEncoder(*model_, true);
        shape.audio = true;
        shape.nSamples = AudioLength(*src.audio, model_->audioSampleRate());
      } else {
        RequireEncoder(*model_, false);
        ImageSize(*src.image, shape.nx, shape.ny);
      }
      owned.push_back(PlaceholderBitmap(shape));
      bitmaps.push_back(owned.back());
    }
    cleanup.c = mtmd_input_chunks_init();
    mtmd_input_text text = {prompt_.c_str(), prompt_.size(), addSpecial_, parseSpecial_};
    int32_t rc = mtmd_tokenize(model_->vision, cleanup.c, &text, bitmaps.data(), bitmaps.size());
    if (rc == 1) {
      Throw("ERR_INVALID_ARGUMENT", "the prompt's media markers do not match the " + std::to_string(images_.size()) + " image(s) and sound(s) given");
    }
    if (rc != 0) Throw("ERR_TOKENIZE", "the prompt could not be tokenized with its images");
    for (size_t i = 0; i < mtmd_input_chunks_size(cleanup.c); i++) {
      const mtmd_input_chunk* c = mtmd_input_chunks_get(cleanup.c, i);
      const size_t n = mtmd_input_chunk_get_n_tokens(c);
      const auto type = mtmd_input_chunk_get_type(c);
      if (type == MTMD_INPUT_CHUNK_TYPE_TEXT) {
        textTokens_ += static_cast<int32_t>(n);
      } else {
        (type == MTMD_INPUT_CHUNK_TYPE_AUDIO ? audioTokens_ : imageTokens_) += static_cast<int32_t>(n);
        positions_ += mtmd_input_chunk_get_n_pos(c) - static_cast<int32_t>(n);
      }
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("tokens", textTokens_ + imageTokens_ + audioTokens_);
    out.Set("textTokens", textTokens_);
    out.Set("imageTokens", imageTokens_);
    out.Set("audioTokens", audioTokens_);
    out.Set("positions", textTokens_ + imageTokens_ + audioTokens_ + positions_);
    return out;
  }

 private:
  ModelPtr model_;
  std::string prompt_;
  std::vector<MediaSource> images_;
  bool addSpecial_, parseSpecial_;
  int32_t textTokens_ = 0, imageTokens_ = 0, audioTokens_ = 0, positions_ = 0;
};

int32_t IntProp(const Napi::Object& o, const char* key, int32_t fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : fallback;
}

bool BoolProp(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}

std::string StrProp(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

}  // namespace

Napi::Function Model::Define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {
                         InstanceMethod<&Model::Info>("info"),
                         InstanceMethod<&Model::Tokenize>("tokenize"),
                         InstanceMethod<&Model::Detokenize>("detokenize"),
                         InstanceMethod<&Model::EncodeImage>("encodeImage"),
                         InstanceMethod<&Model::EncodeAudio>("encodeAudio"),
                         InstanceMethod<&Model::EncodeCount>("encodeCount"),
                         InstanceMethod<&Model::CountTokens>("countTokens"),
                         InstanceMethod<&Model::Dispose>("dispose"),
                     });
}

Model::Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {}

Model* Model::FromValue(Napi::Env env, const Napi::Value& value) {
  AddonData* data = AddonData::Of(env);
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->modelCtor.Value())) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "expected a native Model");
  }
  return Napi::ObjectWrap<Model>::Unwrap(value.As<Napi::Object>());
}

ModelPtr Model::State(Napi::Env env) const {
  if (!state_) throw MakeError(env, "ERR_DISPOSED", "the model has been disposed; load it again with loadModel()");
  return state_;
}

Napi::Value Model::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "load() expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  LoadParams p;
  p.modelPath = StrProp(o, "model");
  p.mmprojPath = StrProp(o, "mmproj");
  p.placement.gpuLayers = IntProp(o, "gpuLayers", -1);
  p.placement.mainGpu = IntProp(o, "mainGpu", -1);
  p.useMmap = BoolProp(o, "useMmap", true);
  p.placement.mmprojUseGpu = BoolProp(o, "mmprojUseGpu", true);
  p.threads = IntProp(o, "threads", 4);
  p.vocabOnly = BoolProp(o, "vocabOnly", false);
  p.imageMinTokens = IntProp(o, "imageMinTokens", -1);
  p.imageMaxTokens = IntProp(o, "imageMaxTokens", -1);
  p.placement.rpcServers = ParseEndpoints(env, o.Get("rpcServers"));
  p.placement.rpcTimeouts = ParseTimeouts(o.Get("rpcTimeouts"));
  p.placement.mmprojDevice = StrProp(o, "mmprojDevice");
  if (o.Get("tensorSplit").IsArray()) {
    Napi::Array a = o.Get("tensorSplit").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      const double share = a.Get(i).IsNumber() ? a.Get(i).As<Napi::Number>().DoubleValue() : -1;
      if (!(share >= 0) || !std::isfinite(share)) throw MakeError(env, "ERR_INVALID_ARGUMENT", "tensorSplit must hold finite shares of at least 0");
      p.placement.tensorSplit.push_back(static_cast<float>(share));
    }
    if (p.placement.tensorSplit.size() > llama_max_devices()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "tensorSplit has more shares than llama.cpp's " + std::to_string(llama_max_devices()) + " devices");
  }
  if (!p.placement.rpcServers.empty() && !RpcAvailable()) throw MakeError(env, "ERR_RPC", "this build of llava-native has no RPC backend");
  // clip.cpp multiplies the budget by the patch area in int; the TypeScript layer bounds it too.
  if ((p.imageMinTokens != -1 && (p.imageMinTokens < 1 || p.imageMinTokens > kMaxImageTokensOption)) ||
      (p.imageMaxTokens != -1 && (p.imageMaxTokens < 1 || p.imageMaxTokens > kMaxImageTokensOption)) ||
      (p.imageMinTokens > 0 && p.imageMaxTokens > 0 && p.imageMinTokens > p.imageMaxTokens)) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "imageMinTokens and imageMaxTokens must be between 1 and " + std::to_string(kMaxImageTokensOption) + ", the minimum not above the maximum");
  }
  if (p.vocabOnly && !p.mmprojPath.empty()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "vocabOnly loads no weights, so no projector either: leave mmproj out");
  if (p.modelPath.empty()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "load() needs a model path");
  if (p.threads < 1 || p.threads > 1024) throw MakeError(env, "ERR_INVALID_ARGUMENT", "threads must be between 1 and 1024");
  auto* worker = new LoadWorker(env, std::move(p), AbortHandle::From(info[1]), info.Length() > 2 ? info[2] : env.Undefined());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value Model::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelPtr s = State(env);
  const llama_model* m = s->model;
  const llama_vocab* vocab = s->vocab();
  Napi::Object out = Napi::Object::New(env);
  char desc[256];
  llama_model_desc(m, desc, sizeof(desc));
  out.Set("architecture", MetaString(m, "general.architecture"));
  out.Set("name", MetaString(m, "general.name"));
  out.Set("description", std::string(desc));
  out.Set("contextLength", llama_model_n_ctx_train(m));
  out.Set("embeddingLength", llama_model_n_embd(m));
  out.Set("layers", llama_model_n_layer(m));
  // llama.cpp aborts on per-layer queries of a model without layers (vocabOnly).
  const bool layered = !s->vocabOnly && llama_model_n_layer(m) > 0;
  out.Set("heads", layered ? llama_model_n_head(m) : 0);
  out.Set("headsKv", layered ? llama_model_n_head_kv(m) : 0);
  out.Set("parameters", static_cast<double>(llama_model_n_params(m)));
  out.Set("sizeBytes", static_cast<double>(llama_model_size(m)));
  out.Set("vocabSize", llama_vocab_n_tokens(vocab));
  out.Set("bosToken", llama_vocab_bos(vocab));
  out.Set("eosToken", llama_vocab_eos(vocab));
  Napi::Array placement = Napi::Array::New(env, s->placement.size());
  for (size_t i = 0; i < s->placement.size(); i++) {
    const ModelState::Placement& p = s->placement[i];
    Napi::Object d = Napi::Object::New(env);
    d.Set("device", p.device);
    d.Set("endpoint", p.endpoint.empty() ? env.Null() : Napi::String::New(env, p.endpoint));
    d.Set("layers", p.layers);
    d.Set("output", p.output);
    placement.Set(static_cast<uint32_t>(i), d);
  }
  out.Set("placement", placement);
  const char* tmpl = llama_model_chat_template(m, nullptr);
  out.Set("chatTemplate", tmpl ? Napi::Value(Napi::String::New(env, tmpl)) : env.Null());
  if (s->vision) {
    Napi::Object v = Napi::Object::New(env);
    v.Set("projector", s->projectorType);
    v.Set("supportsVision", mtmd_support_vision(s->vision));
    v.Set("supportsAudio", mtmd_support_audio(s->vision));
    v.Set("imageTokens", s->imageTokens);
    v.Set("nonCausal", s->imageNonCausal);
    v.Set("mrope", mtmd_decode_use_mrope(s->vision));
    v.Set("audioSampleRate", s->hearsAudio() ? static_cast<double>(s->audioSampleRate()) : 0.0);
    v.Set("marker", mtmd_default_marker());
    v.Set("device", s->projectorDevice);
    out.Set("vision", v);
  } else {
    out.Set("vision", env.Null());
  }
  return out;
}

// tokenize(text, addSpecial, parseSpecial) -> Int32Array
Napi::Value Model::Tokenize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelPtr s = State(env);
  if (info.Length() < 1 || !info[0].IsString()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "tokenize() expects a string");
  std::string text = info[0].As<Napi::String>().Utf8Value();
  bool addSpecial = info.Length() > 1 && info[1].ToBoolean().Value();
  bool parseSpecial = info.Length() > 2 && info[2].ToBoolean().Value();
  const llama_vocab* vocab = s->vocab();
  std::vector<llama_token> tokens(text.size() + 2);
  int32_t n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                             static_cast<int32_t>(tokens.size()), addSpecial, parseSpecial);
  if (n < 0) {
    tokens.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                       static_cast<int32_t>(tokens.size()), addSpecial, parseSpecial);
  }
  if (n < 0) throw MakeError(env, "ERR_TOKENIZE", "the text could not be tokenized");
  Napi::Int32Array out = Napi::Int32Array::New(env, static_cast<size_t>(n));
  for (int32_t i = 0; i < n; i++) out[i] = tokens[i];
  return out;
}

// detokenize(Int32Array, renderSpecial) -> string
Napi::Value Model::Detokenize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelPtr s = State(env);
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "detokenize() expects an Int32Array of token ids");
  }
  Napi::Int32Array ids = info[0].As<Napi::Int32Array>();
  bool renderSpecial = info.Length() > 1 && info[1].ToBoolean().Value();
  const llama_vocab* vocab = s->vocab();
  const int32_t nVocab = llama_vocab_n_tokens(vocab);
  std::vector<llama_token> tokens(ids.ElementLength());
  for (size_t i = 0; i < tokens.size(); i++) {
    if (ids[i] < 0 || ids[i] >= nVocab) {
      throw MakeError(env, "ERR_INVALID_ARGUMENT",
                      "token id " + std::to_string(ids[i]) + " at index " + std::to_string(i) + " is outside the vocabulary (0.." +
                          std::to_string(nVocab - 1) + ")");
    }
    tokens[i] = ids[i];
  }
  std::string out(tokens.size() * 8 + 16, '\0');
  int32_t n = llama_detokenize(vocab, tokens.data(), static_cast<int32_t>(tokens.size()), out.data(),
                               static_cast<int32_t>(out.size()), false, renderSpecial);
  if (n < 0) {
    out.resize(static_cast<size_t>(-n));
    n = llama_detokenize(vocab, tokens.data(), static_cast<int32_t>(tokens.size()), out.data(),
                         static_cast<int32_t>(out.size()), false, renderSpecial);
  }
  if (n < 0) throw MakeError(env, "ERR_TOKENIZE", "the tokens could not be detokenized");
  out.resize(static_cast<size_t>(n));
  return Napi::String::New(env, out);
}

Napi::Value Model::EncodeImage(const Napi::CallbackInfo& info) { return Embedding::Encode(info, State(info.Env())); }

Napi::Value Model::EncodeAudio(const Napi::CallbackInfo& info) { return Embedding::EncodeAudio(info, State(info.Env())); }

Napi::Value Model::EncodeCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(State(info.Env())->encodeCount.load()));
}

// countTokens(prompt, images[], addSpecial, parseSpecial) -> Promise<{ tokens, textTokens, imageTokens, positions }>
Napi::Value Model::CountTokens(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelPtr s = State(env);
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "countTokens(prompt, images) expected");
  }
  std::vector<MediaSource> images = ParseMediaSources(env, info[1], s);
  auto* w = new CountWorker(env, s, info[0].As<Napi::String>().Utf8Value(), std::move(images), info[2].ToBoolean().Value(),
                            info[3].ToBoolean().Value());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value Model::Dispose(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

}  // namespace llava
