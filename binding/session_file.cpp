#include "session_file.h"

#include <cstring>
#include <filesystem>
#include <fstream>

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

}  // namespace

void SaveSession(SessionState& s, const std::string& path) {
  EnsureContext(s);
  Writer w;
  w.Bytes(kMagic, sizeof(kMagic));
  w.Put(kVersion);
  Identity id = IdentityOf(*s.model);
  w.Put(id);
  w.Put(static_cast<uint32_t>(llama_n_ctx(s.ctx)));
  w.Put(static_cast<int32_t>(s.nPast));
  w.Put(static_cast<uint64_t>(s.cached.size()));
  for (const auto& item : s.cached) {
    w.Put(static_cast<int32_t>(item.token));
    w.Put(static_cast<int32_t>(item.nPos));
    w.Put(static_cast<uint32_t>(item.imageId.size()));
    w.Bytes(item.imageId.data(), item.imageId.size());
  }
  const size_t size = llama_state_seq_get_size(s.ctx, 0);
  std::vector<uint8_t> state(size);
  const size_t written = llama_state_seq_get_data(s.ctx, state.data(), state.size(), 0);
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

  EnsureContext(s);
  if (static_cast<uint32_t>(nPast) > llama_n_ctx(s.ctx)) {
    Throw("ERR_CONTEXT_OVERFLOW", "the saved session holds " + std::to_string(nPast) + " positions (saved with a context of " +
                                      std::to_string(savedCtx) + "); restore it into a session with contextSize of at least that");
  }
  llama_memory_clear(llama_get_memory(s.ctx), true);
  s.cached.clear();
  s.held.clear();
  s.nPast = 0;
  if (stateLen > 0 && llama_state_seq_set_data(s.ctx, reinterpret_cast<const uint8_t*>(state), static_cast<size_t>(stateLen), 0) == 0) {
    llama_memory_clear(llama_get_memory(s.ctx), true);
    Throw("ERR_INVALID_ARGUMENT", "llama.cpp refused the state in " + path + " (a different context configuration?)");
  }
  s.cached = std::move(items);
  s.nPast = nPast;
}

}  // namespace llava
