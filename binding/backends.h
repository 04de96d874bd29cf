#pragma once

namespace llava {

// Portable builds ship ggml's backends as modules next to the .node file: load them (ggml scores
// the CPU variants and keeps the best for this machine). Other builds link their backends in.
void LoadBackends();

}  // namespace llava
