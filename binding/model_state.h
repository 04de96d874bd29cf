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

#include <vector>

#include "compute_thread.h"
#include "llama.h"
#include "mtmd.h"
#include "rpc.h"
#include "thread_governor.h"

namespace llava {

struct EmbeddingState;

struct ModelState {
  llama_model* model = nullptr;
  mtmd_context* vision = nullptr;
  std::string modelPath;
  std::string mmprojPath;
  std::string projectorType;
  int threads = 0;
  bool vocabOnly = false;  // loaded for its tokenizer and chat template only: no contexts
  // The thread count its sessions' generation steps last settled on (thread_governor.h).
  ThreadHint threadHint;
  // mtmd's encoder keeps per-context buffers: one encode at a time per model.
  std::mutex visionMutex;
  std::atomic<uint64_t> encodeCount{0};
  // Tokens one image at the projector's native size takes, and whether they must be decoded in
  // one micro-batch (non-causal attention over the image, as Gemma 3 needs).
  int imageTokens = 0;
  // The longest text one token stands for: a prompt longer than this times the context cannot
  // fit, and is refused before it is tokenized.
  size_t maxTokenBytes = 0;
  bool imageNonCausal = false;
  // Images and sounds encoded by this model and still referenced somewhere, by content id: the
  // same pixels or samples are never encoded twice while an embedding of them is alive.
  std::mutex embeddingsMutex;
  std::unordered_map<std::string, std::weak_ptr<EmbeddingState>> embeddings;

  // Chat templates parsed by llama.cpp's chat layer, by template source (chat_render.cpp).
  std::mutex chatMutex;
  std::shared_ptr<void> chatTemplates;

  const llama_vocab* vocab() const { return llama_model_get_vocab(model); }
  bool hearsAudio() const { return vision && mtmd_support_audio(vision); }
  // The rate sound is resampled to for the audio encoder (16 kHz for Whisper-based ones).
  uint32_t audioSampleRate() const {
    const int r = vision ? mtmd_get_audio_sample_rate(vision) : -1;
    return r > 0 ? static_cast<uint32_t>(r) : 16000;
  }

  // Set when layers live on RPC servers: whether their connections still hold (rpc.h).
  std::shared_ptr<RpcLink> rpc;
  // Where the weights went: each device holding layers, in llama.cpp's order, and the projector's.
  struct Placement {
    std::string device;
    std::string endpoint;  // an RPC server's, "" for a local device
    int layers = 0;
    bool output = false;  // holds the output layer
  };
  std::vector<Placement> placement;
  std::string projectorDevice;

  // Fingerprints of the two files (model_fingerprint.h), read when they are loaded: session files
  // carry them so that a state is restored only into the model that made it. 0 = no projector.
  uint64_t textFingerprint = 0;
  uint64_t projectorFingerprint = 0;

  // Freed on the compute thread, after the contexts made from it (queued there first), so that no
  // backend buffer is released while another thread submits work.
  ~ModelState() {
    mtmd_context* v = vision;
    llama_model* m = model;
    if (v || m) {
      ComputeThread::Post([v, m] {
        if (v) mtmd_free(v);
        if (m) llama_model_free(m);
      });
    }
  }
};

using ModelPtr = std::shared_ptr<ModelState>;

}  // namespace llava
