#include "media_file.h"

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "errors.h"

namespace llava {
namespace {

constexpr uint64_t kMaxFileBytes = 256ull << 20;  // a media file larger than this is refused unread

uint64_t Fnv1a(uint64_t h, const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

std::vector<unsigned char> ReadMediaFile(const std::string& path, const char* noun, const char* tooLargeCode) {
  namespace fs = std::filesystem;
  const std::string file = std::string("the ") + noun + " file " + path;
  std::error_code ec;
  if (!fs::exists(path, ec)) Throw("ERR_FILE_NOT_FOUND", file + " does not exist");
  if (!fs::is_regular_file(path, ec)) Throw("ERR_FILE_NOT_FOUND", std::string("the ") + noun + " path " + path + " is not a regular file");
  const uint64_t size = fs::file_size(path, ec);
  if (ec) Throw("ERR_FILE_NOT_FOUND", file + " cannot be read: " + ec.message());
  if (size > kMaxFileBytes) Throw(tooLargeCode, file + " is larger than 256 MiB");
  std::vector<unsigned char> out(static_cast<size_t>(size));
  std::ifstream f(path, std::ios::binary);
  if (!f || !f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(size))) Throw("ERR_FILE_NOT_FOUND", file + " cannot be read");
  return out;
}

std::string MediaContentId(const void* head, size_t headBytes, const void* data, size_t dataBytes) {
  auto* h = static_cast<const unsigned char*>(head);
  auto* d = static_cast<const unsigned char*>(data);
  const uint64_t a = Fnv1a(Fnv1a(0xcbf29ce484222325ull, h, headBytes), d, dataBytes);
  const uint64_t b = Fnv1a(Fnv1a(0x84222325cbf29ce4ull, h, headBytes), d, dataBytes);
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  return buf;
}

}  // namespace llava
