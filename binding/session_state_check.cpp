#include "session_state_check.h"

#include <cstring>

#include "ggml.h"

namespace llava {
namespace {

class Cursor {
 public:
  Cursor(const uint8_t* p, size_t n, size_t pos) : p_(p), n_(n), pos_(pos) {}
  template <typename T>
  bool Get(T& v) {
    if (sizeof(T) > n_ - pos_) return false;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Skip(uint64_t n) {
    if (n > n_ - pos_) return false;
    pos_ += static_cast<size_t>(n);
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_;
};

// Bytes of per-cell extra data llama.cpp writes in a KV cache's cells: the 2D position (and token)
// for M-RoPE models (llama_kv_cell_ext; llama-kv-cache.cpp has_cell_ext()).
size_t CellExtBytes(const llama_model* model) {
  const llama_rope_type rope = llama_model_rope_type(model);
  return rope == LLAMA_ROPE_TYPE_MROPE || rope == LLAMA_ROPE_TYPE_IMROPE ? 12 : 0;
}

struct Walker {
  const uint8_t* data;
  size_t size;
  const StateBounds& b;
  size_t extBytes;
  bool valuesPerLayer;  // false for models with multi-head latent attention: keys only
  std::string& why;
  uint32_t overflowCells = 0;

  bool Fail(std::string message) {
    why = std::move(message);
    return false;
  }

  bool Position(int32_t pos, uint32_t i, std::vector<bool>* seen) {
    if (pos < 0 || pos >= b.nPast) {
      return Fail("cell " + std::to_string(i) + " is at position " + std::to_string(pos) + ", outside the " + std::to_string(b.nPast) +
                  " positions the file records");
    }
    if (seen) {
      if ((*seen)[static_cast<size_t>(pos)]) return Fail("two cells are at position " + std::to_string(pos));
      (*seen)[static_cast<size_t>(pos)] = true;
    }
    return true;
  }

  // llama_kv_cache::state_write for one sequence: [streams] then per stream [cells] and, when there
  // are any, their metadata and every layer's rows.
  bool KvBlock(Cursor& c, bool exact, StateLayout::Block& block) {
    block.begin = c.pos();
    if (!c.Get(block.streams)) return Fail("its KV cache ends early");
    if (block.streams == 0 || block.streams > 65536) return Fail("its KV cache claims " + std::to_string(block.streams) + " streams");
    for (uint32_t s = 0; s < block.streams; s++) {
      const size_t streamBegin = c.pos();
      uint32_t cells = 0;
      if (!c.Get(cells)) return Fail("its KV cache ends early");
      if (cells == 0) continue;
      if (block.streamEnd != 0) return Fail("its KV cache holds cells in more than one stream");
      if (cells > b.maxCells) {
        overflowCells = cells;
        return Fail("its KV cache claims " + std::to_string(cells) + " cells; this session holds at most " + std::to_string(b.maxCells));
      }
      if (exact && cells != static_cast<uint32_t>(b.nPast)) {
        return Fail("its KV cache holds " + std::to_string(cells) + " cells for the " + std::to_string(b.nPast) + " positions it records");
      }
      std::vector<bool> seen(exact ? static_cast<size_t>(b.nPast) : 0, false);
      for (uint32_t i = 0; i < cells; i++) {
        int32_t pos = 0, seq = 0;
        uint32_t nSeq = 0;
        if (!c.Get(pos) || !c.Get(nSeq) || !c.Skip(extBytes) || !c.Get(seq)) return Fail("its KV cache ends inside cell " + std::to_string(i));
        if (nSeq != 1) return Fail("cell " + std::to_string(i) + " belongs to " + std::to_string(nSeq) + " sequences");
        if (!Position(pos, i, exact ? &seen : nullptr)) return false;
      }
      if (!Rows(c, cells)) return false;
      block.cells = cells;
      block.streamBegin = streamBegin;
      block.streamEnd = c.pos();
    }
    block.end = c.pos();
    return true;
  }

  // llama_kv_cache::state_write_data: keys per layer, then values per layer (rows, or transposed).
  bool Rows(Cursor& c, uint32_t cells) {
    uint32_t vTrans = 0, layers = 0;
    if (!c.Get(vTrans) || !c.Get(layers) || vTrans > 1 || layers == 0 || layers > 100000) return Fail("its KV cache data is malformed");
    auto type = [](int32_t t) { return t >= 0 && t < GGML_TYPE_COUNT; };
    for (uint32_t l = 0; l < layers; l++) {
      int32_t kType = 0;
      uint64_t kRow = 0;
      if (!c.Get(kType) || !c.Get(kRow) || !type(kType) || kRow == 0 || kRow > (1ull << 32) || !c.Skip(kRow * cells)) {
        return Fail("its KV cache keys do not match its " + std::to_string(cells) + " cells");
      }
    }
    if (!valuesPerLayer) return true;
    for (uint32_t l = 0; l < layers; l++) {
      int32_t vType = 0;
      bool ok = c.Get(vType) && type(vType);
      if (ok && !vTrans) {
        uint64_t vRow = 0;
        ok = c.Get(vRow) && vRow > 0 && vRow <= (1ull << 32) && c.Skip(vRow * cells);
      } else if (ok) {
        uint32_t elBytes = 0, width = 0;
        ok = c.Get(elBytes) && c.Get(width) && elBytes > 0 && elBytes <= 64 && width > 0 && width <= (1u << 24) &&
             c.Skip(static_cast<uint64_t>(elBytes) * width * cells);
      }
      if (!ok) return Fail("its KV cache values do not match its " + std::to_string(cells) + " cells");
    }
    return true;
  }

  // llama_memory_recurrent::state_write for one sequence: [cells] (0 or 1: a sequence has one
  // recurrent state) with [pos][n_seq_id = 0] each, then rows that llama.cpp checks itself.
  bool RecurrentHead(Cursor& c) {
    uint32_t cells = 0;
    if (!c.Get(cells)) return Fail("its recurrent state ends early");
    if (cells > 1) return Fail("its recurrent state claims " + std::to_string(cells) + " cells for one sequence");
    for (uint32_t i = 0; i < cells; i++) {
      int32_t pos = 0;
      uint32_t nSeq = 0;
      if (!c.Get(pos) || !c.Get(nSeq)) return Fail("its recurrent state ends early");
      if (nSeq != 0) return Fail("its recurrent cell lists " + std::to_string(nSeq) + " sequences");
      if (!Position(pos, i, nullptr)) return false;
    }
    return true;
  }
};

bool Walk(const llama_model* model, const uint8_t* data, size_t size, const StateBounds& b, bool valuesPerLayer, StateLayout& layout,
          std::string& why) {
  layout.kvBlocks.clear();
  layout.overflowCells = 0;
  Walker w{data, size, b, CellExtBytes(model), valuesPerLayer, why};
  Cursor c(data, size, 0);
  uint32_t magic = 0;
  int32_t seq = 0;
  if (!c.Get(magic) || magic != kStateMagic || !c.Get(seq)) return w.Fail("it does not hold a llama.cpp sequence state");
  const bool recurrent = llama_model_is_recurrent(model);
  const bool hybrid = llama_model_is_hybrid(model);
  if (recurrent) return w.RecurrentHead(c);
  // Attention caches: one, or two for sliding-window models (and other two-cache designs); each
  // must end where the next begins, the last at the end of the state (hybrid models: where the
  // recurrent state begins).
  const size_t expectedBlocks = hybrid ? (llama_model_n_swa(model) > 0 ? 2 : 1) : 0;
  while (c.pos() < size && (expectedBlocks == 0 || layout.kvBlocks.size() < expectedBlocks)) {
    if (layout.kvBlocks.size() == 4) return w.Fail("it holds more KV caches than any model has");
    StateLayout::Block block;
    const bool exact = w.extBytes == 0 && !hybrid && layout.kvBlocks.empty();
    if (!w.KvBlock(c, exact, block)) {
      layout.overflowCells = w.overflowCells;
      return false;
    }
    layout.kvBlocks.push_back(block);
  }
  if (layout.kvBlocks.empty()) return w.Fail("it holds no KV cache");
  if (hybrid) return w.RecurrentHead(c);
  if (c.pos() != size) return w.Fail("it holds bytes after its KV cache");
  return true;
}

}  // namespace

bool CheckSequenceState(const llama_model* model, const uint8_t* data, size_t size, const StateBounds& bounds, StateLayout& layout,
                        std::string& why) {
  // Models with multi-head latent attention keep keys only; the two layouts cannot both fit.
  if (Walk(model, data, size, bounds, true, layout, why)) return true;
  std::string other;
  return Walk(model, data, size, bounds, false, layout, other);
}

bool Restream(std::vector<uint8_t>& state, const StateLayout& layout, uint32_t streams) {
  if (layout.kvBlocks.empty() || streams == 0) return false;
  // The state in its new order: kept byte ranges of the old one, and literals (stream counts, the
  // empty streams' zero cell counts). States are gigabytes for large contexts, so they are moved
  // in place: every block changes size by the same amount (one context has one stream count), so
  // every piece moves the same way, towards the front when shrinking, the back when growing.
  struct Piece {
    size_t from = 0, len = 0;  // a kept range, or
    uint32_t value = 0;        // `count` u32 literals of this value
    uint32_t count = 0;
  };
  std::vector<Piece> pieces;
  size_t at = 0, size = 0;
  for (const StateLayout::Block& block : layout.kvBlocks) {
    if (block.begin < at || block.end < block.begin || block.end > state.size() || block.streams == 0) return false;
    const bool cells = block.streamEnd > block.streamBegin;
    if (cells && (block.streamBegin < block.begin + 4 || block.streamEnd > block.end)) return false;
    if (block.streams != layout.kvBlocks[0].streams) return false;
    pieces.push_back({at, block.begin - at});
    pieces.push_back({0, 0, streams, 1});
    if (cells) pieces.push_back({block.streamBegin, block.streamEnd - block.streamBegin});
    pieces.push_back({0, 0, 0, streams - (cells ? 1 : 0)});
    at = block.end;
  }
  pieces.push_back({at, state.size() - at});  // a hybrid model's recurrent state
  for (const Piece& p : pieces) size += p.count ? 4ull * p.count : p.len;

  const bool growing = size > state.size();
  if (growing) state.resize(size);
  std::vector<size_t> to(pieces.size());
  for (size_t i = 0, o = 0; i < pieces.size(); i++) {
    to[i] = o;
    o += pieces[i].count ? 4ull * pieces[i].count : pieces[i].len;
  }
  auto place = [&](size_t i) {
    const Piece& p = pieces[i];
    if (p.count == 0) {
      if (p.len > 0 && to[i] != p.from) std::memmove(state.data() + to[i], state.data() + p.from, p.len);
      return;
    }
    for (uint32_t k = 0; k < p.count; k++) std::memcpy(state.data() + to[i] + 4ull * k, &p.value, 4);
  };
  if (growing) {
    for (size_t i = pieces.size(); i-- > 0;) place(i);
  } else {
    for (size_t i = 0; i < pieces.size(); i++) place(i);
    state.resize(size);
  }
  return true;
}

}  // namespace llava
