#pragma once
// The generation loop, free of N-API: evaluate a prompt (text and image embeddings) into a
// session's KV cache, reusing what is already there, then sample until a stop condition.
#include <atomic>
#include <functional>

#include "session_state.h"

namespace llava {

// Runs on a worker thread with the session's mutex held. Throws NativeError.
GenerateResult RunGeneration(SessionState& s, const GenerateRequest& req, std::atomic<bool>& abort,
                             const std::function<void(StreamPiece&&)>& emit);

}  // namespace llava
