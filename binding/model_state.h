#pragma once
// The loaded weights: the text model and, optionally, its projector. Shared (shared_ptr) by the
// JS Model object, every session, every image embedding and every worker using them, so memory
// is released only after the last user is gone, whatever order JS drops them in.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "llama.h"
#include "mtmd.h"

namespace llava {

struct EmbeddingState;

struct ModelState {
  llama_model* model = nullptr;
  mtmd_context* vision = nullptr;
  std::string modelPath;
  std::string mmprojPath;
  std::string projectorType;
  int threads = 0;
  // mtmd's encoder keeps per-context buffers: one encode at a time per model.
  std::mutex visionMutex;
  std::atomic<uint64_t> encodeCount{0};
  // Tokens one image at the projector's native size takes, and whether they must be decoded in
  // one micro-batch (non-causal attention over the image, as Gemma 3 needs).
  int imageTokens = 0;
  bool imageNonCausal = false;
  // Images encoded by this model and still referenced somewhere, by content id: the same pixels
  // are never encoded twice while an embedding of them is alive.
  std::mutex embeddingsMutex;
  std::unordered_map<std::string, std::weak_ptr<EmbeddingState>> embeddings;

  const llama_vocab* vocab() const { return llama_model_get_vocab(model); }

  ~ModelState() {
    if (vision) mtmd_free(vision);
    if (model) llama_model_free(model);
  }
};

using ModelPtr = std::shared_ptr<ModelState>;

}  // namespace llava
