#include "model_fingerprint.h"

#include <cstdio>
#include <memory>
#include <vector>

#include "content_hash.h"
#include "errors.h"
#include "gguf.h"

namespace llava {
namespace {

int SeekTo(FILE* f, size_t at) {
#ifdef _WIN32
  return _fseeki64(f, static_cast<__int64>(at), SEEK_SET);
#else
  return fseeko(f, static_cast<off_t>(at), SEEK_SET);
#endif
}

}  // namespace

uint64_t FileFingerprint(const std::string& path) {
  gguf_init_params params = {/*no_alloc*/ true, /*ctx*/ nullptr};
  std::unique_ptr<gguf_context, void (*)(gguf_context*)> g(gguf_init_from_file(path.c_str(), params), gguf_free);
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!g || !f) Throw("ERR_FILE_NOT_FOUND", "cannot read " + path + " to identify the model");
  const size_t dataOffset = gguf_get_data_offset(g.get());
  ContentHash hash;
  std::vector<unsigned char> buf(1 << 16);
  size_t done = 0;
  while (done < dataOffset) {
    const size_t want = std::min(buf.size(), dataOffset - done);
    if (std::fread(buf.data(), 1, want, f.get()) != want) Throw("ERR_FILE_NOT_FOUND", "cannot read " + path + " to identify the model");
    hash.Update(buf.data(), want);
    done += want;
  }
  constexpr size_t kSample = 64;
  unsigned char sample[kSample];
  const int64_t n = gguf_get_n_tensors(g.get());
  for (int64_t i = 0; i < n; i++) {
    const size_t offset = dataOffset + gguf_get_tensor_offset(g.get(), i);
    const size_t size = gguf_get_tensor_size(g.get(), i);
    for (size_t at : {offset, offset + size / 2}) {
      const size_t take = std::min(kSample, offset + size - at);
      if (take == 0) continue;
      if (SeekTo(f.get(), at) != 0 || std::fread(sample, 1, take, f.get()) != take) {
        Throw("ERR_FILE_NOT_FOUND", "cannot read the tensor data of " + path + " to identify the model");
      }
      hash.Update(sample, take);
    }
  }
  return hash.Digest();
}

}  // namespace llava
