#include "session_file.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "compute_thread.h"
#include "errors.h"

namespace llava {
namespace {

constexpr char kMagic[8] = {'L', 'L', 'A', 'V', 'A', 'S', 'E', 'S'};
constexpr uint32_t kVersion = 1;

struct Identity {
  uint64_t params;
  int32_t embd, vocab, layers;
};

Identity IdentityOf(const ModelState& m) {
  return Identity{llama_model_n_params(m.model), llama_model_n_embd(m.model), llama_vocab_n_tokens(m.vocab()),
                  llama_model_n_layer(m.model)};
}

class Writer {
 public:
  template <typename T>
  void Put(const T& v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    buf_.insert(buf_.end(), p, p + sizeof(T));
  }
  void Bytes(const void* p, size_t n) { buf_.insert(buf_.end(), static_cast<const char*>(p), static_cast<const char*>(p) + n); }
  const std::vector<char>& data() const { return buf_; }

 private:
  std::vector<char> buf_;
};

// Reads from an untrusted buffer: every read is bounds-checked.
class Reader {
 public:
  Reader(const std::vector<char>& b, const std::string& path) : b_(b), path_(path) {}
  template <typename T>
  T Get() {
    T v;
    Need(sizeof(T));
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string Str(size_t n) {
    Need(n);
    std::string s(b_.data() + pos_, n);
    pos_ += n;
    return s;
  }
  const char* Take(size_t n) {
    Need(n);
    const char* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }
  size_t left() const { return b_.size() - pos_; }

 private:
  void Need(size_t n) {
    if (n > left()) Throw("ERR_INVALID_ARGUMENT", "the session file " + path_ + " is truncated or corrupt");
  }
  const std::vector<char>& b_;
  const std::string& path_;
  size_t pos_ = 0;
};

// llama.cpp writes a sequence's state as [magic][seq id], then its KV cache as [stream count] and,
// per stream, [cell count][cells];
// every stream but the sequence's own is empty. It restores into the destination sequence's
// stream, but insists on the same stream count, and a session group has one stream per session.
// For a plain KV cache the state is rewritten to a given stream count, so a session saved in a
// group restores into a plain session or a group of another size. Other memories (sliding
// window, recurrent) hold several such blocks and are kept as they are.
bool RestreamableKv(const llama_model* model) {
  return llama_model_n_swa(model) == 0 && !llama_model_is_recurrent(model) && !llama_model_is_hybrid(model);
}

bool Restream(const uint8_t* data, size_t size, uint32_t streams, std::vector<uint8_t>& out) {
  auto u32At = [&](size_t off) {
    uint32_t v;
    std::memcpy(&v, data + off, sizeof(v));
    return v;
  };
  constexpr uint32_t kStateMagic = 0xaf143cd8;  // llama-context.cpp's io_magic
  constexpr size_t kPrefix = 8;
  if (size < kPrefix + 4 || u32At(0) != kStateMagic) return false;
  const uint32_t have = u32At(kPrefix);
  if (have == 0 || size < kPrefix + 4 + 4ull * have) return false;
  size_t off = kPrefix + 4;
  uint32_t leading = 0;
  while (leading < have && u32At(off) == 0) {
    off += 4;
    leading++;
  }
  const uint32_t zero = 0;
  auto put = [&](const void* p, size_t n) { out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); };
  out.clear();
  put(data, kPrefix);
  put(&streams, 4);
  if (leading == have) {  // the sequence holds nothing
    if (off != size) return false;
    for (uint32_t i = 0; i < streams; i++) put(&zero, 4);
    return true;
  }
  const size_t trailing = 4ull * (have - 1 - leading);
  if (size - off < 4 + trailing) return false;
  for (size_t t = size - trailing; t < size; t += 4) {
    if (u32At(t) != 0) return false;
  }
  put(data + off, size - off - trailing);
  for (uint32_t i = 1; i < streams; i++) put(&zero, 4);
  return true;
}

}  // namespace

void SaveSession(SessionState& s, const std::string& path) {
  llama_context* ctx = s.context->Ensure();
  Writer w;
  w.Bytes(kMagic, sizeof(kMagic));
  w.Put(kVersion);
  Identity id = IdentityOf(*s.model);
  w.Put(id);
  w.Put(static_cast<uint32_t>(s.context->SequenceContext()));
  w.Put(static_cast<int32_t>(s.nPast));
  w.Put(static_cast<uint64_t>(s.cached.size()));
  for (const auto& item : s.cached) {
    w.Put(static_cast<int32_t>(item.token));
    w.Put(static_cast<int32_t>(item.nPos));
    w.Put(static_cast<uint32_t>(item.imageId.size()));
    w.Bytes(item.imageId.data(), item.imageId.size());
  }
  // The context may be shared with a group's other sessions: read it between their decodes. Cells
  // past what the record describes (left by a reset or an earlier owner of the sequence) go first.
  std::vector<uint8_t> state;
  size_t size = 0, written = 0;
  ComputeThread::Run([&] {
    llama_memory_seq_rm(llama_get_memory(ctx), s.seq, s.nPast, -1);
    size = llama_state_seq_get_size(ctx, s.seq);
    state.resize(size);
    written = llama_state_seq_get_data(ctx, state.data(), state.size(), s.seq);
  });
  std::vector<uint8_t> oneStream;
  if (written > 0 && RestreamableKv(s.model->model) && Restream(state.data(), written, 1, oneStream)) {
    state.swap(oneStream);
    written = state.size();
  }
  if (written == 0 && size != 0) Throw("ERR_INTERNAL", "llama.cpp could not copy the session state");
  w.Put(static_cast<uint64_t>(written));
  w.Bytes(state.data(), written);

  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) Throw("ERR_FILE_NOT_FOUND", "cannot write the session file " + path);
    f.write(w.data().data(), static_cast<std::streamsize>(w.data().size()));
    if (!f) Throw("ERR_INTERNAL", "writing the session file " + path + " failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) Throw("ERR_INTERNAL", "cannot move the session file into place: " + ec.message());
}

void LoadSession(SessionState& s, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) Throw("ERR_FILE_NOT_FOUND", "the session file " + path + " does not exist");
  const auto size = fs::file_size(path, ec);
  std::vector<char> buf(static_cast<size_t>(size));
  {
    std::ifstream f(path, std::ios::binary);
    if (!f || !f.read(buf.data(), static_cast<std::streamsize>(buf.size()))) Throw("ERR_FILE_NOT_FOUND", "cannot read " + path);
  }
  Reader r(buf, path);
  if (std::memcmp(r.Take(sizeof(kMagic)), kMagic, sizeof(kMagic)) != 0) {
    Throw("ERR_INVALID_ARGUMENT", path + " is not a llava-native session file");
  }
  if (r.Get<uint32_t>() != kVersion) Throw("ERR_INVALID_ARGUMENT", path + " was written by another version of llava-native");
  Identity want = r.Get<Identity>();
  Identity have = IdentityOf(*s.model);
  if (want.params != have.params || want.embd != have.embd || want.vocab != have.vocab || want.layers != have.layers) {
    Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " was saved with another model; restore it into a session of the same model");
  }
  const uint32_t savedCtx = r.Get<uint32_t>();
  const int32_t nPast = r.Get<int32_t>();
  const uint64_t nItems = r.Get<uint64_t>();
  if (nItems > r.left() / 12) Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is corrupt");
  std::vector<CacheItem> items;
  items.reserve(static_cast<size_t>(nItems));
  llama_pos positions = 0;
  for (uint64_t i = 0; i < nItems; i++) {
    CacheItem item;
    item.token = r.Get<int32_t>();
    item.nPos = r.Get<int32_t>();
    const uint32_t idLen = r.Get<uint32_t>();
    item.imageId = r.Str(idLen);
    if (item.nPos < 1 || (item.token < 0) == item.imageId.empty() || item.token >= have.vocab) {
      Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is corrupt");
    }
    positions += item.nPos;
    items.push_back(std::move(item));
  }
  if (positions != nPast) Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is corrupt");
  const uint64_t stateLen = r.Get<uint64_t>();
  const char* state = r.Take(static_cast<size_t>(stateLen));

  llama_context* ctx = s.context->Ensure();
  if (static_cast<uint32_t>(nPast) > s.context->SequenceContext()) {
    Throw("ERR_CONTEXT_OVERFLOW", "the saved session holds " + std::to_string(nPast) + " positions (saved with a context of " +
                                      std::to_string(savedCtx) + "); restore it into a session with contextSize of at least that");
  }
  s.cached.clear();
  s.held.clear();
  s.nPast = 0;
  const uint8_t* stateData = reinterpret_cast<const uint8_t*>(state);
  size_t stateSize = static_cast<size_t>(stateLen);
  std::vector<uint8_t> restreamed;
  if (stateLen > 0 && RestreamableKv(s.model->model) && Restream(stateData, stateSize, s.context->sequences(), restreamed)) {
    stateData = restreamed.data();
    stateSize = restreamed.size();
  }
  const bool restored = ComputeThread::Run([&] {
    llama_memory_t mem = llama_get_memory(ctx);
    llama_memory_seq_rm(mem, s.seq, -1, -1);
    if (stateSize == 0) return true;
    if (llama_state_seq_set_data(ctx, stateData, stateSize, s.seq) != 0) return true;
    llama_memory_seq_rm(mem, s.seq, -1, -1);
    return false;
  });
  if (!restored) {
    Throw("ERR_INVALID_ARGUMENT", "llama.cpp refused the state in " + path +
                                      " (saved with another context configuration, such as a session group of another size?)");
  }
  s.cached = std::move(items);
  s.nPast = nPast;
}

}  // namespace llava
