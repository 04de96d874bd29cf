#include "model_validator.h"

#include <cstring>
#include <filesystem>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "errors.h"
#include "ggml.h"
#include "gguf.h"
#include "llama.h"

namespace llava {
namespace {

// llama.cpp's own limit (src/llama-hparams.h); more layers abort in llama-model.cpp.
constexpr uint32_t kMaxLayers = 512;
constexpr uint32_t kMaxVisionLayers = 1024;

struct Gguf {
  gguf_context* ctx = nullptr;
  ggml_context* meta = nullptr;
  ~Gguf() {
    if (ctx) gguf_free(ctx);
    if (meta) ggml_free(meta);
  }
};

class Check {
 public:
  Check(const std::string& path, const char* code, const char* what) : path_(path), code_(code), what_(what) {}

  [[noreturn]] void Fail(const std::string& msg) const {
    Throw(code_, "the " + std::string(what_) + " file " + path_ + " is invalid: " + msg);
  }

  void Open(Gguf& g) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fileSize_ = fs::file_size(path_, ec);
    if (ec) Fail("it cannot be read (" + ec.message() + ")");
    if (fileSize_ < 8) Fail("it is too short to be a GGUF file");
    gguf_init_params params = {/*no_alloc*/ true, &g.meta};
    g.ctx = gguf_init_from_file(path_.c_str(), params);
    if (!g.ctx) Fail("it is not a readable GGUF v2/v3 file (bad magic, version, counts or truncated header)");
    ctx_ = g.ctx;
    meta_ = g.meta;
    const size_t dataOffset = gguf_get_data_offset(ctx_);
    for (int64_t i = 0; i < gguf_get_n_tensors(ctx_); i++) {
      const uint64_t end = static_cast<uint64_t>(dataOffset) + gguf_get_tensor_offset(ctx_, i) + gguf_get_tensor_size(ctx_, i);
      if (end > fileSize_) {
        Fail(std::string("the data of tensor '") + gguf_get_tensor_name(ctx_, i) + "' lies beyond the end of the file (truncated download?)");
      }
    }
  }

  int64_t Key(const std::string& key) const { return gguf_find_key(ctx_, key.c_str()); }

  // A key read with a fixed type by llama.cpp: any other type aborts inside gguf.cpp.
  void ExpectType(const std::string& key, gguf_type want) const {
    int64_t k = Key(key);
    if (k < 0) return;
    gguf_type have = gguf_get_kv_type(ctx_, k);
    if (have != want) Fail("key '" + key + "' has type " + gguf_type_name(have) + ", expected " + gguf_type_name(want));
  }

  // The value when the key is present as UINT32; other types are left to llama.cpp's own checks.
  bool U32If(const std::string& key, uint32_t& out) const {
    int64_t k = Key(key);
    if (k < 0 || gguf_get_kv_type(ctx_, k) != GGUF_TYPE_UINT32) return false;
    out = gguf_get_val_u32(ctx_, k);
    return true;
  }

  bool U32(const std::string& key, uint32_t& out) const {
    int64_t k = Key(key);
    if (k < 0) return false;
    ExpectType(key, GGUF_TYPE_UINT32);
    out = gguf_get_val_u32(ctx_, k);
    return true;
  }

  std::string Str(const std::string& key) const {
    int64_t k = Key(key);
    if (k < 0) return {};
    ExpectType(key, GGUF_TYPE_STRING);
    return gguf_get_val_str(ctx_, k);
  }

  // Norm epsilons: ggml asserts eps >= 0 when the norm runs.
  void Epsilon(const std::string& key) const {
    int64_t k = Key(key);
    if (k < 0 || gguf_get_kv_type(ctx_, k) != GGUF_TYPE_FLOAT32) return;
    const float eps = gguf_get_val_f32(ctx_, k);
    if (!(eps >= 0.0f && eps < 1.0f)) Fail("key '" + key + "' is " + std::to_string(eps) + ", expected a small non-negative number");
  }

  void Range(const std::string& key, uint32_t v, uint32_t lo, uint32_t hi) const {
    if (v < lo || v > hi) Fail("key '" + key + "' is " + std::to_string(v) + ", expected " + std::to_string(lo) + ".." + std::to_string(hi));
  }

  const ggml_tensor* Tensor(const std::string& name) const { return ggml_get_tensor(meta_, name.c_str()); }
  bool Has(const std::string& name) const { return Tensor(name) != nullptr; }
  void Require(const std::string& name, const std::string& why) const {
    if (!Has(name)) Fail("tensor '" + name + "' is missing (" + why + ")");
  }

