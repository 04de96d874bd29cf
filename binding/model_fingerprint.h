#pragma once
// A fingerprint of a GGUF file's content, cheap enough for multi-gigabyte models: its whole
// header (metadata, vocabulary, tensor names, types and shapes) plus bytes sampled from the start
// and the middle of every tensor's data. Two files of the same shape with other weights (a
// fine-tune, another seed) differ; the same file copied or renamed does not.
#include <cstdint>
#include <string>

namespace llava {

// Throws NativeError(ERR_FILE_NOT_FOUND) when the file cannot be read as GGUF.
uint64_t FileFingerprint(const std::string& path);

}  // namespace llava
