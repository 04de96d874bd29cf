#pragma once
// Where a model's weights go: the devices its layers are offloaded to (RPC servers' devices
// first, then local GPUs; the CPU keeps the rest), their shares, the projector's device, and
// afterwards where llama.cpp actually put each layer.
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "model_state.h"
#include "model_validator.h"
#include "rpc.h"

namespace llava {

struct PlacementOptions {
  int gpuLayers = -1;  // -1 all, -2 as many as fit the devices' free memory
  int mainGpu = -1;    // index among GPU devices, -1 = let llama.cpp split across all
  bool mmprojUseGpu = true;
  std::vector<std::string> rpcServers;
  RpcTimeouts rpcTimeouts;
  std::vector<float> tensorSplit;  // per offload device, in the order above
  std::string mmprojDevice;        // a device name or an RPC endpoint; "" = the default
};

struct DevicePlan {
  // nullptr-terminated for llama_model_params.devices; empty = llama.cpp's own choice (all GPUs)
  std::vector<ggml_backend_dev_t> devices;
  std::vector<float> split;  // llama_max_devices() shares
  bool hasSplit = false;
  int gpuLayers = -1;        // for llama_model_params.n_gpu_layers
  int offloadedLayers = 0;   // what model.gpuLayers reports
  ggml_backend_dev_t mainGpu = nullptr;
  // mtmd's use_gpu and device, and the name model.info reports for it
  bool projectorUseGpu = false;
  ggml_backend_dev_t projector = nullptr;
  std::string projectorName = "CPU";
};

// Connects to the RPC servers (ERR_RPC when one cannot be used) and validates the options
// against the devices there are (ERR_INVALID_ARGUMENT). Blocking: call it off the JS thread.
DevicePlan PlanDevices(const PlacementOptions& o, const ModelFacts& facts, double modelBytes, double projBytes, bool vocabOnly);

// Counts llama.cpp's per-layer assignments (RecordLayerDevices, the last one the output layer's)
// by device into state.placement.
void NotePlacement(ModelState& state, const std::vector<std::string>& layerDevices, const DevicePlan& plan);

}  // namespace llava
