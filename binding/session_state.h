#pragma once
// One conversation: a sequence of a llama_context (its part of the KV cache) over a shared model,
// and a record of what the cache holds so that a following prompt with the same prefix is not
// evaluated again.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "chat_stream.h"
#include "context_state.h"
#include "embedding.h"
#include "logprobs.h"
#include "model_state.h"
#include "sampler.h"

namespace llava {

// One position-run in the KV cache: a text token, or a whole image chunk.
struct CacheItem {
  llama_token token = -1;  // text token, or -1 for an image chunk
  std::string imageId;     // image content id + chunk index, for image chunks
  llama_pos nPos = 1;      // positions the item occupies
  bool operator==(const CacheItem& o) const { return token == o.token && imageId == o.imageId && nPos == o.nPos; }
};

struct SessionState {
  ModelPtr model;
  ContextPtr context;        // shared with the other sessions of a group
  llama_seq_id seq = 0;      // this session's sequence in the context
  std::mutex mutex;
  std::atomic<bool> busy{false};
  std::vector<CacheItem> cached;           // what this sequence of the KV cache holds, in order
  llama_pos nPast = 0;   // the next position: what the model's rotary embedding sees
  int32_t nCells = 0;    // KV cells the sequence holds: what the context's size limits. The same
                         // as nPast except with M-RoPE, where an image takes one cell per token
                         // but only max(width, height) positions.
  std::vector<EmbeddingPtr> held;          // embeddings of the images the cache holds, kept alive for reuse

  // The sequence's cells are left as they are: the next session to claim it starts by removing
  // them on the compute thread, so that dropping a session never waits for another's decode.
  ~SessionState() {
    if (context) context->ReleaseSequence(seq);
  }
};

using SessionPtr = std::shared_ptr<SessionState>;

// A prompt piece after tokenization: a text token, or one image chunk (source image + part).
struct PromptItem {
  CacheItem key;
  const mtmd_input_chunk* chunk = nullptr;  // image chunks only
  int source = -1;                          // index into the request's images
  int part = 0;                             // which of the image's chunks
  int32_t nTokens = 1;                      // tokens the item feeds the model (image chunks: many)
};

struct GenerateRequest {
  std::string prompt;
  std::vector<MediaSource> media;  // images and sounds, in marker order
  bool addSpecial = true;
  bool parseSpecial = true;
  int32_t maxTokens = 256;
  bool reuseCache = true;
  std::vector<std::string> stop;
  SamplingParams sampling;
  int32_t logprobs = -1;  // >= 0: each generated token's log-probability and this many alternatives
  std::shared_ptr<const ChatSpec> chat;  // a chat rendered by llama.cpp's chat layer; null otherwise
};

struct StreamPiece {
  std::string text;
  std::vector<llama_token> tokens;
  std::vector<TokenLogprob> logprobs;  // one per token when the request asked for them
  std::vector<ChatDelta> deltas;  // chat only: what the answer gained, by kind
};

struct GenerateResult {
  std::string text;
  std::vector<llama_token> tokens;
  std::vector<TokenLogprob> logprobs;  // one per token when the request asked for them
  std::string stopReason;  // eos | maxTokens | stop | aborted | contextFull
  int32_t promptTokens = 0;
  int32_t reusedTokens = 0;
  int32_t imageEncodes = 0;
  double imageEncodeMs = 0;
  double promptMs = 0;
  double imagePrefillMs = 0;  // part of promptMs spent decoding image tokens
  int32_t generatedTokens = 0;
  double generateMs = 0;
  int32_t sharedDecodes = 0;  // decode steps that also carried other sessions' tokens
  ChatMessage message;        // chat only: the answer parsed into reasoning, text and tool calls
};

}  // namespace llava
