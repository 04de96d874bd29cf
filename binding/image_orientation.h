#pragma once
// EXIF orientation: phones store a portrait photo as landscape pixels plus a tag that says how to
// turn them. Read from JPEG (APP1 "Exif") and PNG (eXIf) files, and applied to the decoded pixels,
// so that the vision encoder sees the picture the way every viewer shows it.
#include <cstddef>
#include <cstdint>

#include "image_input.h"

namespace llava {

// The orientation tag (1-8) of an encoded JPEG or PNG; 1 (as stored) when there is none or it is
// malformed. Reads only within [bytes, bytes + size).
int ExifOrientation(const unsigned char* bytes, size_t size);

// Whether an orientation turns the picture a quarter (its width and height swap).
inline bool SwapsSides(int orientation) { return orientation >= 5 && orientation <= 8; }

// Applies an orientation (2-8) to the pixels; 1 and anything else leave them as they are.
void Orient(RgbImage& image, int orientation);

}  // namespace llava
