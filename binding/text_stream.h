#pragma once
// Turns sampled token pieces into text that is safe to hand to JS: never half a UTF-8
// character, and never the beginning of a stop string that may still complete.
#include <string>
#include <vector>

namespace llava {

// Length of the longest prefix of s[0, n) made of complete UTF-8 sequences.
inline size_t CompleteUtf8Prefix(const char* s, size_t n) {
  size_t i = n;
  // Look back at most 3 bytes for the start of an unfinished multi-byte sequence.
  for (size_t back = 1; back <= 3 && back <= n; back++) {
    unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if (need > back) i = n - back;
    break;
  }
  return i;
}

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Adds a token's bytes; returns the text that can be emitted now. Sets stopped() when a stop
  // string appeared (the text before it is returned, the stop string and anything after is not).
  std::string Push(const std::string& bytes) {
    pending_ += bytes;
    size_t complete = CompleteUtf8Prefix(pending_.data(), pending_.size());
    held_.append(pending_, 0, complete);
    pending_.erase(0, complete);

    size_t stopAt = std::string::npos;
    for (const auto& s : stops_) {
      if (s.empty()) continue;
      size_t p = held_.find(s);
      if (p != std::string::npos && p < stopAt) stopAt = p;
    }
    if (stopAt != std::string::npos) {
      stopped_ = true;
      std::string out = held_.substr(0, stopAt);
      held_.clear();
      pending_.clear();
      return out;
    }
    size_t keep = LongestStopPrefixSuffix();
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }

  // Whatever is still held back, at the end of generation.
  std::string Flush() {
    std::string out = held_ + pending_;
    held_.clear();
    pending_.clear();
    return out;
  }

  bool stopped() const { return stopped_; }

 private:
  size_t LongestStopPrefixSuffix() const {
    size_t best = 0;
    for (const auto& s : stops_) {
      size_t maxLen = std::min(s.size() - (s.empty() ? 0 : 1), held_.size());
      for (size_t len = maxLen; len > best; len--) {
        if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
          best = len;
          break;
        }
      }
    }
    return best;
  }

  std::vector<std::string> stops_;
  std::string pending_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace llava
