#include "generation.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <unordered_set>

#include "compute_thread.h"
#include "errors.h"
#include "logging.h"
#include "mtmd-helper.h"
#include "text_stream.h"

namespace llava {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

}  // namespace

namespace {

struct ChunksOwner {
  mtmd_input_chunks* chunks = nullptr;
  std::vector<mtmd_bitmap*> bitmaps;
  ~ChunksOwner() {
    if (chunks) mtmd_input_chunks_free(chunks);
    for (auto* b : bitmaps) mtmd_bitmap_free(b);
  }
};

// The request's media, each with an embedding state (encoded, or waiting to be encoded from its
// decoded content) and the number of media chunks it expands to.
struct ResolvedMedia {
  EmbeddingPtr e;
  RgbImage pixels;  // kept until encoded; empty for embeddings given by the caller, and for sound
  PcmAudio sound;   // the same for sound
  size_t parts = 0;
  bool decoded() const { return !pixels.rgb.empty() || !sound.samples.empty(); }
};

std::vector<ResolvedMedia> ResolveMedia(SessionState& s, const GenerateRequest& req, std::atomic<bool>& abort) {
  ModelState& m = *s.model;
  std::vector<ResolvedMedia> out;
  for (const auto& src : req.media) {
    if (abort.load()) Throw("ERR_ABORTED", "generation was aborted");
    ResolvedMedia r;
    if (src.embedding) {
      r.e = src.embedding;
      r.parts = r.e->chunks.size();
      out.push_back(std::move(r));
      continue;
    }
    RequireEncoder(m, src.audio != nullptr);
    std::string id;
    if (src.audio) {
      r.sound = DecodeAudio(*src.audio, m.audioSampleRate());
      id = AudioContentId(r.sound);
    } else {
      r.pixels = DecodeImage(*src.image);
      id = ContentId(r.pixels);
    }
    r.e = FindEncoded(m, id);
    if (!r.e) {
      for (const auto& h : s.held) {
        if (h->id == id) r.e = h;
      }
    }
    if (r.e && r.e->encoded()) {
      r.pixels = RgbImage();
      r.sound = PcmAudio();
    } else {
      r.e = src.audio ? NewEmbedding(s.model, r.sound, id) : NewEmbedding(s.model, r.pixels, id);
    }
    r.parts = r.e->encoded() ? r.e->chunks.size() : CountMediaChunks(m, *r.e);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<PromptItem> Tokenize(SessionState& s, const GenerateRequest& req, const std::vector<ResolvedMedia>& images,
                                 ChunksOwner& owner) {
  const ModelState& m = *s.model;
  std::vector<PromptItem> items;
  if (!m.vision) {  // ResolveMedia has refused any media already
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
    mtmd_bitmap* b = PlaceholderBitmap(*img.e);
    mtmd_bitmap_set_id(b, img.e->id.c_str());
    owner.bitmaps.push_back(b);
    bitmaps.push_back(b);
  }
  owner.chunks = mtmd_input_chunks_init();
  mtmd_input_text text = {req.prompt.c_str(), req.prompt.size(), req.addSpecial, req.parseSpecial};
  int32_t rc = mtmd_tokenize(m.vision, owner.chunks, &text, bitmaps.data(), bitmaps.size());
  if (rc == 1) {
    Throw("ERR_INVALID_ARGUMENT", "the prompt's media markers do not match the " + std::to_string(req.media.size()) +
                                      " image(s) and sound(s) given: put one marker in the prompt for each");
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
    if (type != MTMD_INPUT_CHUNK_TYPE_IMAGE && type != MTMD_INPUT_CHUNK_TYPE_AUDIO) Throw("ERR_INVALID_ARGUMENT", "only image and audio media are supported");
    while (img < images.size() && part >= images[img].parts) {
      img++;
      part = 0;
    }
    if (img >= images.size()) Throw("ERR_INTERNAL", "the prompt expanded to more media chunks than its media have");
    const EmbeddingState& e = *images[img].e;
    const int32_t n = static_cast<int32_t>(mtmd_input_chunk_get_n_tokens(c));
    if (e.encoded() && n != e.chunkTokens[part]) Throw("ERR_INTERNAL", "a media chunk's token count changed between encoding and decoding");
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
  ContextState& c = *s.context;
  llama_context* ctx = c.Ensure();
  const ModelState& m = *s.model;
  const llama_vocab* vocab = m.vocab();
  const llama_seq_id seq = s.seq;
  const llama_pos nCtx = static_cast<llama_pos>(c.SequenceContext());
  const int32_t nBatch = static_cast<int32_t>(llama_n_batch(ctx));

  // Tokenizing costs time in proportion to the text, and cannot be interrupted: a prompt that
  // cannot fit even if every token stood for the longest text one token can is refused unread.
  if (req.prompt.size() > m.maxTokenBytes * static_cast<size_t>(nCtx)) {
    Throw("ERR_CONTEXT_OVERFLOW", "the prompt is " + std::to_string(req.prompt.size()) + " bytes long, more than a context of " + std::to_string(nCtx) +
                                      " tokens can hold with this model's vocabulary (at most " + std::to_string(m.maxTokenBytes) +
                                      " bytes a token); shorten the prompt or create the session with a larger contextSize");
  }
  ChunksOwner owner;
  const auto tImages = Clock::now();
  std::vector<ResolvedMedia> images = ResolveMedia(s, req, abort);
  result.imageEncodeMs = MsSince(tImages);
  std::vector<PromptItem> items = Tokenize(s, req, images, owner);
  if (items.empty()) Throw("ERR_INVALID_ARGUMENT", "the prompt is empty");
  if (items.back().chunk) Throw("ERR_INVALID_ARGUMENT", "the prompt must not end with an image or a sound: add text after the last marker");
  // The context holds cells, one per token; positions only number them (and with M-RoPE an image
  // takes fewer positions than tokens). One cell must stay free for the answer.
  for (const auto& it : items) result.promptTokens += it.nTokens;
  if (result.promptTokens + 1 > nCtx) {
    Throw("ERR_CONTEXT_OVERFLOW", "the prompt needs " + std::to_string(result.promptTokens) + " KV cells (text and image tokens) and one more for the answer, but the context holds " +
                                      std::to_string(nCtx) + "; shorten the prompt, use fewer or smaller images, or create the session with a larger contextSize");
  }

  // Build the sampler first: a bad grammar must fail before any work is done.
  SamplingParams sampling = req.sampling;
  std::unordered_set<llama_token> preserved;
  std::unique_ptr<ChatStream> chat;
  if (req.chat) {
    preserved = ApplyChatSampling(vocab, *req.chat, sampling);
    chat = std::make_unique<ChatStream>(*req.chat);
  }
  llama_sampler* smpl = BuildSampler(vocab, sampling);
  struct SamplerGuard {
    llama_sampler* p;
    ~SamplerGuard() { llama_sampler_free(p); }
  } samplerGuard{smpl};

  // Keep what the cache already holds of this prompt; the last item is always evaluated again so
  // that its logits exist. The context may be shared, so its memory is touched only on the
  // compute thread, between decodes.
  llama_memory_t mem = llama_get_memory(ctx);
  size_t keep = req.reuseCache ? CommonPrefix(s.cached, items) : 0;
  if (keep == items.size()) keep--;
  llama_pos keepPos = 0;
  for (size_t i = 0; i < keep; i++) keepPos += items[i].key.nPos;
  ComputeThread::Run([&] {
    if (keep == 0 || !llama_memory_seq_rm(mem, seq, keepPos, -1)) {
      llama_memory_seq_rm(mem, seq, -1, -1);
      keep = 0;
      keepPos = 0;
    }
  });
  s.cached.resize(keep);
  s.nPast = keepPos;
  for (size_t k = 0; k < keep; k++) result.reusedTokens += items[k].nTokens;
  s.nCells = result.reusedTokens;

  // Encode only the images whose tokens are not already in the cache.
  const auto tEncode = Clock::now();
  for (size_t k = keep; k < items.size(); k++) {
    if (!items[k].chunk) continue;
    ResolvedMedia& r = images[static_cast<size_t>(items[k].source)];
    if (r.e->encoded()) continue;
    if (!r.decoded()) Throw("ERR_INTERNAL", "a medium to evaluate has neither an embedding nor content");
    EmbeddingPtr encoded = r.e->audio ? EncodeInto(*s.model, r.e, r.sound, abort) : EncodeInto(*s.model, r.e, r.pixels, abort);
    if (encoded == r.e) result.imageEncodes++;
    r.e = std::move(encoded);
    r.pixels = RgbImage();
    r.sound = PcmAudio();
  }
  result.imageEncodeMs += MsSince(tEncode);
  // The cache's images stay alive with the session, so a later turn finds them without encoding.
  std::vector<EmbeddingPtr> held;
  for (const auto& r : images) held.push_back(r.e);
  s.held = std::move(held);

  // From here on every step goes through the context's batcher, together with the steps of the
  // group's other sessions.
  Batcher& batcher = c.batcher();
  BatcherMembership membership(batcher);
  auto submit = [&](DecodeJob& job) {
    batcher.Submit(job);
    if (job.stepJobs > 1) result.sharedDecodes++;
  };
  auto rollback = [&](size_t items_ok, llama_pos pos_ok, int32_t cells_ok) {
    ComputeThread::Run([&] { llama_memory_seq_rm(mem, seq, pos_ok, -1); });
    s.cached.resize(items_ok);
    s.nPast = pos_ok;
    s.nCells = cells_ok;
  };

  // Evaluate the rest of the prompt: runs of text tokens in batches, images from their embeddings.
  // The last batch samples the first generated token.
  const auto tPrompt = Clock::now();
  std::vector<llama_token> tokens;
  tokens.reserve(static_cast<size_t>(nBatch));
  llama_token next = -1;
  TokenLogprob nextLogprob;
  size_t i = keep;
  while (i < items.size()) {
    if (abort.load()) Throw("ERR_ABORTED", "generation was aborted");
    const size_t startItems = s.cached.size();
    const llama_pos startPos = s.nPast;
    const int32_t startCells = s.nCells;
    DecodeJob job;
    job.seq = seq;
    job.abort = &abort;
    if (items[i].chunk) {
      llama_pos newPast = s.nPast;
      const auto tImage = Clock::now();
      EmbeddingState& e = *images[static_cast<size_t>(items[i].source)].e;
      const size_t part = static_cast<size_t>(items[i].part);
      // the layout came from a placeholder; the embeddings from the encoder: they must agree
      if (part >= e.chunks.size() || e.chunkTokens[part] != items[i].nTokens ||
          e.chunks[part].size() != static_cast<size_t>(items[i].nTokens) * static_cast<size_t>(e.nEmbd)) {
        rollback(startItems, startPos, startCells);
        Throw("ERR_INTERNAL", "a media chunk's encoded size differs from its laid-out token count");
      }
      float* embd = e.chunks[part].data();
      const mtmd_input_chunk* chunk = items[i].chunk;
      const llama_pos past = s.nPast;
      job.exclusive = [&, chunk, embd, past] {
        return mtmd_helper_decode_image_chunk(m.vision, ctx, chunk, embd, past, seq, nBatch, &newPast, nullptr, nullptr);
      };
      submit(job);
      if (job.rc != 0) {
        rollback(startItems, startPos, startCells);
        CheckDecode(job.rc == -1 ? -1 : (abort.load() ? 2 : job.rc), abort);
      }
      s.cached.push_back(items[i].key);
      s.nPast = newPast;
      s.nCells += items[i].nTokens;
      result.imagePrefillMs += MsSince(tImage);
      i++;
      continue;
    }
    tokens.clear();
    const size_t batchStart = i;
    while (i < items.size() && !items[i].chunk && static_cast<int32_t>(tokens.size()) < nBatch) tokens.push_back(items[i++].key.token);
    const bool last = i == items.size();
    job.tokens = tokens.data();
    job.nTokens = static_cast<int32_t>(tokens.size());
    job.pos = s.nPast;
    job.logitsLast = last;
    job.sampler = last && req.maxTokens > 0 ? smpl : nullptr;
    job.logprobs = req.logprobs;
    submit(job);
    if (job.rc != 0) {
      rollback(startItems, startPos, startCells);
      CheckDecode(job.rc, abort);
    }
    for (size_t k = batchStart; k < i; k++) s.cached.push_back(items[k].key);
    s.nPast += job.nTokens;
    s.nCells += job.nTokens;
    if (last) {
      next = job.sampled;
      nextLogprob = std::move(job.logprob);
    }
  }
  result.promptMs = MsSince(tPrompt);

  // Generate: each step decodes the token sampled last and samples the one after it.
  const auto tGen = Clock::now();
  TextStream stream(req.stop);
  StreamPiece pending;
  auto flushPiece = [&](std::string text, llama_token tok) {
    pending.tokens.push_back(tok);
    if (req.logprobs >= 0) pending.logprobs.push_back(result.logprobs.back());
    if (text.empty()) return;
    pending.text = std::move(text);
    result.text += pending.text;
    if (chat) pending.deltas = chat->Push(pending.text);
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
    if (s.nCells >= nCtx) {
      result.stopReason = "contextFull";
      break;
    }
    const llama_token tok = next;
    result.tokens.push_back(tok);
    if (req.logprobs >= 0) result.logprobs.push_back(std::move(nextLogprob));
    if (llama_vocab_is_eog(vocab, tok)) {
      result.stopReason = "eos";
      break;
    }
    // Special tokens the chat parser needs to see (<tool_call>, <think>) come out as their text.
    const bool special = preserved.count(tok) > 0;
    int32_t len = llama_token_to_piece(vocab, tok, buf, sizeof(buf), 0, special);
    std::string piece = len >= 0 ? std::string(buf, static_cast<size_t>(len)) : std::string();
    if (len < 0) {
      piece.resize(static_cast<size_t>(-len));
      llama_token_to_piece(vocab, tok, piece.data(), -len, 0, special);
    }
    flushPiece(stream.Push(piece), tok);
    if (stream.stopped()) {
      result.stopReason = "stop";
      break;
    }
    if (n + 1 == req.maxTokens) break;

    DecodeJob job;
    job.seq = seq;
    job.abort = &abort;
    job.tokens = &tok;
    job.nTokens = 1;
    job.pos = s.nPast;
    job.logitsLast = true;
    job.sampler = smpl;
    job.logprobs = req.logprobs;
    job.generationStep = true;
    submit(job);
    if (job.rc != 0) {
      ComputeThread::Run([&] { llama_memory_seq_rm(mem, seq, s.nPast, -1); });
      if (job.rc == 2 || abort.load()) {
        result.stopReason = "aborted";
        break;
      }
      CheckDecode(job.rc, abort);
    }
    s.cached.push_back(CacheItem{tok, {}, 1});
    s.nPast++;
    s.nCells++;
    next = job.sampled;
    nextLogprob = std::move(job.logprob);
  }
  if (!stream.stopped()) {
    std::string rest = stream.Flush();
    if (!rest.empty() || !pending.tokens.empty()) {
      pending.text = rest;
      result.text += rest;
      if (!rest.empty()) {
        if (chat) pending.deltas = chat->Push(rest);
        emit(std::move(pending));
      }
    }
  }
  if (chat) result.message = chat->Finish(result.stopReason == "eos" || result.stopReason == "stop");
  result.generatedTokens = static_cast<int32_t>(result.tokens.size());
  result.generateMs = MsSince(tGen);
  return result;
}

}  // namespace llava
