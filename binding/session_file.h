#pragma once
// Saving and restoring a session: the KV cache of its sequence (llama.cpp's state API) plus the
// record of what the cache holds (text tokens and image chunk ids), so that a restored session
// continues exactly where the saved one stopped, in this or another process.
#include <string>

#include "session_state.h"

namespace llava {

// Both run on a worker thread with the session's mutex held; they throw NativeError.
void SaveSession(SessionState& s, const std::string& path);
void LoadSession(SessionState& s, const std::string& path);

}  // namespace llava
