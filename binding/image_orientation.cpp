#include "image_orientation.h"

#include <cstring>
#include <utility>
#include <vector>

namespace llava {
namespace {

uint16_t Read16(const unsigned char* p, bool little) { return little ? static_cast<uint16_t>(p[0] | p[1] << 8) : static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Read32(const unsigned char* p, bool little) {
  return little ? static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24
                : static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | static_cast<uint32_t>(p[3]);
}

// The orientation tag (0x0112) of IFD0 in a TIFF structure (EXIF's payload).
int FromTiff(const unsigned char* t, size_t size) {
  if (size < 8) return 1;
  bool little;
  if (t[0] == 'I' && t[1] == 'I') little = true;
  else if (t[0] == 'M' && t[1] == 'M') little = false;
  else return 1;
  if (Read16(t + 2, little) != 42) return 1;
  const uint32_t ifd = Read32(t + 4, little);
  if (ifd > size || size - ifd < 2) return 1;
  const uint16_t entries = Read16(t + ifd, little);
  for (uint32_t i = 0; i < entries; i++) {
    const size_t at = static_cast<size_t>(ifd) + 2 + static_cast<size_t>(i) * 12;
    if (at + 12 > size) return 1;
    if (Read16(t + at, little) != 0x0112) continue;
    const uint16_t type = Read16(t + at + 2, little);
    const uint32_t count = Read32(t + at + 4, little);
    if (type != 3 || count != 1) return 1;  // SHORT, one value, stored in the entry itself
    const uint16_t v = Read16(t + at + 8, little);
    return v >= 1 && v <= 8 ? v : 1;
  }
  return 1;
}

int FromJpeg(const unsigned char* b, size_t size) {
  size_t pos = 2;
  while (pos + 4 <= size) {
    if (b[pos] != 0xFF) return 1;
    const unsigned char marker = b[pos + 1];
    if (marker == 0xFF) {  // fill byte
      pos++;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) return 1;  // end of image, start of scan: no EXIF before the pixels
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      pos += 2;
      continue;
    }
    const size_t len = static_cast<size_t>(b[pos + 2]) << 8 | b[pos + 3];
    if (len < 2 || pos + 2 + len > size) return 1;
    const unsigned char* seg = b + pos + 4;
    const size_t segLen = len - 2;
    if (marker == 0xE1 && segLen >= 6 && std::memcmp(seg, "Exif\0\0", 6) == 0) return FromTiff(seg + 6, segLen - 6);
    pos += 2 + len;
  }
  return 1;
}

int FromPng(const unsigned char* b, size_t size) {
  size_t pos = 8;
  while (pos + 12 <= size) {
    const uint32_t len = Read32(b + pos, false);
    if (len > size - pos - 12) return 1;
    const unsigned char* type = b + pos + 4;
    if (std::memcmp(type, "eXIf", 4) == 0) return FromTiff(b + pos + 8, len);
    if (std::memcmp(type, "IDAT", 4) == 0 || std::memcmp(type, "IEND", 4) == 0) return 1;
    pos += 12 + static_cast<size_t>(len);
  }
  return 1;
}

}  // namespace

int ExifOrientation(const unsigned char* bytes, size_t size) {
  if (bytes == nullptr || size < 8) return 1;
  if (bytes[0] == 0xFF && bytes[1] == 0xD8) return FromJpeg(bytes, size);
  static const unsigned char kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (std::memcmp(bytes, kPng, 8) == 0) return FromPng(bytes, size);
  return 1;
}

void Orient(RgbImage& image, int orientation) {
  if (orientation < 2 || orientation > 8) return;
  const size_t w = image.width, h = image.height;
  const bool swap = SwapsSides(orientation);
  const size_t ow = swap ? h : w, oh = swap ? w : h;
  std::vector<unsigned char> out(image.rgb.size());
  for (size_t y = 0; y < oh; y++) {
    for (size_t x = 0; x < ow; x++) {
      // The stored pixel that lands at (x, y) of the shown picture (EXIF 2.3, tag 274).
      size_t sx = 0, sy = 0;
      switch (orientation) {
        case 2: sx = w - 1 - x; sy = y; break;          // mirrored left-right
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;  // turned 180°
        case 4: sx = x; sy = h - 1 - y; break;          // mirrored top-bottom
        case 5: sx = y; sy = x; break;                  // transposed
        case 6: sx = y; sy = h - 1 - x; break;          // turned 90° clockwise to show
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;  // transversed
        case 8: sx = w - 1 - y; sy = x; break;          // turned 90° counter-clockwise to show
      }
      std::memcpy(&out[(y * ow + x) * 3], &image.rgb[(sy * w + sx) * 3], 3);
    }
  }
  image.rgb = std::move(out);
  image.width = static_cast<uint32_t>(ow);
  image.height = static_cast<uint32_t>(oh);
}

}  // namespace llava
