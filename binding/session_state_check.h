#pragma once
// Checks llama.cpp's saved state of one sequence before llama.cpp reads it. Restoring trusts the
// cell count (it allocates for every claimed cell before looking further) and every cell's
// position: a count of 4e9 exhausts memory, a negative position survives later removals of the
// sequence, a position at INT32_MAX breaks every later decode. What is checked here is bounded by
// what the session file's own record says the sequence holds.
#include <cstddef>
#include <cstdint>
#include <string>

#include "llama.h"

namespace llava {

constexpr uint32_t kStateMagic = 0xaf143cd8;  // llama-context.cpp's io_magic

struct KvStateBounds {
  uint32_t maxCells = 0;  // the destination sequence's context
  uint32_t minCells = 0;  // text tokens the record holds (one cell each)
  int32_t nPast = 0;      // positions the record holds: every cell's position lies below it
  size_t cellExtBytes = 0;
  // One cell per position, each position once (attention models without M-RoPE or a sliding
  // window): the first block then describes the whole sequence.
  bool exactPositions = false;
};

// Bytes of per-cell extra data llama.cpp writes for this model as far as the public API tells
// (M-RoPE's 2D position): CheckKvState also tries the other layout before refusing.
size_t KvCellExtBytes(const llama_model* model);

// Whether the model's memory is an attention KV cache whose state CheckKvState understands;
// recurrent and hybrid memories are checked by the file's checksum and identity only.
bool KvStateCheckable(const llama_model* model);

// false with `why` when the state's first KV block (the cells' count, positions and sequence
// count) does not fit `bounds`.
bool CheckKvState(const uint8_t* data, size_t size, const KvStateBounds& bounds, std::string& why);

}  // namespace llava
