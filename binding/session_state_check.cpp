#include "session_state_check.h"

#include <cstring>
#include <vector>

#include "ggml.h"

namespace llava {
namespace {

class Cursor {
 public:
  Cursor(const uint8_t* p, size_t n) : p_(p), n_(n) {}
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

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

// One stream's cells, then the start of its data: the layer count, and the first key row's type
// and size must make sense and fit (which also tells the two cell layouts apart).
bool CheckCells(Cursor c, uint32_t cells, const KvStateBounds& b, size_t extBytes, std::string& why) {
  std::vector<bool> seen(b.exactPositions ? static_cast<size_t>(b.nPast) : 0, false);
  for (uint32_t i = 0; i < cells; i++) {
    int32_t pos = 0;
    uint32_t nSeq = 0;
    int32_t seq = 0;
    if (!c.Get(pos) || !c.Get(nSeq) || !c.Skip(extBytes) || !c.Get(seq)) {
      why = "its KV cache ends inside cell " + std::to_string(i);
      return false;
    }
    if (nSeq != 1) {
      why = "cell " + std::to_string(i) + " of its KV cache belongs to " + std::to_string(nSeq) + " sequences";
      return false;
    }
    if (pos < 0 || pos >= b.nPast) {
      why = "cell " + std::to_string(i) + " of its KV cache is at position " + std::to_string(pos) + ", outside the " +
            std::to_string(b.nPast) + " positions the file records";
      return false;
    }
    if (b.exactPositions) {
      if (seen[static_cast<size_t>(pos)]) {
        why = "two cells of its KV cache are at position " + std::to_string(pos);
        return false;
      }
      seen[static_cast<size_t>(pos)] = true;
    }
  }
  uint32_t vTrans = 0, layers = 0;
  int32_t kType = 0;
  uint64_t kRow = 0;
  if (!c.Get(vTrans) || !c.Get(layers) || !c.Get(kType) || !c.Get(kRow) || vTrans > 1 || layers == 0 || layers > 100000 || kType < 0 ||
      kType >= GGML_TYPE_COUNT || kRow == 0 || kRow > (1ull << 32) || !c.Skip(kRow * cells)) {
    why = "its KV cache data does not match its " + std::to_string(cells) + " cells";
    return false;
  }
  return true;
}

}  // namespace

size_t KvCellExtBytes(const llama_model* model) {
  const llama_rope_type rope = llama_model_rope_type(model);
  return rope == LLAMA_ROPE_TYPE_MROPE || rope == LLAMA_ROPE_TYPE_IMROPE ? 12 : 0;  // llama_kv_cell_ext: x, y, tok
}

bool KvStateCheckable(const llama_model* model) { return !llama_model_is_recurrent(model) && !llama_model_is_hybrid(model); }

bool CheckKvState(const uint8_t* data, size_t size, const KvStateBounds& b, std::string& why) {
  Cursor c(data, size);
  uint32_t magic = 0, streams = 0;
  int32_t seqId = 0;
  if (!c.Get(magic) || magic != kStateMagic || !c.Get(seqId) || !c.Get(streams)) {
    why = "it does not hold a llama.cpp sequence state";
    return false;
  }
  if (streams == 0 || streams > 65536) {
    why = "its KV cache claims " + std::to_string(streams) + " streams";
    return false;
  }
  for (uint32_t s = 0; s < streams; s++) {
    uint32_t cells = 0;
    if (!c.Get(cells)) {
      why = "its KV cache ends early";
      return false;
    }
    if (cells == 0) continue;
    if (cells > b.maxCells) {
      why = "its KV cache claims " + std::to_string(cells) + " cells; this session holds at most " + std::to_string(b.maxCells);
      return false;
    }
    if (cells < b.minCells || (b.exactPositions && cells != static_cast<uint32_t>(b.nPast))) {
      why = "its KV cache holds " + std::to_string(cells) + " cells for the " + std::to_string(b.nPast) + " positions it records";
      return false;
    }
    if (CheckCells(c, cells, b, b.cellExtBytes, why)) return true;
    std::string other;
    return CheckCells(c, cells, b, b.cellExtBytes == 0 ? 12 : 0, other);
  }
  if (b.nPast != 0) {
    why = "its KV cache holds no cells for the " + std::to_string(b.nPast) + " positions it records";
    return false;
  }
  return true;
}

}  // namespace llava