  gguf_context* ctx() const { return ctx_; }

  // Vectors (biases, norms, embeddings added to activations) are combined with F32 activations
  // by ggml ops that support only F32 there; converters always store them as F32.
  void VectorsAreF32() const {
    for (int64_t i = 0; i < gguf_get_n_tensors(ctx_); i++) {
      const ggml_tensor* t = Tensor(gguf_get_tensor_name(ctx_, i));
      if (t && t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1 && t->type != GGML_TYPE_F32) {
        Fail(std::string("tensor '") + t->name + "' is a vector stored as " + ggml_type_name(t->type) + ", expected f32");
      }
    }
  }

  void FloatType(const std::string& name) const {
    const ggml_tensor* t = Tensor(name);
    if (t && t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16) {
      Fail("tensor '" + name + "' is stored as " + ggml_type_name(t->type) + ", expected f32 or f16");
    }
  }

 private:
  std::string path_;
  const char* code_;
  const char* what_;
  uint64_t fileSize_ = 0;
  gguf_context* ctx_ = nullptr;
  ggml_context* meta_ = nullptr;
};

std::string Dims(const ggml_tensor* t) {
  return "[" + std::to_string(t->ne[0]) + ", " + std::to_string(t->ne[1]) + ", " + std::to_string(t->ne[2]) + ", " +
         std::to_string(t->ne[3]) + "]";
}

// A model split in parts (`-00001-of-0000N.gguf`): llama.cpp opens the other parts by name and
// reads their `split.no` with a typed getter that aborts on another type. Each part is checked
// as the first one is: readable, its tensors inside the file, its index where llama.cpp expects it.
// A tensor with exactly this shape (trailing dimensions 1); a missing one fails when `required`.
void Shape(const Check& c, const std::string& name, std::vector<int64_t> ne, bool required) {
  const ggml_tensor* t = c.Tensor(name);
  if (!t) {
    if (required) c.Fail("tensor '" + name + "' is missing");
    return;
  }
  ne.resize(4, 1);
  for (int i = 0; i < 4; i++) {
    if (t->ne[i] != ne[static_cast<size_t>(i)]) {
      c.Fail("tensor '" + name + "' has shape " + Dims(t) + ", expected [" + std::to_string(ne[0]) + ", " + std::to_string(ne[1]) + ", " +
             std::to_string(ne[2]) + ", " + std::to_string(ne[3]) + "]");
    }
  }
}

// Whisper-based audio encoders (Ultravox, Qwen2-Audio / Qwen2.5-Omni, Voxtral): the graph
// (tools/mtmd/models/whisper-enc.cpp) asserts on missing norms and biases, dereferences the layers'
// weights unchecked, views 1500 rows of the position embedding, and multiplies every matrix by the
// width of the one before it. Every tensor it touches is checked here with its shape.
void ValidateWhisperAudio(const Check& c, const std::string& projector, int64_t textWidth) {
  uint32_t nEmbd = 0, nHead = 0, nLayer = 0, nMel = 0, nFf = 0;
  if (!c.U32("clip.audio.embedding_length", nEmbd)) c.Fail("key 'clip.audio.embedding_length' is missing");
  if (!c.U32("clip.audio.attention.head_count", nHead)) c.Fail("key 'clip.audio.attention.head_count' is missing");
  if (!c.U32("clip.audio.block_count", nLayer)) c.Fail("key 'clip.audio.block_count' is missing");
  if (!c.U32("clip.audio.num_mel_bins", nMel)) c.Fail("key 'clip.audio.num_mel_bins' is missing");
  if (!c.U32("clip.audio.feed_forward_length", nFf)) c.Fail("key 'clip.audio.feed_forward_length' is missing");
  c.Range("clip.audio.embedding_length", nEmbd, 1, 1u << 16);
  c.Range("clip.audio.attention.head_count", nHead, 1, nEmbd);
  if (nEmbd % nHead != 0) c.Fail("clip.audio.embedding_length " + std::to_string(nEmbd) + " is not a multiple of its head count " + std::to_string(nHead));
  c.Range("clip.audio.block_count", nLayer, 1, kMaxVisionLayers);
  c.Range("clip.audio.num_mel_bins", nMel, 1, 1024);
  c.Range("clip.audio.feed_forward_length", nFf, 1, 1u << 20);
  const int64_t e = nEmbd;
  Shape(c, "a.conv1d.1.weight", {3, nMel, e}, true);
  Shape(c, "a.conv1d.1.bias", {1, e}, true);
  Shape(c, "a.conv1d.2.weight", {3, e, e}, true);
  Shape(c, "a.conv1d.2.bias", {1, e}, true);
  c.FloatType("a.conv1d.1.weight");
  c.FloatType("a.conv1d.2.weight");
  const ggml_tensor* pos = c.Tensor("a.position_embd.weight");
  if (!pos) c.Fail("tensor 'a.position_embd.weight' is missing");
  if (pos->ne[0] != e || pos->ne[1] < 1500 || pos->ne[2] != 1 || pos->ne[3] != 1) {
    c.Fail("tensor 'a.position_embd.weight' has shape " + Dims(pos) + ", expected [" + std::to_string(e) + ", 1500 or more] (a 30 s window)");
  }
  c.FloatType("a.position_embd.weight");
  for (uint32_t il = 0; il < nLayer; il++) {
    const std::string p = "a.blk." + std::to_string(il) + ".";
    for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_out"}) Shape(c, p + w + ".weight", {e, e}, true);
    for (const char* b : {"attn_q", "attn_v"}) Shape(c, p + b + ".bias", {e}, true);
    Shape(c, p + "attn_out.bias", {e}, false);
    if (c.Has(p + "attn_k.bias")) c.Fail("tensor '" + p + "attn_k.bias' is present; Whisper's key projection has none");
    for (const char* n : {"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"}) Shape(c, p + n, {e}, true);
    Shape(c, p + "ffn_up.weight", {e, nFf}, true);
    Shape(c, p + "ffn_up.bias", {nFf}, false);
    Shape(c, p + "ffn_down.weight", {nFf, e}, true);
    Shape(c, p + "ffn_down.bias", {e}, false);
  }
  Shape(c, "a.post_ln.weight", {e}, false);
  Shape(c, "a.post_ln.bias", {e}, false);

  // The projection into the text model's width.
  auto out = [&](const std::string& name, int64_t in) {
    const ggml_tensor* t = c.Tensor(name);
    if (!t) c.Fail("tensor '" + name + "' is missing (the " + projector + " projection)");
    if (t->ne[0] != in || t->ne[2] != 1 || t->ne[3] != 1) c.Fail("tensor '" + name + "' has shape " + Dims(t) + ", expected [" + std::to_string(in) + ", n]");
    if (textWidth > 0 && t->ne[1] != textWidth) {
      Throw("ERR_MMPROJ_MISMATCH", "the audio projector outputs embeddings of width " + std::to_string(t->ne[1]) + " but the text model takes " +
                                       std::to_string(textWidth) + ". Use the mmproj file published together with this text model.");
    }
    return t->ne[1];
  };
  if (projector == "qwen2a") {
    Shape(c, "mm.a.fc.bias", {out("mm.a.fc.weight", e)}, true);
    return;
  }
  uint32_t stack = 0;
  if (!c.U32("clip.audio.projector.stack_factor", stack)) c.Fail("key 'clip.audio.projector.stack_factor' is missing");
  c.Range("clip.audio.projector.stack_factor", stack, 1, 64);
  const int64_t stacked = e * stack;
  const ggml_tensor* mlp1 = c.Tensor("mm.a.mlp.1.weight");
  if (!mlp1) c.Fail("tensor 'mm.a.mlp.1.weight' is missing (the " + projector + " projection)");
  Shape(c, "mm.a.mlp.1.weight", {stacked, mlp1->ne[1]}, true);
  const int64_t hidden = mlp1->ne[1];
  if (projector == "ultravox") {
    // SwiGLU halves the hidden width
    if (hidden % 2 != 0) c.Fail("tensor 'mm.a.mlp.1.weight' has an odd width " + std::to_string(hidden) + "; its SwiGLU takes halves");
    Shape(c, "mm.a.norm_pre.weight", {stacked}, true);
    Shape(c, "mm.a.norm_mid.weight", {hidden / 2}, true);
    out("mm.a.mlp.2.weight", hidden / 2);
  } else {  // voxtral
    Shape(c, "mm.a.mlp.1.bias", {hidden}, false);
    const int64_t width = out("mm.a.mlp.2.weight", hidden);
    Shape(c, "mm.a.mlp.2.bias", {width}, false);
  }
}

void ValidateSplitParts(const std::string& path, Check& c) {
  const int64_t k = c.Key("split.count");
  if (k < 0) return;
  c.ExpectType("split.count", GGUF_TYPE_UINT16);
  const uint16_t n = gguf_get_val_u16(c.ctx(), k);
  if (n <= 1) return;
  c.ExpectType("split.no", GGUF_TYPE_UINT16);
  c.ExpectType("split.tensors.count", GGUF_TYPE_INT32);
  const int64_t no = c.Key("split.no");
  if (no < 0 || gguf_get_val_u16(c.ctx(), no) != 0) c.Fail("it is not the first part of a split model; load the file ending in -00001-of-" + std::to_string(n) + ".gguf (any other part is refused by llama.cpp)");
  std::vector<char> buf(path.size() + 64, 0);
  const int len = llama_split_prefix(buf.data(), buf.size(), path.c_str(), 0, n);
  if (len <= 0) c.Fail("it says it is part 1 of " + std::to_string(n) + " but its name does not end in -00001-of-" + std::to_string(n) + ".gguf, so the other parts cannot be found");
  const std::string prefix(buf.data(), static_cast<size_t>(len));
  for (int idx = 1; idx < n; idx++) {
    const int plen = llama_split_path(buf.data(), buf.size(), prefix.c_str(), idx, n);
    const std::string part(buf.data(), static_cast<size_t>(plen > 0 ? plen : 0));
    Gguf pg;
    Check pc(part, "ERR_MODEL_LOAD", "model part");
    pc.Open(pg);
    const int64_t pk = pc.Key("split.no");
    if (pk < 0) pc.Fail("key 'split.no' is missing");
    pc.ExpectType("split.no", GGUF_TYPE_UINT16);
    if (gguf_get_val_u16(pc.ctx(), pk) != idx) pc.Fail("key 'split.no' is " + std::to_string(gguf_get_val_u16(pc.ctx(), pk)) + ", expected " + std::to_string(idx));
    pc.VectorsAreF32();
  }
}

}  // namespace

