#pragma once
// hubPlan(files, repoWithTag, file, mmproj): a promise of { primary, modelFiles, mmproj, preset }:
// the files llama.cpp's `-hf` would take from a repository listing (common/download.cpp's own
// choice: quant tag, default order, split parts, projector sibling), so both pick the same files.
#include <napi.h>

namespace llava {
Napi::Value HubPlan(const Napi::CallbackInfo& info);
}
