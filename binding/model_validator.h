#pragma once
// Pre-flight checks of model files, run on the worker thread before a file reaches llama.cpp's
// loaders: llama.cpp aborts (GGML_ASSERT) or dereferences null on several malformed files, and
// an abort in an addon kills the whole process. A failure throws a NativeError naming the file,
// the key or tensor, and what was expected.
#include <cstdint>
#include <string>

namespace llava {

struct ModelFacts {
  std::string architecture;
  uint32_t embeddingLength = 0;
  uint32_t blockCount = 0;
};

// Throws ERR_MODEL_LOAD.
ModelFacts ValidateTextModel(const std::string& path);
// Throws ERR_MMPROJ_LOAD, or ERR_MMPROJ_MISMATCH when the projector cannot feed the text model.
void ValidateProjector(const std::string& path, const ModelFacts& text);

}  // namespace llava