ModelFacts ValidateTextModel(const std::string& path) {
  Gguf g;
  Check c(path, "ERR_MODEL_LOAD", "model");
  c.Open(g);
  ValidateSplitParts(path, c);
  if (c.Key("general.architecture") < 0) c.Fail("key 'general.architecture' is missing");
  const std::string arch = c.Str("general.architecture");
  if (arch == "clip") c.Fail("it is a projector (mmproj) file; pass it as `mmproj` and the text model as `model`");
  ModelFacts facts;
  facts.architecture = arch;
  c.VectorsAreF32();

  uint32_t v = 0;
  if (c.U32If(arch + ".block_count", v)) {
    c.Range(arch + ".block_count", v, 1, kMaxLayers);
    facts.blockCount = v;
  }
  if (c.U32If(arch + ".embedding_length", v)) {
    c.Range(arch + ".embedding_length", v, 1, 1u << 20);
    facts.embeddingLength = v;
  }
  c.Epsilon(arch + ".attention.layer_norm_rms_epsilon");
  c.Epsilon(arch + ".attention.layer_norm_epsilon");
  uint32_t nHead = 0, nHeadKv = 0;
  if (c.U32If(arch + ".attention.head_count", nHead)) c.Range(arch + ".attention.head_count", nHead, 1, 1u << 16);
  // Grouped-query attention: the key/value heads must divide the query heads, or the graph's
  // reshapes assert.
  if (nHead > 0 && c.U32If(arch + ".attention.head_count_kv", nHeadKv)) {
    c.Range(arch + ".attention.head_count_kv", nHeadKv, 1, nHead);
    if (nHead % nHeadKv != 0) {
      c.Fail("key '" + arch + ".attention.head_count_kv' (" + std::to_string(nHeadKv) + ") does not divide the head count (" +
             std::to_string(nHead) + ")");
    }
  }

  // Special token ids index the vocabulary: one outside it is read out of bounds at generation.
  const int64_t tokens = c.Key("tokenizer.ggml.tokens");
  if (tokens >= 0) {
    if (gguf_get_kv_type(c.ctx(), tokens) != GGUF_TYPE_ARRAY || gguf_get_arr_type(c.ctx(), tokens) != GGUF_TYPE_STRING) {
      c.Fail("key 'tokenizer.ggml.tokens' must be an array of strings");
    }
    const uint64_t nVocab = gguf_get_arr_n(c.ctx(), tokens);
    if (nVocab == 0) c.Fail("the vocabulary (tokenizer.ggml.tokens) is empty");
    // llama.cpp maps token text to id and asserts that no two tokens share a text.
    std::unordered_set<std::string> seen;
    seen.reserve(static_cast<size_t>(nVocab));
    for (uint64_t i = 0; i < nVocab; i++) {
      if (!seen.emplace(gguf_get_arr_str(c.ctx(), tokens, static_cast<size_t>(i))).second) {
        c.Fail("token " + std::to_string(i) + " in tokenizer.ggml.tokens repeats an earlier token's text");
      }
    }
    // Per-token arrays are indexed by token id.
    for (const char* key : {"tokenizer.ggml.scores", "tokenizer.ggml.token_type"}) {
      const int64_t k = c.Key(key);
      if (k < 0) continue;
      if (gguf_get_kv_type(c.ctx(), k) != GGUF_TYPE_ARRAY || gguf_get_arr_n(c.ctx(), k) != nVocab) {
        c.Fail(std::string("key '") + key + "' must be an array with one entry per token (" + std::to_string(nVocab) + ")");
      }
    }
    for (int64_t i = 0; i < gguf_get_n_kv(c.ctx()); i++) {
      const std::string key = gguf_get_key(c.ctx(), i);
      if (key.rfind("tokenizer.ggml.", 0) != 0 || key.size() < 9 || key.compare(key.size() - 9, 9, "_token_id") != 0) continue;
      const gguf_type t = gguf_get_kv_type(c.ctx(), i);
      if (t == GGUF_TYPE_UINT32 && gguf_get_val_u32(c.ctx(), i) >= nVocab && gguf_get_val_u32(c.ctx(), i) != 0xFFFFFFFFu) {
        c.Fail("key '" + key + "' is " + std::to_string(gguf_get_val_u32(c.ctx(), i)) + ", outside the vocabulary of " +
               std::to_string(nVocab) + " tokens");
      }
      if (t == GGUF_TYPE_INT32 && (gguf_get_val_i32(c.ctx(), i) >= static_cast<int64_t>(nVocab))) {
        c.Fail("key '" + key + "' is outside the vocabulary of " + std::to_string(nVocab) + " tokens");
      }
    }
  }
  return facts;
}

