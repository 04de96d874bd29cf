#include "image_input.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "errors.h"
#include "image_orientation.h"
#include "media_file.h"

// A private copy of stb_image, compiled here with two changes from the one inside libmtmd:
// buffers come zeroed (a decoder that stops early on a damaged file leaves black, never stale
// heap memory), and the input is read through callbacks that notice when the decoder asks
// for bytes past the end (a truncated file is refused instead of decoded half-way).
#include <cstdlib>
namespace {
void* ZeroedMalloc(size_t n) { return std::calloc(1, n ? n : 1); }
}  // namespace
#define STBI_MALLOC(sz) ZeroedMalloc(sz)
#define STBI_REALLOC(p, newsz) std::realloc(p, newsz)
#define STBI_FREE(p) std::free(p)
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#include "stb/stb_image.h"

namespace llava {
namespace {

constexpr uint64_t kMaxFileBytes = 256ull << 20;  // an encoded image larger than this is refused unread

void CheckDimensions(uint64_t w, uint64_t h, uint64_t maxPixels, const std::string& what) {
  if (w == 0 || h == 0) Throw("ERR_IMAGE_DECODE", what + " has a zero width or height");
  if (w * h > maxPixels) {
    Throw("ERR_IMAGE_DECODE", what + " is " + std::to_string(w) + "x" + std::to_string(h) + " pixels, more than the limit of " +
                                  std::to_string(maxPixels) + " (raise maxPixels to allow it, or downscale the image first)");
  }
}

// Feeds stb from memory and records whether it read past the end.
struct CallbackReader {
  const unsigned char* data;
  size_t size;
  size_t pos = 0;
  bool overrun = false;

