#include "session_file.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <type_traits>

#ifdef _WIN32
#include <io.h>
#include <process.h>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "compute_thread.h"
#include "content_hash.h"
#include "errors.h"
#include "session_state_check.h"

namespace llava {
namespace {

namespace fs = std::filesystem;

// Layout (little-endian, no padding):
//   header   magic "LLAVASES", u32 version, u64 text model fingerprint, u64 projector fingerprint
//            (0: none), u64 n_params, i32 n_embd, i32 n_vocab, i32 n_layer, u32 context size at
//            save, i32 positions, u64 items, u64 record bytes, u64 state bytes
//   checksum u64 XXH64 (seed 0) over the header, the record and the state
//   record   per item: i32 token (-1 for image chunks), i32 positions, u32 id length, id bytes
//   state    llama.cpp's sequence state
constexpr char kMagic[8] = {'L', 'L', 'A', 'V', 'A', 'S', 'E', 'S'};
constexpr uint32_t kVersion = 2;
constexpr size_t kHeaderBytes = 8 + 4 + 8 + 8 + 8 + 4 + 4 + 4 + 4 + 4 + 8 + 8 + 8;
constexpr size_t kMaxImageIdBytes = 256;

struct Header {
  uint32_t version = kVersion;
  uint64_t textFingerprint = 0, projectorFingerprint = 0, params = 0;
  int32_t embd = 0, vocab = 0, layers = 0;
  uint32_t savedCtx = 0;
  int32_t nPast = 0;
  uint64_t items = 0, recordBytes = 0, stateBytes = 0;
};

class Bytes {
 public:
  template <typename T>
  void Put(const T& v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    buf_.insert(buf_.end(), p, p + sizeof(T));
  }
  void Append(const void* p, size_t n) { buf_.insert(buf_.end(), static_cast<const char*>(p), static_cast<const char*>(p) + n); }
  const std::vector<char>& data() const { return buf_; }

 private:
  std::vector<char> buf_;
};

// Reads from an untrusted buffer: every read is bounds-checked.
class Reader {
 public:
  Reader(const char* p, size_t n, const std::string& path) : p_(p), n_(n), path_(path) {}
  template <typename T>
  T Get() {
    T v;
    std::memcpy(&v, Take(sizeof(T)), sizeof(T));
    return v;
  }
  const char* Take(size_t n) {
    if (n > n_ - pos_) Throw("ERR_INVALID_ARGUMENT", "the session file " + path_ + " is truncated or corrupt");
    const char* p = p_ + pos_;
    pos_ += n;
    return p;
  }
  size_t left() const { return n_ - pos_; }

 private:
  const char* p_;
  size_t n_;
  const std::string& path_;
  size_t pos_ = 0;
};

// The header's fields after the magic, in file order: one list for writing and for reading.
template <typename H, typename F>
void HeaderFields(H& h, F&& field) {
  field(h.version);
  field(h.textFingerprint);
  field(h.projectorFingerprint);
  field(h.params);
  field(h.embd);
  field(h.vocab);
  field(h.layers);
  field(h.savedCtx);
  field(h.nPast);
  field(h.items);
  field(h.recordBytes);
  field(h.stateBytes);
}

Bytes EncodeHeader(const Header& h) {
  Bytes b;
  b.Append(kMagic, sizeof(kMagic));
  HeaderFields(h, [&](const auto& v) { b.Put(v); });
  if (b.data().size() != kHeaderBytes) Throw("ERR_INTERNAL", "the session file header has an unexpected size");
  return b;
}

Header IdentityOf(ModelState& m) {
  Header h;
  h.textFingerprint = m.textFingerprint;
  h.projectorFingerprint = m.projectorFingerprint;
  h.params = llama_model_n_params(m.model);
  h.embd = llama_model_n_embd(m.model);
  h.vocab = llama_vocab_n_tokens(m.vocab());
  h.layers = llama_model_n_layer(m.model);
  return h;
}

uint64_t Checksum(const Bytes& header, const char* record, size_t recordBytes, const uint8_t* state, size_t stateBytes) {
  ContentHash hash;
  hash.Update(header.data().data(), header.data().size());
  hash.Update(record, recordBytes);
  hash.Update(state, stateBytes);
  return hash.Digest();
}

// The state of `seq` as llama.cpp writes it; on the compute thread, between the group's decodes.
std::vector<uint8_t> CopySequence(llama_context* ctx, llama_seq_id seq) {
  std::vector<uint8_t> state;
  size_t written = 0;
  ComputeThread::Run([&] {
    const size_t size = llama_state_seq_get_size(ctx, seq);
    state.resize(size);
    written = size == 0 ? 0 : llama_state_seq_get_data(ctx, state.data(), state.size(), seq);
    if (size != 0 && written == 0) state.clear();
  });
  if (state.empty()) Throw("ERR_INTERNAL", "llama.cpp could not copy the session state");
  state.resize(written);
  return state;
}

// ----- writing ---------------------------------------------------------------------------------

// The file a save replaces: a regular file, or a path that does not exist yet in an existing
// folder. A symbolic link is followed, so the link stays and its target is replaced.
fs::path SaveTarget(const std::string& path) {
  std::error_code ec;
  fs::path target = fs::path(path);
  const fs::file_status st = fs::status(target, ec);
  if (st.type() == fs::file_type::not_found || ec == std::errc::no_such_file_or_directory) {
    const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    if (!fs::is_directory(dir, ec)) Throw("ERR_FILE_NOT_FOUND", "cannot save the session to " + path + ": the folder does not exist");
    return target;
  }
  if (ec) Throw("ERR_FILE_NOT_FOUND", "cannot save the session to " + path + ": " + ec.message());
  if (st.type() != fs::file_type::regular) {
    Throw("ERR_INVALID_ARGUMENT", "cannot save the session to " + path + ": it exists and is not a regular file (a folder, device or pipe)");
  }
  return fs::is_symlink(fs::symlink_status(target, ec)) ? fs::canonical(target, ec) : target;
}

// A new file next to `target` that no other save (in this or another process) can be using.
struct TempFile {
  fs::path path;
  int fd = -1;
  bool keep = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!keep && !path.empty()) {
      std::error_code ec;
      fs::remove(path, ec);
    }
  }
};

