#include "generation.h"

#include <algorithm>
#include <chrono>

#include "compute_thread.h"
#include "errors.h"
#include "logging.h"
#include "mtmd-helper.h"
#include "session_file.h"
#include "text_stream.h"

namespace llava {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

}  // namespace

void EnsureContext(SessionState& s) {
  if (s.ctx) return;
  const ModelState& m = *s.model;
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = s.params.contextSize;
  uint32_t ubatch = std::max<uint32_t>(1, s.params.ubatchSize);
  // Images with non-causal attention (Gemma 3) must sit in one micro-batch; a smaller one would
  // trip llama.cpp's batch assertions.
  if (m.imageNonCausal) ubatch = std::max<uint32_t>(ubatch, static_cast<uint32_t>(m.imageTokens));
  cp.n_ubatch = ubatch;
  cp.n_batch = std::max<uint32_t>(s.params.batchSize, ubatch);
  cp.n_seq_max = 1;
  cp.n_threads = s.params.threads;
  cp.n_threads_batch = s.params.threadsBatch;
  cp.flash_attn_type = s.params.flashAttention < 0   ? LLAMA_FLASH_ATTN_TYPE_AUTO
                       : s.params.flashAttention == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                                      : LLAMA_FLASH_ATTN_TYPE_ENABLED;
  cp.no_perf = true;
  cp.abort_callback = [](void* data) -> bool {
    auto* st = static_cast<SessionState*>(data);
    std::atomic<bool>* flag = st->abortFlag;
    return flag != nullptr && flag->load();
  };
  cp.abort_callback_data = &s;
  ClearLastLlamaError();
  s.ctx = llama_init_from_model(m.model, cp);
  if (!s.ctx) {
    std::string why = LastLlamaError();
    Throw("ERR_INTERNAL", "llama.cpp could not create a context of " + std::to_string(s.params.contextSize) + " tokens" +
                              (why.empty() ? std::string() : ": " + why) + ". Try a smaller contextSize.");
  }
  s.cached.clear();
  s.nPast = 0;
}

