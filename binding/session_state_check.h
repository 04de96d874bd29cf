#pragma once
// Checks llama.cpp's saved state of one sequence before llama.cpp reads it. Restoring trusts the
// cell counts (it allocates for every claimed cell before looking further) and every cell's
// position: a count of 4e9 exhausts memory, a negative position survives later removals of the
// sequence, a position at INT32_MAX breaks every later decode. What is checked here is bounded by
// what the session file's own record says the sequence holds.
//
// The state is [magic][seq id] then the model's memories in order: attention KV caches (one, or two
// for sliding-window models) as [stream count] and per stream [cell count][cells][data], then for
// recurrent and hybrid models the recurrent state as [cell count][cells][data]. KV blocks are
// walked to the byte: every cell, and every layer's key and value rows, must end exactly where the
// next block starts. The recurrent data has no layout this side can check without the model's
// internals; its cell count and positions are checked, and llama.cpp checks its row sizes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "llama.h"

namespace llava {

constexpr uint32_t kStateMagic = 0xaf143cd8;  // llama-context.cpp's io_magic

struct StateBounds {
  uint32_t maxCells = 0;  // the destination sequence's context
  int32_t nPast = 0;      // positions the record holds: every cell's position lies below it
};

// What the walk found; `kvBlocks` holds, per attention block, its byte range and the range of its
// one non-empty stream (the sequence's own), for rewriting the stream count.
struct StateLayout {
  struct Block {
    size_t begin = 0, end = 0;
    uint32_t streams = 0;
    size_t streamBegin = 0, streamEnd = 0;  // [cell count .. end of data]; both 0 when all are empty
    uint32_t cells = 0;                      // cells of that stream
  };
  std::vector<Block> kvBlocks;
  // When the check failed because a stream holds more cells than bounds.maxCells: how many.
  uint32_t overflowCells = 0;

  // The cells the sequence takes in its context: those of its largest attention cache (the
  // full-attention one of a sliding-window model); 0 for recurrent-only models.
  uint32_t Cells() const {
    uint32_t n = 0;
    for (const auto& b : kvBlocks) n = b.cells > n ? b.cells : n;
    return n;
  }
};

// false with `why` when the state does not have the layout this model writes, or its cells do not
// fit `bounds`. In a model's full attention cache without M-RoPE, every position holds exactly one
// cell (text and image tokens alike), so there the cells must be the positions 0..nPast-1.
bool CheckSequenceState(const llama_model* model, const uint8_t* data, size_t size, const StateBounds& bounds, StateLayout& layout,
                        std::string& why);

// Rewrites every attention cache of a state to `streams` streams, the sequence's cells in the
// first: llama.cpp restores into the destination sequence's own stream but insists on the stream
// count of the context, and a session group has one stream per session. What follows the caches
// (a hybrid model's recurrent state, one cell per sequence whatever the context) is kept as it
// is. false when the layout is not the one the check found.
bool Restream(std::vector<uint8_t>& state, const StateLayout& layout, uint32_t streams);

}  // namespace llava
