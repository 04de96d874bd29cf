#pragma once
// A fast 64-bit content hash, for integrity checks and fingerprints: XXH64 with seed 0 (xxHash,
// vendored in llama.cpp's tree), which any language can recompute. Not a cryptographic hash.
#include <cstddef>
#include <cstdint>
#include <memory>

namespace llava {

class ContentHash {
 public:
  ContentHash();
  ~ContentHash();
  ContentHash(const ContentHash&) = delete;
  ContentHash& operator=(const ContentHash&) = delete;

  void Update(const void* data, size_t size);
  template <typename T>
  void Put(const T& value) {
    Update(&value, sizeof(value));
  }
  uint64_t Digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace llava