void ValidateProjector(const std::string& path, const ModelFacts& text) {
  Gguf g;
  Check c(path, "ERR_MMPROJ_LOAD", "projector");
  c.Open(g);
  const std::string arch = c.Str("general.architecture");
  if (arch != "clip") {
    c.Fail("general.architecture is '" + arch + "', expected 'clip' (is this the text model? pass it as `model`)");
  }

  // The keys llama.cpp's CLIP loader reads with a fixed scalar type: clip.cpp's get_u32, get_i32,
  // get_f32, get_bool and get_string calls at the pinned commit (a key of another type aborts in
  // gguf.cpp). Keys it does not read are not checked.
  static const std::unordered_map<std::string, gguf_type> kTyped = {
      {"clip.audio.attention.head_count", GGUF_TYPE_UINT32},
      {"clip.audio.attention.head_count_kv", GGUF_TYPE_UINT32},
      {"clip.audio.attention.head_dim", GGUF_TYPE_UINT32},
      {"clip.audio.attention.layer_norm_epsilon", GGUF_TYPE_FLOAT32},
      {"clip.audio.block_count", GGUF_TYPE_UINT32},
      {"clip.audio.chunk_size", GGUF_TYPE_UINT32},
      {"clip.audio.conv_kernel_size", GGUF_TYPE_UINT32},
      {"clip.audio.embedding_length", GGUF_TYPE_UINT32},
      {"clip.audio.feed_forward_length", GGUF_TYPE_UINT32},
      {"clip.audio.local_block_count", GGUF_TYPE_UINT32},
      {"clip.audio.local_group_size", GGUF_TYPE_UINT32},
      {"clip.audio.max_pos_emb", GGUF_TYPE_UINT32},
      {"clip.audio.num_mel_bins", GGUF_TYPE_UINT32},
      {"clip.audio.projection_dim", GGUF_TYPE_UINT32},
      {"clip.audio.projector.downsample_rate", GGUF_TYPE_UINT32},
      {"clip.audio.projector.head_count", GGUF_TYPE_UINT32},
      {"clip.audio.projector.stack_factor", GGUF_TYPE_UINT32},
      {"clip.audio.projector.window_size", GGUF_TYPE_UINT32},
      {"clip.audio.projector_type", GGUF_TYPE_STRING},
      {"clip.audio.rvq.num_quantizers", GGUF_TYPE_UINT32},
      {"clip.audio.subsampling_factor", GGUF_TYPE_UINT32},
      {"clip.audio.window_size", GGUF_TYPE_UINT32},
      {"clip.gen.audio.model_variant", GGUF_TYPE_STRING},
      {"clip.gen.audio.projector_type", GGUF_TYPE_STRING},
      {"clip.has_audio_encoder", GGUF_TYPE_BOOL},
      {"clip.has_gen_audio_encoder", GGUF_TYPE_BOOL},
      {"clip.has_vision_encoder", GGUF_TYPE_BOOL},
      {"clip.minicpmv_query_num", GGUF_TYPE_UINT32},
      {"clip.minicpmv_version", GGUF_TYPE_INT32},
      {"clip.projector_type", GGUF_TYPE_STRING},
      {"clip.use_gelu", GGUF_TYPE_BOOL},
      {"clip.use_silu", GGUF_TYPE_BOOL},
      {"clip.vision.attention.head_count", GGUF_TYPE_UINT32},
      {"clip.vision.attention.head_count_kv", GGUF_TYPE_UINT32},
      {"clip.vision.attention.head_dim", GGUF_TYPE_UINT32},
      {"clip.vision.attention.layer_norm_epsilon", GGUF_TYPE_FLOAT32},
      {"clip.vision.block_count", GGUF_TYPE_UINT32},
      {"clip.vision.embedding_length", GGUF_TYPE_UINT32},
      {"clip.vision.expert_used_count", GGUF_TYPE_UINT32},
      {"clip.vision.feed_forward_length", GGUF_TYPE_UINT32},
      {"clip.vision.image_max_pixels", GGUF_TYPE_UINT32},
      {"clip.vision.image_min_pixels", GGUF_TYPE_UINT32},
      {"clip.vision.image_size", GGUF_TYPE_UINT32},
      {"clip.vision.mm_patch_merge_type", GGUF_TYPE_STRING},
      {"clip.vision.n_wa_pattern", GGUF_TYPE_UINT32},
      {"clip.vision.patch_size", GGUF_TYPE_UINT32},
      {"clip.vision.preproc_image_size", GGUF_TYPE_UINT32},
      {"clip.vision.preproc_max_tiles", GGUF_TYPE_UINT32},
      {"clip.vision.preproc_min_tiles", GGUF_TYPE_UINT32},
      {"clip.vision.projection_dim", GGUF_TYPE_UINT32},
      {"clip.vision.projector.query_side", GGUF_TYPE_UINT32},
      {"clip.vision.projector.scale_factor", GGUF_TYPE_UINT32},
      {"clip.vision.projector.window_side", GGUF_TYPE_UINT32},
      {"clip.vision.projector_type", GGUF_TYPE_STRING},
      {"clip.vision.sam.block_count", GGUF_TYPE_UINT32},
      {"clip.vision.sam.embedding_length", GGUF_TYPE_UINT32},
      {"clip.vision.sam.head_count", GGUF_TYPE_UINT32},
      {"clip.vision.spatial_merge_size", GGUF_TYPE_UINT32},
      {"clip.vision.window_size", GGUF_TYPE_UINT32},
      {"general.description", GGUF_TYPE_STRING},
      {"general.name", GGUF_TYPE_STRING},
  };
  for (const auto& [key, type] : kTyped) c.ExpectType(key, type);
  c.Epsilon("clip.vision.attention.layer_norm_epsilon");
  c.Epsilon("clip.audio.attention.layer_norm_epsilon");

  std::string projector = c.Str("clip.projector_type");
  if (projector.empty()) projector = c.Str("clip.vision.projector_type");
  if (projector.empty() && c.Key("clip.has_llava_projector") >= 0) projector = "mlp";

  c.VectorsAreF32();
  const int64_t hasAudioKey = c.Key("clip.has_audio_encoder");
  if (hasAudioKey >= 0 && gguf_get_val_bool(c.ctx(), hasAudioKey)) {
    // a projector with both encoders names each one's type, or the pair (Qwen2.5-Omni)
    std::string audio = c.Str("clip.audio.projector_type");
    if (audio.empty()) audio = projector == "qwen2.5o" ? "qwen2a" : projector;
    // Other audio families are left to llama.cpp, which reports what its loader misses.
    if (audio == "ultravox" || audio == "qwen2a" || audio == "voxtral") ValidateWhisperAudio(c, audio, text.embeddingLength);
  }
  const int64_t hasVisionKey = c.Key("clip.has_vision_encoder");
  const bool hasVision = hasVisionKey >= 0 && gguf_get_val_bool(c.ctx(), hasVisionKey);
  if (!hasVision) return;

  uint32_t imageSize = 0, patchSize = 0, nEmbd = 0, nHead = 0, nLayer = 0, headDim = 0;
  if (!c.U32("clip.vision.image_size", imageSize)) c.Fail("key 'clip.vision.image_size' is missing");
  if (!c.U32("clip.vision.patch_size", patchSize)) c.Fail("key 'clip.vision.patch_size' is missing");
  if (!c.U32("clip.vision.embedding_length", nEmbd)) c.Fail("key 'clip.vision.embedding_length' is missing");
  if (!c.U32("clip.vision.attention.head_count", nHead)) c.Fail("key 'clip.vision.attention.head_count' is missing");
  if (!c.U32("clip.vision.block_count", nLayer)) c.Fail("key 'clip.vision.block_count' is missing");
  c.Range("clip.vision.patch_size", patchSize, 1, 4096);
  c.Range("clip.vision.image_size", imageSize, patchSize, 65536);
  c.Range("clip.vision.embedding_length", nEmbd, 1, 1u << 16);
  c.Range("clip.vision.attention.head_count", nHead, 1, nEmbd);
  c.Range("clip.vision.block_count", nLayer, 1, kMaxVisionLayers);
  if (!c.U32("clip.vision.attention.head_dim", headDim) && nEmbd % nHead != 0) {
    c.Fail("clip.vision.embedding_length " + std::to_string(nEmbd) + " is not a multiple of clip.vision.attention.head_count " +
           std::to_string(nHead));
  }

  // The patch embedding (a patch x patch x 3 convolution into the hidden width) is used by every
  // vision projector; a missing one is dereferenced while building the graph.
  const ggml_tensor* patch = c.Tensor("v.patch_embd.weight");
  if (!patch) c.Fail("tensor 'v.patch_embd.weight' (the patch embedding) is missing");
  if (patch->ne[0] != patchSize || patch->ne[1] != patchSize || patch->ne[2] != 3 || patch->ne[3] != nEmbd) {
    c.Fail("tensor 'v.patch_embd.weight' has shape " + Dims(patch) + ", expected [" + std::to_string(patchSize) + ", " +
           std::to_string(patchSize) + ", 3, " + std::to_string(nEmbd) + "]");
  }
  c.FloatType("v.patch_embd.weight");
  c.FloatType("v.position_embd.weight");
  for (uint32_t il = 0; il < nLayer; il++) {
    const std::string p = "v.blk." + std::to_string(il) + ".";
    const bool split = c.Has(p + "attn_q.weight") && c.Has(p + "attn_k.weight") && c.Has(p + "attn_v.weight");
    if (!split && !c.Has(p + "attn_qkv.weight")) c.Fail("layer " + std::to_string(il) + " has no attention weights (attn_q/k/v or attn_qkv)");
  }

  // Projectors that resize their learned positions to each image do it with ggml_interpolate,
  // which asserts on anything but F32 (the converters force F32 for them).
  static const char* const kResizedPositions[] = {"lfm2", "phi4", "qwen3vl_merger", "glm4v", "kimivl", "kimik25", "paddleocr", "step3vl", "muse-glimmer"};
  for (const char* name : kResizedPositions) {
    const ggml_tensor* pos = c.Tensor("v.position_embd.weight");
    if (projector == name && pos && pos->type != GGML_TYPE_F32) {
      c.Fail("tensor 'v.position_embd.weight' is " + std::string(ggml_type_name(pos->type)) + "; the " + projector +
             " projector resizes it to each image, which llama.cpp does in F32 only");
    }
  }

  // Projector families this validator knows the tensors of; others are left to llama.cpp.
  const bool llavaFamily = projector == "mlp" || projector == "mlp_norm";
  if (llavaFamily) {
    const ggml_tensor* pos = c.Tensor("v.position_embd.weight");
    if (!pos) c.Fail("tensor 'v.position_embd.weight' is missing (the " + projector + " projector needs learned positions)");
    const uint64_t nPatches = static_cast<uint64_t>(imageSize / patchSize) * (imageSize / patchSize) + (c.Has("v.class_embd") ? 1 : 0);
    if (pos->ne[0] != nEmbd || static_cast<uint64_t>(pos->ne[1]) < nPatches) {
      c.Fail("tensor 'v.position_embd.weight' has shape " + Dims(pos) + ", expected [" + std::to_string(nEmbd) + ", " + std::to_string(nPatches) + "]");
    }
    // Every tensor the LLaVA graph multiplies or adds must exist with the width it is combined
    // with: ggml asserts on a mismatch and the graph dereferences a missing optional tensor.
    uint32_t nFf = 0;
    if (!c.U32("clip.vision.feed_forward_length", nFf)) c.Fail("key 'clip.vision.feed_forward_length' is missing");
    auto shape = [&](const std::string& name, int64_t ne0, int64_t ne1, bool required) {
      const ggml_tensor* t = c.Tensor(name);
      if (!t) {
        if (required) c.Fail("tensor '" + name + "' is missing");
        return;
      }
      if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        c.Fail("tensor '" + name + "' has shape " + Dims(t) + ", expected [" + std::to_string(ne0) + ", " + std::to_string(ne1) + ", 1, 1]");
      }
    };
    auto ffn = [&](const std::string& name) {
      const ggml_tensor* t = c.Tensor(name);
      if (!t) c.Fail("tensor '" + name + "' is missing");
      // Old converters store fc1/fc2 swapped; llama.cpp detects that from the shapes.
      const bool ok = t->ne[2] == 1 && t->ne[3] == 1 &&
                      ((t->ne[0] == nEmbd && t->ne[1] == nFf) || (t->ne[0] == nFf && t->ne[1] == nEmbd));
      if (!ok) c.Fail("tensor '" + name + "' has shape " + Dims(t) + ", expected [" + std::to_string(nEmbd) + ", " + std::to_string(nFf) + "] or its transpose");
    };
    for (const char* n : {"v.class_embd", "v.pre_ln.weight", "v.pre_ln.bias", "v.post_ln.weight", "v.post_ln.bias"}) shape(n, nEmbd, 1, false);
    for (uint32_t il = 0; il < nLayer; il++) {
      const std::string p = "v.blk." + std::to_string(il) + ".";
      for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
        shape(p + w + ".weight", nEmbd, nEmbd, std::string(w) == "attn_out");
        shape(p + w + ".bias", nEmbd, 1, false);
      }
      for (const char* n : {"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"}) shape(p + n, nEmbd, 1, false);
      ffn(p + "ffn_up.weight");
      ffn(p + "ffn_down.weight");
    }
    const ggml_tensor* mm0 = c.Tensor("mm.0.weight");
    if (!mm0) c.Fail("tensor 'mm.0.weight' is missing (the first layer of the " + projector + " projector)");
    const int64_t hidden = mm0->ne[1];
    shape("mm.0.weight", nEmbd, hidden, true);
    shape("mm.0.bias", hidden, 1, true);
    if (projector == "mlp_norm") {
      for (const char* n : {"mm.1.weight", "mm.1.bias", "mm.4.weight", "mm.4.bias"}) shape(n, hidden, 1, true);
      shape("mm.3.weight", hidden, hidden, true);
      shape("mm.3.bias", hidden, 1, true);
    } else {
      // clip_n_mmproj_embd() reads mm.2.weight's shape for this projector unconditionally.
      if (!c.Has("mm.2.weight")) c.Fail("tensor 'mm.2.weight' is missing (the second layer of the mlp projector)");
      const int64_t width = c.Tensor("mm.2.weight")->ne[1];
      shape("mm.2.weight", hidden, width, true);
      shape("mm.2.bias", width, 1, true);
    }
    // LLaVA reads the features of the second-to-last layer unless told otherwise.
    if (nLayer < 2 && c.Key("clip.vision.feature_layer") < 0) {
      c.Fail("clip.vision.block_count is " + std::to_string(nLayer) + "; the " + projector + " projector needs at least 2 layers");
    }
    const ggml_tensor* out = projector == "mlp" ? c.Tensor("mm.2.weight") : c.Tensor("mm.3.weight");
    if (text.embeddingLength > 0 && out->ne[1] != text.embeddingLength) {
      Throw("ERR_MMPROJ_MISMATCH", "the projector " + path + " outputs embeddings of width " + std::to_string(out->ne[1]) +
                                       " but the text model takes " + std::to_string(text.embeddingLength) +
                                       ". Use the mmproj file published together with this text model.");
    }
  } else if (projector == "gemma3") {
    c.Require("v.position_embd.weight", "Gemma 3 uses learned positions");
    c.Require("mm.input_projection.weight", "the Gemma 3 projection");
    c.Require("mm.soft_emb_norm.weight", "the Gemma 3 projection norm");
  } else if (projector == "qwen2vl_merger" || projector == "qwen2.5vl_merger") {
    c.Require("mm.0.weight", "the first layer of the Qwen2-VL merger");
    c.Require("mm.2.weight", "the second layer of the Qwen2-VL merger");
  }
}

}  // namespace llava