namespace {

struct ChunksOwner {
  mtmd_input_chunks* chunks = nullptr;
  std::vector<mtmd_bitmap*> bitmaps;
  ~ChunksOwner() {
    if (chunks) mtmd_input_chunks_free(chunks);
    for (auto* b : bitmaps) mtmd_bitmap_free(b);
  }
};

// The request's images, each with an embedding state (encoded, or waiting to be encoded from
// its decoded pixels) and the number of media chunks it expands to.
struct ResolvedImage {
  EmbeddingPtr e;
  RgbImage pixels;  // kept until encoded; empty for embeddings given by the caller
  size_t parts = 0;
};

std::vector<ResolvedImage> ResolveImages(SessionState& s, const GenerateRequest& req, std::atomic<bool>& abort) {
  ModelState& m = *s.model;
  std::vector<ResolvedImage> out;
  for (const auto& src : req.images) {
    if (abort.load()) Throw("ERR_ABORTED", "generation was aborted");
    ResolvedImage r;
    if (src.embedding) {
      r.e = src.embedding;
      r.parts = r.e->chunks.size();
    } else {
      r.pixels = DecodeImage(*src.input);
      const std::string id = ContentId(r.pixels);
      r.e = FindEncoded(m, id);
      if (!r.e) {
        for (const auto& h : s.held) {
          if (h->id == id) r.e = h;
        }
      }
      if (r.e && r.e->encoded()) {
        r.pixels = RgbImage();
      } else {
        r.e = std::make_shared<EmbeddingState>();
        r.e->model = s.model;
        r.e->nx = r.pixels.width;
        r.e->ny = r.pixels.height;
        r.e->id = id;
        r.e->nEmbd = llama_model_n_embd_inp(m.model);
      }
      r.parts = r.e->encoded() ? r.e->chunks.size() : CountImageChunks(m, r.e->nx, r.e->ny);
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<PromptItem> Tokenize(SessionState& s, const GenerateRequest& req, const std::vector<ResolvedImage>& images,
                                 ChunksOwner& owner) {
  const ModelState& m = *s.model;
  std::vector<PromptItem> items;
  if (!m.vision) {
    if (!req.images.empty()) Throw("ERR_NO_VISION", "images were given but the model was loaded without a projector (mmproj)");
    const llama_vocab* vocab = m.vocab();
    std::vector<llama_token> tokens(req.prompt.size() + 4);
    int32_t n = llama_tokenize(vocab, req.prompt.data(), static_cast<int32_t>(req.prompt.size()), tokens.data(),
                               static_cast<int32_t>(tokens.size()), req.addSpecial, req.parseSpecial);
    if (n < 0) {
      tokens.resize(static_cast<size_t>(-n));
      n = llama_tokenize(vocab, req.prompt.data(), static_cast<int32_t>(req.prompt.size()), tokens.data(),
                         static_cast<int32_t>(tokens.size()), req.addSpecial, req.parseSpecial);
    }
    if (n < 0) Throw("ERR_TOKENIZE", "the prompt could not be tokenized");
    for (int32_t i = 0; i < n; i++) items.push_back(PromptItem{CacheItem{tokens[i], {}, 1}});
    return items;
  }

  // Placeholder bitmaps of the right size: mtmd lays out the image tokens without the pixels,
  // and the embeddings are decoded in their place.
  std::vector<const mtmd_bitmap*> bitmaps;
  for (const auto& img : images) {
    mtmd_bitmap* b = mtmd_bitmap_init(img.e->nx, img.e->ny, nullptr);
    mtmd_bitmap_set_id(b, img.e->id.c_str());
    owner.bitmaps.push_back(b);
    bitmaps.push_back(b);
  }
  owner.chunks = mtmd_input_chunks_init();
  mtmd_input_text text = {req.prompt.c_str(), req.prompt.size(), req.addSpecial, req.parseSpecial};
  int32_t rc = mtmd_tokenize(m.vision, owner.chunks, &text, bitmaps.data(), bitmaps.size());
  if (rc == 1) {
    Throw("ERR_INVALID_ARGUMENT", "the prompt's image markers do not match the " + std::to_string(req.images.size()) +
                                      " image(s) given: put one <image> marker in the prompt for each image");
  }
  if (rc != 0) Throw("ERR_TOKENIZE", "the prompt could not be tokenized with its images (mtmd error " + std::to_string(rc) + ")");

  size_t img = 0, part = 0;
  for (size_t i = 0; i < mtmd_input_chunks_size(owner.chunks); i++) {
    const mtmd_input_chunk* c = mtmd_input_chunks_get(owner.chunks, i);
    auto type = mtmd_input_chunk_get_type(c);
    if (type == MTMD_INPUT_CHUNK_TYPE_TEXT) {
      size_t n = 0;
      const llama_token* t = mtmd_input_chunk_get_tokens_text(c, &n);
      for (size_t k = 0; k < n; k++) items.push_back(PromptItem{CacheItem{t[k], {}, 1}});
      continue;
    }
    if (type != MTMD_INPUT_CHUNK_TYPE_IMAGE) Throw("ERR_INVALID_ARGUMENT", "only image media are supported");
    while (img < images.size() && part >= images[img].parts) {
      img++;
      part = 0;
    }
    if (img >= images.size()) Throw("ERR_INTERNAL", "the prompt expanded to more image chunks than its images have");
    const EmbeddingState& e = *images[img].e;
    const int32_t n = static_cast<int32_t>(mtmd_input_chunk_get_n_tokens(c));
    if (e.encoded() && n != e.chunkTokens[part]) Throw("ERR_INTERNAL", "image chunk token count changed between encoding and decoding");
    PromptItem item{CacheItem{-1, e.id + "#" + std::to_string(part), mtmd_input_chunk_get_n_pos(c)}, c};
    item.source = static_cast<int>(img);
    item.part = static_cast<int>(part);
    item.nTokens = n;
    items.push_back(item);
    part++;
  }
  return items;
}

size_t CommonPrefix(const std::vector<CacheItem>& cached, const std::vector<PromptItem>& items) {
  size_t n = std::min(cached.size(), items.size());
  size_t i = 0;
  while (i < n && cached[i] == items[i].key) i++;
  return i;
}

void CheckDecode(int32_t rc, std::atomic<bool>& abort) {
  if (rc == 0) return;
  if (rc == 2 || abort.load()) Throw("ERR_ABORTED", "generation was aborted");
  if (rc == 1) Throw("ERR_CONTEXT_OVERFLOW", "the context has no room left for this batch; use a larger contextSize");
  Throw("ERR_DECODE", "llama_decode failed with code " + std::to_string(rc));
}

}  // namespace

GenerateResult RunGeneration(SessionState& s, const GenerateRequest& req, std::atomic<bool>& abort,
                             const std::function<void(StreamPiece&&)>& emit) {
  GenerateResult result;
  EnsureContext(s);
  const ModelState& m = *s.model;
  const llama_vocab* vocab = m.vocab();
  const llama_pos nCtx = static_cast<llama_pos>(llama_n_ctx(s.ctx));
  const int32_t nBatch = static_cast<int32_t>(llama_n_batch(s.ctx));

  ChunksOwner owner;
  const auto tImages = Clock::now();
  std::vector<ResolvedImage> images = ResolveImages(s, req, abort);
  result.imageEncodeMs = MsSince(tImages);
  std::vector<PromptItem> items = Tokenize(s, req, images, owner);
  if (items.empty()) Throw("ERR_INVALID_ARGUMENT", "the prompt is empty");
  if (items.back().chunk) Throw("ERR_INVALID_ARGUMENT", "the prompt must not end with an image: add text after the last <image> marker");
  llama_pos promptPos = 0;
  for (const auto& it : items) promptPos += it.key.nPos;
  for (const auto& it : items) result.promptTokens += it.nTokens;
  if (promptPos + 1 > nCtx) {
    Throw("ERR_CONTEXT_OVERFLOW", "the prompt needs " + std::to_string(promptPos) + " positions (text and image tokens) but the context holds " +
                                      std::to_string(nCtx) + "; shorten the prompt, use fewer images, or create the session with a larger contextSize");
  }

  // Build the sampler first: a bad grammar must fail before any work is done.
  llama_sampler* smpl = BuildSampler(vocab, req.sampling);
  struct SamplerGuard {
    llama_sampler* p;
    ~SamplerGuard() { llama_sampler_free(p); }
  } samplerGuard{smpl};

  s.abortFlag = &abort;
  struct AbortReset {
    SessionState& s;
    ~AbortReset() { s.abortFlag = nullptr; }
  } abortReset{s};

  // Keep what the cache already holds of this prompt; the last item is always evaluated again so
  // that its logits exist.
  llama_memory_t mem = llama_get_memory(s.ctx);
  size_t keep = req.reuseCache ? CommonPrefix(s.cached, items) : 0;
  if (keep == items.size()) keep--;
  llama_pos keepPos = 0;
  for (size_t i = 0; i < keep; i++) keepPos += items[i].key.nPos;
  if (keep == 0 || !llama_memory_seq_rm(mem, 0, keepPos, -1)) {
    llama_memory_clear(mem, true);
    keep = 0;
    keepPos = 0;
  }
  s.cached.resize(keep);
  s.nPast = keepPos;
  for (size_t k = 0; k < keep; k++) result.reusedTokens += items[k].nTokens;

  // Encode only the images whose tokens are not already in the cache.
  const auto tEncode = Clock::now();
  for (size_t k = keep; k < items.size(); k++) {
    if (!items[k].chunk) continue;
    ResolvedImage& r = images[static_cast<size_t>(items[k].source)];
    if (r.e->encoded()) continue;
    if (r.pixels.rgb.empty()) Throw("ERR_INTERNAL", "an image to evaluate has neither an embedding nor pixels");
    EncodeInto(*s.model, r.e, r.pixels, abort);
    r.pixels = RgbImage();
    result.imageEncodes++;
  }
  result.imageEncodeMs += MsSince(tEncode);
  // The cache's images stay alive with the session, so a later turn finds them without encoding.
  std::vector<EmbeddingPtr> held;
  for (const auto& r : images) held.push_back(r.e);
  s.held = std::move(held);

  // Evaluate the rest of the prompt: runs of text tokens in batches, images from their embeddings.
  const auto tPrompt = Clock::now();
  llama_batch batch = llama_batch_init(nBatch, 0, 1);
  struct BatchGuard {
    llama_batch& b;
    ~BatchGuard() { llama_batch_free(b); }
  } batchGuard{batch};

  auto rollback = [&](size_t items_ok, llama_pos pos_ok) {
    llama_memory_seq_rm(mem, 0, pos_ok, -1);
    s.cached.resize(items_ok);
    s.nPast = pos_ok;
  };

  size_t i = keep;
  while (i < items.size()) {
    if (abort.load()) Throw("ERR_ABORTED", "generation was aborted");
    const size_t startItems = s.cached.size();
    const llama_pos startPos = s.nPast;
    if (items[i].chunk) {
      llama_pos newPast = s.nPast;
      const auto tImage = Clock::now();
      EmbeddingState& e = *images[static_cast<size_t>(items[i].source)].e;
      float* embd = e.chunks[static_cast<size_t>(items[i].part)].data();
      int32_t rc = ComputeThread::Run(
          [&] { return mtmd_helper_decode_image_chunk(m.vision, s.ctx, items[i].chunk, embd, s.nPast, 0, nBatch, &newPast, nullptr, nullptr); });
      if (rc != 0) {
        rollback(startItems, startPos);
        CheckDecode(rc == -1 ? -1 : (abort.load() ? 2 : rc), abort);
      }
      s.cached.push_back(items[i].key);
      s.nPast = newPast;
      result.imagePrefillMs += MsSince(tImage);
      i++;
      continue;
    }
    batch.n_tokens = 0;
    const size_t batchStart = i;
    while (i < items.size() && !items[i].chunk && batch.n_tokens < nBatch) {
      const int32_t k = batch.n_tokens++;
      batch.token[k] = items[i].key.token;
      batch.pos[k] = s.nPast + k;
      batch.n_seq_id[k] = 1;
      batch.seq_id[k][0] = 0;
      batch.logits[k] = (i == items.size() - 1);
      i++;
    }
    int32_t rc = ComputeThread::Run([&] { return llama_decode(s.ctx, batch); });
    if (rc != 0) {
      rollback(startItems, startPos);
      CheckDecode(rc, abort);
    }
    for (size_t k = batchStart; k < i; k++) s.cached.push_back(items[k].key);
    s.nPast += batch.n_tokens;
  }
  result.promptMs = MsSince(tPrompt);

  // Sample.
  const auto tGen = Clock::now();
  TextStream stream(req.stop);
  StreamPiece pending;
  auto flushPiece = [&](std::string text, llama_token tok) {
    pending.tokens.push_back(tok);
    if (text.empty()) return;
    pending.text = std::move(text);
    result.text += pending.text;
    emit(std::move(pending));
    pending = StreamPiece();
  };

  result.stopReason = "maxTokens";
  char buf[256];
  for (int32_t n = 0; n < req.maxTokens; n++) {
    if (abort.load()) {
      result.stopReason = "aborted";
      break;
    }
    if (s.nPast >= nCtx) {
      result.stopReason = "contextFull";
      break;
    }
    const llama_token tok = llama_sampler_sample(smpl, s.ctx, -1);
    result.tokens.push_back(tok);
    if (llama_vocab_is_eog(vocab, tok)) {
      result.stopReason = "eos";
      break;
    }
    int32_t len = llama_token_to_piece(vocab, tok, buf, sizeof(buf), 0, false);
    std::string piece = len >= 0 ? std::string(buf, static_cast<size_t>(len)) : std::string();
    if (len < 0) {
      piece.resize(static_cast<size_t>(-len));
      llama_token_to_piece(vocab, tok, piece.data(), -len, 0, false);
    }
    flushPiece(stream.Push(piece), tok);
    if (stream.stopped()) {
      result.stopReason = "stop";
      break;
    }
    if (n + 1 == req.maxTokens) break;

    batch.n_tokens = 1;
    batch.token[0] = tok;
    batch.pos[0] = s.nPast;
    batch.n_seq_id[0] = 1;
    batch.seq_id[0][0] = 0;
    batch.logits[0] = true;
    int32_t rc = ComputeThread::Run([&] { return llama_decode(s.ctx, batch); });
    if (rc != 0) {
      llama_memory_seq_rm(mem, 0, s.nPast, -1);
      if (rc == 2 || abort.load()) {
        result.stopReason = "aborted";
        break;
      }
      CheckDecode(rc, abort);
    }
    s.cached.push_back(CacheItem{tok, {}, 1});
    s.nPast++;
  }
  if (!stream.stopped()) {
    std::string rest = stream.Flush();
    if (!rest.empty() || !pending.tokens.empty()) {
      pending.text = rest;
      result.text += rest;
      if (!rest.empty()) emit(std::move(pending));
    }
  }
  result.generatedTokens = static_cast<int32_t>(result.tokens.size());
  result.generateMs = MsSince(tGen);
  return result;
}

}  // namespace llava
