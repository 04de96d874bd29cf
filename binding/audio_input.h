#pragma once
// Turns what JS hands over (a file path, encoded bytes, or raw PCM) into mono float samples at
// the model's sample rate, with the length checked from the header before anything is decoded.
// WAV, MP3 and FLAC are read by miniaudio, the decoder (and resampler) mtmd's own tools use;
// raw PCM goes through the same decoder as a float WAV, so the same sound given either way gives
// the same samples.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llava {

struct AudioInput {
  enum class Kind { Path, Bytes, Pcm } kind = Kind::Bytes;
  std::string path;
  // Encoded bytes, or interleaved float32 samples (Pcm): `owned`, or native memory `keep` holds.
  std::vector<unsigned char> owned;
  const unsigned char* bytes = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> keep;
  uint32_t sampleRate = 0;  // Pcm only
  uint32_t channels = 1;    // Pcm only
  double maxSeconds = 600;  // longer sound is refused from its header
};

struct PcmAudio {
  std::vector<float> samples;  // mono
  uint32_t sampleRate = 0;
};

// Whether these first bytes are a WAV, MP3 or FLAC file (mtmd-helper's test, which decides
// between audio and image for its own tools).
bool LooksLikeAudio(const unsigned char* bytes, size_t size);

// Throws NativeError(ERR_AUDIO_DECODE / ERR_FILE_NOT_FOUND).
PcmAudio DecodeAudio(AudioInput& input, uint32_t rate);

// The samples the sound has at `rate`, from its header alone (MP3: from its frame headers), with
// the same checks as DecodeAudio.
uint64_t AudioLength(AudioInput& input, uint32_t rate);

// A content id over the rate and the samples: the same sound gives the same id whatever the
// container.
std::string AudioContentId(const PcmAudio& audio);

}  // namespace llava
