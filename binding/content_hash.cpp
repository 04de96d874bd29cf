#include "content_hash.h"

#define XXH_INLINE_ALL
#include "hash/xxhash/xxhash.h"

namespace llava {

struct ContentHash::State {
  XXH64_state_t xxh;
};

ContentHash::ContentHash() : state_(std::make_unique<State>()) { XXH64_reset(&state_->xxh, 0); }
ContentHash::~ContentHash() = default;

void ContentHash::Update(const void* data, size_t size) { XXH64_update(&state_->xxh, data, size); }

uint64_t ContentHash::Digest() const { return XXH64_digest(&state_->xxh); }

}  // namespace llava
