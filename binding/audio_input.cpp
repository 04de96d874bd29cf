#include "audio_input.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "errors.h"
#include "media_file.h"

// A private copy of miniaudio's decoders, compiled with the configuration mtmd-helper.cpp uses
// (which keeps its own copy static): the same WAV/MP3/FLAC decoders, channel mixer and resampler
// as llama.cpp's tools, so a file gives the samples llama-mtmd-cli gives.
#define MINIAUDIO_IMPLEMENTATION
#define MA_NO_ENCODING
#define MA_NO_DEVICE_IO
#define MA_NO_RESOURCE_MANAGER
#define MA_NO_NODE_GRAPH
#define MA_NO_ENGINE
#define MA_NO_GENERATION
#define MA_API static
// miniaudio's one global that MA_API does not make static: renamed, or it clashes with mtmd's copy
#define ma_atomic_global_lock llava_ma_atomic_global_lock
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include "miniaudio/miniaudio.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace llava {
namespace {

constexpr uint64_t kMaxRawBytes = 1ull << 30;  // raw PCM larger than this is refused
constexpr uint32_t kMinSourceRate = 1000, kMaxSourceRate = 384000;
constexpr uint32_t kMaxChannels = 32;
constexpr uint64_t kReadFrames = 16384;

void PutU32(std::vector<unsigned char>& b, uint32_t v) {
  for (int i = 0; i < 4; i++) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
void PutU16(std::vector<unsigned char>& b, uint16_t v) {
  b.push_back(static_cast<unsigned char>(v));
  b.push_back(static_cast<unsigned char>(v >> 8));
}

// Raw interleaved float samples as a WAV file (IEEE float), for the decoder.
std::vector<unsigned char> FloatWav(const AudioInput& in) {
  if (in.sampleRate < kMinSourceRate || in.sampleRate > kMaxSourceRate) {
    Throw("ERR_AUDIO_DECODE", "the raw audio's sample rate " + std::to_string(in.sampleRate) + " Hz is outside " + std::to_string(kMinSourceRate) +
                                  "-" + std::to_string(kMaxSourceRate) + " Hz");
  }
  if (in.channels < 1 || in.channels > kMaxChannels) {
    Throw("ERR_AUDIO_DECODE", "the raw audio has " + std::to_string(in.channels) + " channels; 1 to " + std::to_string(kMaxChannels) + " are accepted");
  }
  const uint64_t frameBytes = 4ull * in.channels;
  if (in.size % frameBytes != 0) Throw("ERR_AUDIO_DECODE", "the raw audio's sample count is not a multiple of its channel count");
  if (in.size > kMaxRawBytes) Throw("ERR_AUDIO_DECODE", "the raw audio is larger than 1 GiB");
  const float* f = reinterpret_cast<const float*>(in.bytes);
  for (size_t i = 0; i < in.size / 4; i++) {
    if (!std::isfinite(f[i])) Throw("ERR_AUDIO_DECODE", "the raw audio holds a sample that is not a finite number (at index " + std::to_string(i) + ")");
  }
  std::vector<unsigned char> w;
  w.reserve(in.size + 44);
  w.insert(w.end(), {'R', 'I', 'F', 'F'});
  PutU32(w, static_cast<uint32_t>(36 + in.size));
  w.insert(w.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  PutU32(w, 16);
  PutU16(w, 3);  // WAVE_FORMAT_IEEE_FLOAT
  PutU16(w, static_cast<uint16_t>(in.channels));
  PutU32(w, in.sampleRate);
  PutU32(w, static_cast<uint32_t>(in.sampleRate * frameBytes));
  PutU16(w, static_cast<uint16_t>(frameBytes));
  PutU16(w, 32);
  w.insert(w.end(), {'d', 'a', 't', 'a'});
  PutU32(w, static_cast<uint32_t>(in.size));
  w.insert(w.end(), in.bytes, in.bytes + in.size);
  return w;
}

ma_encoding_format Format(const unsigned char* b, size_t n) {
  if (n >= 12 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WAVE", 4) == 0) return ma_encoding_format_wav;
  if (n >= 4 && std::memcmp(b, "fLaC", 4) == 0) return ma_encoding_format_flac;
  if (n >= 3 && (std::memcmp(b, "ID3", 3) == 0 || (b[0] == 0xFF && (b[1] & 0xE0) == 0xE0))) return ma_encoding_format_mp3;
  return ma_encoding_format_unknown;
}

uint32_t U32At(const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }

// A WAV whose data chunk claims more bytes than the file holds is truncated (the decoder would
// play what is there and stop). 0xFFFFFFFF is what streaming writers put when they cannot know.
void CheckWavChunks(const unsigned char* b, size_t n, const std::string& what) {
  size_t at = 12;
  while (at + 8 <= n) {
    const uint32_t size = U32At(b + at + 4);
    if (std::memcmp(b + at, "data", 4) == 0) {
      const size_t left = n - (at + 8);
      if (size != 0xFFFFFFFFu && size > left) {
        Throw("ERR_AUDIO_DECODE", what + " is truncated: its data chunk claims " + std::to_string(size) + " bytes but the file holds " + std::to_string(left));
      }
      return;
    }
    at += 8 + static_cast<size_t>(size) + (size & 1);
  }
}

// The encoded bytes of an input (a file read whole, or the bytes given), and what to call them.
struct Encoded {
  std::vector<unsigned char> storage;
  const unsigned char* data = nullptr;
  size_t size = 0;
  std::string what;
};

Encoded EncodedOf(const AudioInput& in) {
  Encoded e;
  switch (in.kind) {
    case AudioInput::Kind::Path:
      e.storage = ReadMediaFile(in.path, "audio", "ERR_AUDIO_DECODE");
      e.what = "the audio file " + in.path;
      break;
    case AudioInput::Kind::Bytes:
      e.data = in.bytes;
      e.size = in.size;
      e.what = "the audio buffer";
      return e;
    case AudioInput::Kind::Pcm:
      e.storage = FloatWav(in);
      e.what = "the raw audio";
      break;
  }
  e.data = e.storage.data();
  e.size = e.storage.size();
  return e;
}

// An open decoder that gives mono float samples at `rate`, after the checks every input gets.
class Decoder {
 public:
  Decoder(const Encoded& e, uint32_t rate, double maxSeconds) : what_(e.what) {
    if (e.size == 0) Throw("ERR_AUDIO_DECODE", what_ + " is empty");
    ma_decoder_config config = ma_decoder_config_init(ma_format_f32, 1, rate);
    config.encodingFormat = Format(e.data, e.size);
    if (config.encodingFormat == ma_encoding_format_unknown) Throw("ERR_AUDIO_DECODE", what_ + " is not a WAV, MP3 or FLAC file");
    if (config.encodingFormat == ma_encoding_format_wav) CheckWavChunks(e.data, e.size, what_);
    if (ma_decoder_init_memory(e.data, e.size, &config, &dec_) != MA_SUCCESS) Throw("ERR_AUDIO_DECODE", what_ + " is not a decodable WAV, MP3 or FLAC file");
    open_ = true;
    try {
      Check(rate, maxSeconds);
    } catch (...) {
      ma_decoder_uninit(&dec_);  // a constructor that throws runs no destructor
      open_ = false;
      throw;
    }
  }

  ~Decoder() {
    if (open_) ma_decoder_uninit(&dec_);
  }
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  uint64_t length() const { return length_; }

  // Reads to the end, never past the limit, whatever the header claimed.
  std::vector<float> ReadAll(uint32_t rate, double maxSeconds) {
    std::vector<float> out;
    out.reserve(static_cast<size_t>(std::min<uint64_t>(length_, limit_)));
    std::vector<float> buf(kReadFrames);
    for (;;) {
      ma_uint64 got = 0;
      const ma_result r = ma_decoder_read_pcm_frames(&dec_, buf.data(), kReadFrames, &got);
      // an error mid-stream is not the end of the sound: a file with no length in its header
      // would otherwise be accepted cut short
      if (r != MA_SUCCESS && r != MA_AT_END) Throw("ERR_AUDIO_DECODE", what_ + " could not be decoded (miniaudio error " + std::to_string(static_cast<int>(r)) + ")");
      out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
      if (out.size() > limit_) TooLong(out.size(), rate, maxSeconds);
      if (r == MA_AT_END || got < kReadFrames) break;
    }
    // A header that promises more than the data holds: a truncated file.
    if (length_ > 0 && out.size() + 64 < length_) {
      Throw("ERR_AUDIO_DECODE", what_ + " is truncated: its header promises " + std::to_string(length_) + " samples but it holds " + std::to_string(out.size()));
    }
    for (float v : out) {
      if (!std::isfinite(v)) Throw("ERR_AUDIO_DECODE", what_ + " decodes to samples that are not finite numbers");
    }
    return out;
  }

 private:
  // The source's rate and channels, and its length against the limit.
  void Check(uint32_t rate, double maxSeconds) {
    ma_format format = ma_format_unknown;
    ma_uint32 channels = 0, sourceRate = 0;
    if (ma_data_source_get_data_format(dec_.pBackend, &format, &channels, &sourceRate, nullptr, 0) != MA_SUCCESS) {
      Throw("ERR_AUDIO_DECODE", what_ + " has an unreadable format");
    }
    if (sourceRate < kMinSourceRate || sourceRate > kMaxSourceRate) {
      Throw("ERR_AUDIO_DECODE", what_ + " claims a sample rate of " + std::to_string(sourceRate) + " Hz, outside " + std::to_string(kMinSourceRate) + "-" +
                                    std::to_string(kMaxSourceRate) + " Hz");
    }
    if (channels < 1 || channels > kMaxChannels) {
      Throw("ERR_AUDIO_DECODE", what_ + " claims " + std::to_string(channels) + " channels; 1 to " + std::to_string(kMaxChannels) + " are accepted");
    }
    limit_ = static_cast<uint64_t>(std::floor(maxSeconds * rate));
    ma_uint64 frames = 0;
    if (ma_decoder_get_length_in_pcm_frames(&dec_, &frames) == MA_SUCCESS) length_ = frames;
    if (length_ > limit_) TooLong(length_, rate, maxSeconds);
  }

  [[noreturn]] void TooLong(uint64_t samples, uint32_t rate, double maxSeconds) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.1f s, more than the limit of %g s", static_cast<double>(samples) / rate, maxSeconds);
    Throw("ERR_AUDIO_DECODE", what_ + " is " + buf + " (raise maxAudioSeconds to allow it, or cut the sound first)");
  }

  std::string what_;
  ma_decoder dec_{};
  bool open_ = false;
  uint64_t length_ = 0;
  uint64_t limit_ = 0;
};

// mtmd's preprocessors need whole frames of sound: one sample makes it assert, LFM2-Audio's
// asserts on fewer than two 10 ms hops, Parakeet's gives NaN embeddings on none.
void CheckLength(uint64_t samples, uint32_t rate, const std::string& what) {
  const uint64_t least = rate / 10;
  if (samples == 0) Throw("ERR_AUDIO_DECODE", what + " holds no sound");
  if (samples < least) {
    Throw("ERR_AUDIO_DECODE", what + " is " + std::to_string(samples * 1000 / rate) + " ms long; at least 100 ms of sound is needed");
  }
}

}  // namespace

bool LooksLikeAudio(const unsigned char* bytes, size_t size) { return Format(bytes, size) != ma_encoding_format_unknown; }

PcmAudio DecodeAudio(AudioInput& input, uint32_t rate) {
  Encoded e = EncodedOf(input);
  Decoder d(e, rate, input.maxSeconds);
  PcmAudio out;
  out.sampleRate = rate;
  out.samples = d.ReadAll(rate, input.maxSeconds);
  CheckLength(out.samples.size(), rate, e.what);
  return out;
}

uint64_t AudioLength(AudioInput& input, uint32_t rate) {
  Encoded e = EncodedOf(input);
  Decoder d(e, rate, input.maxSeconds);
  uint64_t n = d.length();
  if (n == 0) n = d.ReadAll(rate, input.maxSeconds).size();  // no length in the header: decoding tells
  CheckLength(n, rate, e.what);
  return n;
}

std::string AudioContentId(const PcmAudio& audio) {
  const uint32_t head[2] = {audio.sampleRate, 0x6f696475};  // "audi": never equal to an image's id
  return MediaContentId(head, sizeof(head), audio.samples.data(), audio.samples.size() * sizeof(float));
}

}  // namespace llava