void CreateTemp(const fs::path& target, TempFile& t) {
  static std::atomic<uint64_t> counter{0};
#ifdef _WIN32
  const long pid = _getpid();
#else
  const long pid = static_cast<long>(getpid());
#endif
  for (int attempt = 0; attempt < 100; attempt++) {
    fs::path candidate = target;
    candidate += "." + std::to_string(pid) + "." + std::to_string(counter++) + ".tmp";
#ifdef _WIN32
    int fd = ::_open(candidate.string().c_str(), _O_WRONLY | _O_CREAT | _O_EXCL | _O_BINARY, 0644);
#else
    int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
#endif
    if (fd >= 0) {
      t.path = candidate;
      t.fd = fd;
      return;
    }
    if (errno != EEXIST) break;
  }
  Throw("ERR_FILE_NOT_FOUND", "cannot create a file next to " + target.string() + ": " + std::strerror(errno));
}

void WriteAll(int fd, const void* data, size_t n, const fs::path& what) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, 1 << 30);
#ifdef _WIN32
    const long w = ::_write(fd, p, static_cast<unsigned>(chunk));
#else
    const ssize_t w = ::write(fd, p, chunk);
#endif
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) Throw("ERR_INTERNAL", "writing the session file " + what.string() + " failed: " + std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// ----- reading ---------------------------------------------------------------------------------

struct FileReader {
  std::ifstream f;
  const std::string& path;
  explicit FileReader(const std::string& p) : path(p) {}
  void Read(void* out, size_t n) {
    if (!f.read(static_cast<char*>(out), static_cast<std::streamsize>(n))) {
      Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is truncated or corrupt");
    }
  }
};

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

void SaveSession(SessionState& s, const std::string& path) {
  const fs::path target = SaveTarget(path);
  llama_context* ctx = s.context->Ensure();

  Header h = IdentityOf(*s.model);
  h.savedCtx = s.context->SequenceContext();
  h.nPast = s.nPast;
  h.items = s.cached.size();
  Bytes record;
  for (const auto& item : s.cached) {
    record.Put(static_cast<int32_t>(item.token));
    record.Put(static_cast<int32_t>(item.nPos));
    record.Put(static_cast<uint32_t>(item.imageId.size()));
    record.Append(item.imageId.data(), item.imageId.size());
  }
  h.recordBytes = record.data().size();

  // Cells past what the record describes (left by a reset or an earlier owner of the sequence)
  // go first. The context may be shared with a group's other sessions: read it between decodes.
  ComputeThread::Run([&] { llama_memory_seq_rm(llama_get_memory(ctx), s.seq, s.nPast, -1); });
  std::vector<uint8_t> state = CopySequence(ctx, s.seq);
  // cells on a failed RPC server read as zeros: never write them to a file
  if (s.model->rpc) s.model->rpc->Check();
  // The same check a load makes: a file this build writes is one it reads back. Attention caches
  // are stored with one stream each, so that the file restores into a plain session or a group of
  // any size (llama.cpp insists on the context's own stream count), sliding-window and hybrid
  // models included.
  StateLayout layout;
  std::string why;
  if (!CheckSequenceState(s.model->model, state.data(), state.size(), StateBounds{s.context->SequenceContext(), s.nPast}, layout, why)) {
    Throw("ERR_INTERNAL", "the session's state has a layout this version of llava-native cannot check (" + why + "), so it is not saved");
  }
  if (!layout.kvBlocks.empty()) Restream(state, layout, 1);
  h.stateBytes = state.size();

  const Bytes header = EncodeHeader(h);
  const uint64_t checksum = Checksum(header, record.data().data(), record.data().size(), state.data(), state.size());

  TempFile tmp;
  CreateTemp(target, tmp);
  WriteAll(tmp.fd, header.data().data(), header.data().size(), target);
  WriteAll(tmp.fd, &checksum, sizeof(checksum), target);
  WriteAll(tmp.fd, record.data().data(), record.data().size(), target);
  WriteAll(tmp.fd, state.data(), state.size(), target);
#ifndef _WIN32
  // On disk before it replaces the old file: a crash leaves the old file or the new one, whole.
  if (::fsync(tmp.fd) != 0) Throw("ERR_INTERNAL", "writing the session file " + target.string() + " failed: " + std::strerror(errno));
  struct stat old;
  if (::stat(target.c_str(), &old) == 0) ::fchmod(tmp.fd, old.st_mode & 07777);
  ::close(tmp.fd);
#else
  ::_close(tmp.fd);
#endif
  tmp.fd = -1;
  std::error_code ec;
  fs::rename(tmp.path, target, ec);
  if (ec) Throw("ERR_INTERNAL", "cannot move the session file into place at " + target.string() + ": " + ec.message());
  tmp.keep = true;
}

void LoadSession(SessionState& s, const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) Throw("ERR_FILE_NOT_FOUND", "the session file " + path + " does not exist or is not a regular file");
  const uint64_t fileBytes = fs::file_size(path, ec);
  if (ec) Throw("ERR_FILE_NOT_FOUND", "cannot read " + path + ": " + ec.message());
  FileReader in(path);
  in.f.open(path, std::ios::binary);
  if (!in.f) Throw("ERR_FILE_NOT_FOUND", "cannot read " + path);

  // The header alone decides whether the rest is worth reading.
  char headerBuf[kHeaderBytes];
  if (fileBytes < sizeof(kMagic) + 4) Throw("ERR_INVALID_ARGUMENT", path + " is not a llava-native session file");
  in.Read(headerBuf, sizeof(kMagic) + 4);
  if (std::memcmp(headerBuf, kMagic, sizeof(kMagic)) != 0) Throw("ERR_INVALID_ARGUMENT", path + " is not a llava-native session file");
  uint32_t version;
  std::memcpy(&version, headerBuf + sizeof(kMagic), 4);
  if (version != kVersion) {
    Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " has format version " + std::to_string(version) + "; this llava-native reads version " +
                                      std::to_string(kVersion) + " (save the session again with this version)");
  }
  in.Read(headerBuf + sizeof(kMagic) + 4, kHeaderBytes - sizeof(kMagic) - 4);
  Reader hr(headerBuf + sizeof(kMagic), kHeaderBytes - sizeof(kMagic), path);
  Header h;
  HeaderFields(h, [&](auto& v) { v = hr.Get<std::remove_reference_t<decltype(v)>>(); });
  uint64_t checksum;
  in.Read(&checksum, sizeof(checksum));

  const Header have = IdentityOf(*s.model);
  if (h.textFingerprint != have.textFingerprint || h.params != have.params || h.embd != have.embd || h.vocab != have.vocab ||
      h.layers != have.layers) {
    Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " was saved with another model (fingerprint " + Hex(h.textFingerprint) +
                                      ", this model's is " + Hex(have.textFingerprint) + "); restore it into a session of the model that saved it");
  }
  const size_t afterHeader = kHeaderBytes + sizeof(checksum);
  if (h.recordBytes > fileBytes || h.stateBytes > fileBytes || afterHeader + h.recordBytes + h.stateBytes != fileBytes) {
    Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is truncated or corrupt: its header describes " +
                                      std::to_string(afterHeader + h.recordBytes + h.stateBytes) + " bytes but the file has " +
                                      std::to_string(fileBytes));
  }
  if (h.nPast < 0 || h.items > h.recordBytes / 12) Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is corrupt");
  llama_context* ctx = s.context->Ensure();
  const uint32_t seqCtx = s.context->SequenceContext();
  if (static_cast<uint32_t>(h.nPast) > seqCtx) {
    Throw("ERR_CONTEXT_OVERFLOW", "the saved session holds " + std::to_string(h.nPast) + " positions (saved with a context of " +
                                      std::to_string(h.savedCtx) + "); restore it into a session with contextSize of at least that");
  }

  std::vector<char> recordBuf(static_cast<size_t>(h.recordBytes));
  in.Read(recordBuf.data(), recordBuf.size());
  const uint32_t streams = s.context->sequences();
  std::vector<uint8_t> state;
  state.reserve(static_cast<size_t>(h.stateBytes) + 4ull * streams);
  state.resize(static_cast<size_t>(h.stateBytes));
  in.Read(state.data(), state.size());

  if (Checksum(EncodeHeader(h), recordBuf.data(), recordBuf.size(), state.data(), state.size()) != checksum) {
    Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is corrupt: its checksum does not match its content");
  }

  // The record: what the restored cells hold, in order.
  Reader r(recordBuf.data(), recordBuf.size(), path);
  std::vector<CacheItem> items;
  items.reserve(static_cast<size_t>(h.items));
  int64_t positions = 0;
  bool usesImages = false;
  for (uint64_t i = 0; i < h.items; i++) {
    CacheItem item;
    item.token = r.Get<int32_t>();
    item.nPos = r.Get<int32_t>();
    const uint32_t idLen = r.Get<uint32_t>();
    if (idLen > kMaxImageIdBytes) Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is corrupt");
    item.imageId.assign(r.Take(idLen), idLen);
    if (item.nPos < 1 || (item.token < 0) == item.imageId.empty() || item.token >= have.vocab) {
      Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is corrupt");
    }
    usesImages = usesImages || item.token < 0;
    positions += item.nPos;
    items.push_back(std::move(item));
  }
  if (r.left() != 0 || positions != h.nPast) Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is corrupt");
  if (usesImages && h.projectorFingerprint != have.projectorFingerprint) {
    Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " holds images encoded with another projector (mmproj); restore it into a session of a model loaded with the projector that saved it");
  }

  // The cells themselves: a count and positions that fit this session, and a layout that ends
  // where it should, before llama.cpp allocates anything for them.
  StateLayout layout;
  std::string why;
  if (!CheckSequenceState(s.model->model, state.data(), state.size(), StateBounds{seqCtx, h.nPast}, layout, why)) {
    if (layout.overflowCells > 0) {
      Throw("ERR_CONTEXT_OVERFLOW", "the saved session holds " + std::to_string(layout.overflowCells) + " KV cells (saved with a context of " +
                                        std::to_string(h.savedCtx) + "), more than this session's " + std::to_string(seqCtx) +
                                        "; restore it into a session with contextSize of at least that");
    }
    Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is corrupt: " + why);
  }
  if (!layout.kvBlocks.empty() && !Restream(state, layout, streams)) {
    Throw("ERR_INVALID_ARGUMENT", "the session file " + path + " is corrupt: its KV cache has an unexpected layout");
  }

  // What the session holds now comes back if llama.cpp refuses the file after all.
  std::vector<uint8_t> previous;
  if (s.nPast > 0) previous = CopySequence(ctx, s.seq);
  bool restored = false, putBack = true;
  ComputeThread::Run([&] {
    llama_memory_t mem = llama_get_memory(ctx);
    llama_memory_seq_rm(mem, s.seq, -1, -1);
    // All of it must be read: bytes llama.cpp did not ask for mean the file is not what it claims.
    restored = llama_state_seq_set_data(ctx, state.data(), state.size(), s.seq) == state.size();
    if (restored) return;
    llama_memory_seq_rm(mem, s.seq, -1, -1);
    putBack = previous.empty() || llama_state_seq_set_data(ctx, previous.data(), previous.size(), s.seq) != 0;
    if (!putBack) llama_memory_seq_rm(mem, s.seq, -1, -1);
  });
  if (!restored) {
    if (!putBack) {
      s.cached.clear();
      s.held.clear();
      s.nPast = 0;
      s.nCells = 0;
    }
    Throw("ERR_INVALID_ARGUMENT", "llama.cpp refused the state in " + path +
                                      " (saved with another context configuration, such as a session group of another size or another KV cache type?)" +
                                      (putBack ? "; the session keeps what it held" : "; the session was emptied"));
  }
  s.cached = std::move(items);
  s.held.clear();
  s.nPast = h.nPast;
  s.nCells = layout.kvBlocks.empty() ? h.nPast : static_cast<int32_t>(layout.Cells());
}

}  // namespace llava
