#include "device_plan.h"

#include <algorithm>
#include <cmath>

#include "errors.h"
#include "llama.h"

namespace llava {
namespace {

// Layers that fit in 90% of the devices' free memory after the projector and 512 MiB of work
// space each, assuming the weights are spread evenly over the layers (plus one for the output).
int AutoLayers(const ModelFacts& facts, const std::vector<ggml_backend_dev_t>& devs, double modelBytes, double projBytes) {
  if (devs.empty() || facts.blockCount == 0) return 0;
  double budget = -projBytes;
  for (ggml_backend_dev_t dev : devs) {
    size_t freeMem = 0, totalMem = 0;
    ggml_backend_dev_memory(dev, &freeMem, &totalMem);
    budget += static_cast<double>(freeMem) * 0.9 - 512.0 * 1024 * 1024;
  }
  const double perLayer = modelBytes / (facts.blockCount + 1);
  if (budget <= 0 || perLayer <= 0) return 0;
  return static_cast<int>(std::min<double>(facts.blockCount + 1, std::floor(budget / perLayer)));
}

// The device named by mmprojDevice: a device name, or an RPC endpoint for its first device.
ggml_backend_dev_t NamedDevice(const std::string& name, const std::vector<ggml_backend_dev_t>& devices) {
  for (ggml_backend_dev_t d : devices) {
    if (d && (name == ggml_backend_dev_name(d) || name == RpcEndpointOf(d))) return d;
  }
  if (ggml_backend_dev_t d = ggml_backend_dev_by_name(name.c_str())) return d;
  Throw("ERR_INVALID_ARGUMENT", "mmprojDevice " + name + " is neither a device of this build nor one of the model's RPC servers; see listDevices()");
}

}  // namespace

DevicePlan PlanDevices(const PlacementOptions& o, const ModelFacts& facts, double modelBytes, double projBytes, bool vocabOnly) {
  DevicePlan plan;
  std::vector<ggml_backend_dev_t> gpus;
  for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
    ggml_backend_dev_t d = ggml_backend_dev_get(i);
    if (ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_GPU || ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_IGPU) gpus.push_back(d);
  }
  if (o.mainGpu >= static_cast<int>(gpus.size())) {
    Throw("ERR_INVALID_ARGUMENT", "mainGpu is " + std::to_string(o.mainGpu) + " but this build sees " + std::to_string(gpus.size()) +
                                      " GPU device(s); see listDevices()");
  }
  plan.mainGpu = o.mainGpu >= 0 ? gpus[static_cast<size_t>(o.mainGpu)] : (gpus.empty() ? nullptr : gpus[0]);
  if (!o.rpcServers.empty()) {
    // remote devices first (as llama.cpp orders them, to keep the transfers few), then the GPUs
    plan.devices = ConnectRpcServers(o.rpcServers, o.rpcTimeouts);
    if (o.mainGpu >= 0) {
      plan.devices.push_back(plan.mainGpu);
    } else {
      plan.devices.insert(plan.devices.end(), gpus.begin(), gpus.end());
    }
    plan.devices.push_back(nullptr);
  } else if (o.mainGpu >= 0) {
    plan.devices = {plan.mainGpu, nullptr};
  }
  std::vector<ggml_backend_dev_t> offload;
  if (plan.devices.empty()) {
    if (plan.mainGpu) offload.push_back(plan.mainGpu);
  } else {
    offload.assign(plan.devices.begin(), plan.devices.end() - 1);
  }
  const size_t shareable = plan.devices.empty() ? gpus.size() : offload.size();
  if (o.tensorSplit.size() > shareable) {
    Throw("ERR_INVALID_ARGUMENT", "tensorSplit has " + std::to_string(o.tensorSplit.size()) + " shares but the model has " + std::to_string(shareable) +
                                      " device(s) to split over (RPC servers' devices first, then GPUs)");
  }
  plan.split.assign(llama_max_devices(), 0.0f);
  std::copy(o.tensorSplit.begin(), o.tensorSplit.end(), plan.split.begin());
  plan.hasSplit = !o.tensorSplit.empty();

  plan.gpuLayers = o.gpuLayers == -2 ? AutoLayers(facts, offload, modelBytes, projBytes) : o.gpuLayers;
  plan.offloadedLayers = shareable > 0 && !vocabOnly ? (plan.gpuLayers < 0 ? static_cast<int>(facts.blockCount) + 1 : plan.gpuLayers) : 0;

  // Not on a remote device unless named: an image's pixels would cross the network for nothing.
  if (!o.mmprojDevice.empty()) {
    plan.projector = NamedDevice(o.mmprojDevice, plan.devices);
    plan.projectorUseGpu = true;
  } else if (o.mmprojUseGpu && plan.mainGpu) {
    plan.projectorUseGpu = true;
    if (o.mainGpu >= 0) plan.projector = plan.mainGpu;
  }
  // without a named device mtmd takes the first GPU registered: the first of `gpus`
  if (plan.projectorUseGpu) plan.projectorName = ggml_backend_dev_name(plan.projector ? plan.projector : plan.mainGpu);
  return plan;
}

void NotePlacement(ModelState& state, const std::vector<std::string>& layerDevices, const DevicePlan& plan) {
  for (size_t i = 0; i < layerDevices.size(); i++) {
    const std::string& name = layerDevices[i];
    auto it = std::find_if(state.placement.begin(), state.placement.end(), [&](const ModelState::Placement& p) { return p.device == name; });
    if (it == state.placement.end()) {
      ModelState::Placement p;
      p.device = name;
      for (ggml_backend_dev_t d : plan.devices) {
        if (d && name == ggml_backend_dev_name(d)) p.endpoint = RpcEndpointOf(d);
      }
      state.placement.push_back(p);
      it = state.placement.end() - 1;
    }
    if (i + 1 == layerDevices.size()) {
      it->output = true;
    } else {
      it->layers++;
    }
  }
}

}  // namespace llava
