#pragma once
// Turns what JS hands over (a file path, encoded bytes, or raw pixels) into RGB pixels, with
// every size checked before anything is allocated or decoded.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llava {

struct ImageInput {
  // Size: only the dimensions of an image decoded elsewhere (lib/media), read from its header for
  // countTokens; such an input has no pixels and cannot be encoded.
  enum class Kind { Path, Bytes, Pixels, Size } kind = Kind::Bytes;
  std::string path;
  // Encoded bytes or pixels: `owned`, or native memory that `keep` holds (image_bytes.h).
  std::vector<unsigned char> owned;
  const unsigned char* bytes = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> keep;
  uint32_t width = 0, height = 0;
  std::string format;  // pixels: rgb | rgba | bgra
  uint64_t maxPixels = 0;
  bool orient = true;  // encoded files: apply their EXIF orientation (image_orientation.h)
  unsigned char background[3] = {255, 255, 255};  // encoded files with alpha are laid over this colour
  bool composite = false;  // rgba pixels decoded from a file: laid over `background` like encoded files
  uint32_t frame = 0;  // encoded files: which frame of an animated GIF (others have one)
};

struct RgbImage {
  uint32_t width = 0, height = 0;
  std::vector<unsigned char> rgb;
};

// Throws NativeError(ERR_IMAGE_DECODE / ERR_FILE_NOT_FOUND / ERR_INVALID_ARGUMENT).
RgbImage DecodeImage(ImageInput& input);

// The image's size from its header alone, with the same checks as DecodeImage.
void ImageSize(ImageInput& input, uint32_t& width, uint32_t& height);

// A content id (two differently seeded 64-bit FNV-1a hashes over size and pixels, as hex):
// identical pixels give identical ids, which keys reuse of encoded images.
std::string ContentId(const RgbImage& image);

}  // namespace llava
