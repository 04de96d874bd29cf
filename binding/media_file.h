#pragma once
// What the image and sound inputs share: reading a media file whole, with the same checks and
// messages, and the content id that keys reuse of encoded media.
#include <cstddef>
#include <string>
#include <vector>

namespace llava {

// The file's bytes. `noun` names it in messages ("image", "audio"); a missing path or one that
// is not a regular file is ERR_FILE_NOT_FOUND, one larger than 256 MiB is `tooLargeCode`.
std::vector<unsigned char> ReadMediaFile(const std::string& path, const char* noun, const char* tooLargeCode);

// Two differently seeded 64-bit FNV-1a hashes over `head` then `data`, as 32 hex digits: equal
// content gives equal ids.
std::string MediaContentId(const void* head, size_t headBytes, const void* data, size_t dataBytes);

}  // namespace llava
