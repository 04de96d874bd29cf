// Linked into the reference llama-mtmd-cli only (LLAVA_NATIVE_REFERENCE). llama.cpp's logger
// prints through a worker thread that is deliberately never joined (common/log.cpp), so the
// CLI's answer can be lost from stdout at exit. Joining the logger from an atexit handler
// registered before main() drains it first. llama.cpp's own code is not changed.
#include <cstdlib>

#include "log.h"

namespace {
struct FlushLogAtExit {
  FlushLogAtExit() {
    std::atexit([] { common_log_pause(common_log_main()); });
  }
} flushLogAtExit;
}  // namespace