  static int Read(void* user, char* out, int n) {
    auto* r = static_cast<CallbackReader*>(user);
    if (r->pos >= r->size) {
      r->overrun = true;
      return 0;
    }
    const size_t take = std::min(static_cast<size_t>(n), r->size - r->pos);
    std::memcpy(out, r->data + r->pos, take);
    r->pos += take;
    return static_cast<int>(take);
  }
  static void Skip(void* user, int n) {
    auto* r = static_cast<CallbackReader*>(user);
    if (n < 0) {
      r->pos = static_cast<size_t>(-n) > r->pos ? 0 : r->pos + n;
    } else if (r->pos + static_cast<size_t>(n) > r->size) {
      r->overrun = true;
      r->pos = r->size;
    } else {
      r->pos += static_cast<size_t>(n);
    }
  }
  static int Eof(void* user) {
    auto* r = static_cast<CallbackReader*>(user);
    return r->pos >= r->size ? 1 : 0;
  }
};

// A colour channel with straight alpha `a` laid over a background channel, rounded to nearest.
inline unsigned char OverBackground(unsigned value, unsigned a, unsigned background) {
  return static_cast<unsigned char>((value * a + background * (255u - a) + 127u) / 255u);
}

// Composing the frames before the one asked for costs a canvas each: past this many pixels in
// all, a GIF is refused rather than left to run for minutes.
constexpr uint64_t kMaxGifComposedPixels = 4ull << 30;

// Frame `index` of a GIF as browsers show it: the frames before it composed in order, each
// one's disposal applied to the area it drew. stb composes as it decodes; without a frame to go
// back to it treats "restore to previous" (3) as "restore to background" (2), and restores both to
// the picture from before that frame was drawn — right for 3; for 2 browsers clear the area to
// transparency, so that picture is cleared first. (stb's own multi-frame loader would point
// "previous" before its buffer.) Returns stb-allocated RGBA; or null, with `frames` set to how many
// the file has when it ended before that frame (else it is damaged: stb says why).
unsigned char* LoadGifFrame(CallbackReader& reader, uint32_t index, const std::string& what, int* x, int* y, uint32_t* frames) {
  stbi_io_callbacks io = {&CallbackReader::Read, &CallbackReader::Skip, &CallbackReader::Eof};
  stbi__context s;
  stbi__start_callbacks(&s, &io, &reader);
  stbi__gif g;
  std::memset(&g, 0, sizeof(g));
  unsigned char* out = nullptr;
  *frames = 0;
  for (uint32_t n = 0;; n++) {
    // stb keeps in g.background the picture before the previous frame was drawn
    if (n > 0 && ((g.eflags & 0x1C) >> 2) == 2) std::memset(g.background, 0, static_cast<size_t>(g.w) * static_cast<size_t>(g.h) * 4);
    int comp = 0;
    stbi_uc* u = stbi__gif_load_next(&s, &g, &comp, 4, nullptr);
    if (u == reinterpret_cast<stbi_uc*>(&s)) {
      *frames = n;  // the end
      break;
    }
    if (!u || reader.overrun) break;  // a damaged frame
    if (n == index) {
      const size_t bytes = static_cast<size_t>(g.w) * static_cast<size_t>(g.h) * 4;
      out = static_cast<unsigned char*>(STBI_MALLOC(bytes));
      if (out) std::memcpy(out, u, bytes);
      *x = g.w;
      *y = g.h;
      break;
    }
    if (static_cast<uint64_t>(n + 2) * static_cast<uint64_t>(g.w) * static_cast<uint64_t>(g.h) > kMaxGifComposedPixels) {
      STBI_FREE(g.out);
      STBI_FREE(g.history);
      STBI_FREE(g.background);
      Throw("ERR_IMAGE_DECODE", what + ": reaching frame " + std::to_string(index) + " would compose more than " +
                                    std::to_string(kMaxGifComposedPixels) + " pixels; choose an earlier frame");
    }
  }
  STBI_FREE(g.out);
  STBI_FREE(g.history);
  STBI_FREE(g.background);
  return out;
}

bool IsGif(const unsigned char* bytes, size_t size) { return size >= 6 && std::memcmp(bytes, "GIF8", 4) == 0; }

RgbImage DecodeEncoded(const unsigned char* bytes, size_t size, const ImageInput& in, const std::string& what) {
  const uint64_t maxPixels = in.maxPixels;
  if (size == 0) Throw("ERR_IMAGE_DECODE", what + " is empty");
  if (size > static_cast<size_t>(std::numeric_limits<int>::max())) Throw("ERR_IMAGE_DECODE", what + " is too large");
  int w = 0, h = 0, comp = 0;
  const int len = static_cast<int>(size);
  // Read the header first: a 65535x65535 image must be refused before stb allocates for it.
  if (!stbi_info_from_memory(bytes, len, &w, &h, &comp)) {
    const char* reason = stbi_failure_reason();
    Throw("ERR_IMAGE_DECODE", what + " is not a decodable image (JPEG, PNG, BMP, GIF, TGA, PSD, HDR, PIC or PNM)" +
                                  std::string(reason ? std::string(": ") + reason : std::string()));
  }
  CheckDimensions(static_cast<uint64_t>(w), static_cast<uint64_t>(h), maxPixels, what);
  int nx = 0, ny = 0, nc = 0;
  CallbackReader reader{bytes, size};
  const stbi_io_callbacks io = {&CallbackReader::Read, &CallbackReader::Skip, &CallbackReader::Eof};
  // Transparent pixels keep whatever colour was under them; asked for RGB, stb would show it.
  // With alpha, they are laid over the background instead (white: as a viewer on a white page shows them).
  bool alpha = comp == 2 || comp == 4;
  unsigned char* pixels = nullptr;
  if (in.frame == 0) {
    pixels = stbi_load_from_callbacks(&io, &reader, &nx, &ny, &nc, alpha ? 4 : 3);
  } else if (!IsGif(bytes, size)) {
    Throw("ERR_IMAGE_DECODE", what + " has one frame: frame " + std::to_string(in.frame) + " does not exist (frames count from 0)");
  } else {
    uint32_t frames = 0;
    alpha = true;
    pixels = LoadGifFrame(reader, in.frame, what, &nx, &ny, &frames);
    if (!pixels && frames > 0) {
      Throw("ERR_IMAGE_DECODE", what + " has " + std::to_string(frames) + " frame" + (frames == 1 ? "" : "s") + ": frame " +
                                    std::to_string(in.frame) + " does not exist (frames count from 0)");
    }
  }
  if (!pixels) {
    const char* reason = stbi_failure_reason();
    Throw("ERR_IMAGE_DECODE", what + " could not be decoded" + std::string(reason ? std::string(": ") + reason : std::string()));
  }
  if (reader.overrun) {
    stbi_image_free(pixels);
    Throw("ERR_IMAGE_DECODE", what + " is truncated: its image data ends before the picture is complete");
  }
  RgbImage out;
  out.width = static_cast<uint32_t>(nx);
  out.height = static_cast<uint32_t>(ny);
  const size_t n = static_cast<size_t>(nx) * static_cast<size_t>(ny);
  if (alpha) {
    out.rgb.resize(n * 3);
    for (size_t i = 0; i < n; i++) {
      const unsigned a = pixels[i * 4 + 3];
      for (size_t c = 0; c < 3; c++) out.rgb[i * 3 + c] = OverBackground(pixels[i * 4 + c], a, in.background[c]);
    }
  } else {
    out.rgb.assign(pixels, pixels + n * 3);
  }
  stbi_image_free(pixels);
  if (in.orient) Orient(out, ExifOrientation(bytes, size));
  return out;
}

RgbImage FromPixels(const ImageInput& in) {
  CheckDimensions(in.width, in.height, in.maxPixels, "the raw image");
  const size_t channels = in.format == "rgb" ? 3 : (in.format == "rgba" || in.format == "bgra") ? 4 : 0;
  if (channels == 0) Throw("ERR_INVALID_ARGUMENT", "pixel format must be 'rgb', 'rgba' or 'bgra', got '" + in.format + "'");
  const size_t n = static_cast<size_t>(in.width) * in.height;
  if (in.size != n * channels) {
    Throw("ERR_INVALID_ARGUMENT", "raw " + in.format + " pixels for " + std::to_string(in.width) + "x" + std::to_string(in.height) +
                                      " need " + std::to_string(n * channels) + " bytes, got " + std::to_string(in.size));
  }
  RgbImage out;
  out.width = in.width;
  out.height = in.height;
  out.rgb.resize(n * 3);
  const unsigned char* src = in.bytes;
  unsigned char* dst = out.rgb.data();
  if (channels == 3) {
    std::copy(src, src + n * 3, dst);
  } else if (in.format == "rgba" && in.composite) {
    // the blend DecodeEncoded uses, so a picture decoded elsewhere (sharp) gets the same pixels
    for (size_t i = 0; i < n; i++) {
      const unsigned a = src[4 * i + 3];
      for (size_t c = 0; c < 3; c++) dst[3 * i + c] = OverBackground(src[4 * i + c], a, in.background[c]);
    }
  } else if (in.format == "rgba") {
    for (size_t i = 0; i < n; i++) {
      dst[3 * i] = src[4 * i];
      dst[3 * i + 1] = src[4 * i + 1];
      dst[3 * i + 2] = src[4 * i + 2];
    }
  } else {  // bgra (Electron's nativeImage.toBitmap())
    for (size_t i = 0; i < n; i++) {
      dst[3 * i] = src[4 * i + 2];
      dst[3 * i + 1] = src[4 * i + 1];
      dst[3 * i + 2] = src[4 * i];
    }
  }
  return out;
}

}  // namespace

RgbImage DecodeImage(ImageInput& input) {
  switch (input.kind) {
    case ImageInput::Kind::Path: {
      std::vector<unsigned char> bytes = ReadMediaFile(input.path, "image", "ERR_IMAGE_DECODE");
      return DecodeEncoded(bytes.data(), bytes.size(), input, "the image file " + input.path);
    }
    case ImageInput::Kind::Bytes:
      return DecodeEncoded(input.bytes, input.size, input, "the image buffer");
    case ImageInput::Kind::Pixels:
      return FromPixels(input);
    case ImageInput::Kind::Size:
      Throw("ERR_INVALID_ARGUMENT", "an image measured from its header alone cannot be encoded");
  }
  Throw("ERR_INVALID_ARGUMENT", "unknown image input kind");
}

void ImageSize(ImageInput& input, uint32_t& width, uint32_t& height) {
  if (input.kind == ImageInput::Kind::Pixels || input.kind == ImageInput::Kind::Size) {
    CheckDimensions(input.width, input.height, input.maxPixels, input.kind == ImageInput::Kind::Size ? "the image" : "the raw image");
    width = input.width;
    height = input.height;
    return;
  }
  std::vector<unsigned char> fileBytes;
  const unsigned char* bytes = input.bytes;
  size_t size = input.size;
  std::string what = "the image buffer";
  if (input.kind == ImageInput::Kind::Path) {
    fileBytes = ReadMediaFile(input.path, "image", "ERR_IMAGE_DECODE");
    bytes = fileBytes.data();
    size = fileBytes.size();
    what = "the image file " + input.path;
  }
  if (size == 0) Throw("ERR_IMAGE_DECODE", what + " is empty");
  int w = 0, h = 0, comp = 0;
  if (size > static_cast<size_t>(std::numeric_limits<int>::max()) || !stbi_info_from_memory(bytes, static_cast<int>(size), &w, &h, &comp)) {
    Throw("ERR_IMAGE_DECODE", what + " is not a decodable image");
  }
  CheckDimensions(static_cast<uint64_t>(w), static_cast<uint64_t>(h), input.maxPixels, what);
  const bool swap = input.orient && SwapsSides(ExifOrientation(bytes, size));
  width = static_cast<uint32_t>(swap ? h : w);
  height = static_cast<uint32_t>(swap ? w : h);
}

std::string ContentId(const RgbImage& image) {
  const uint32_t dims[2] = {image.width, image.height};
  return MediaContentId(dims, sizeof(dims), image.rgb.data(), image.rgb.size());
}

}  // namespace llava
