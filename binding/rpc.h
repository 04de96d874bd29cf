#pragma once
// ggml's RPC backend: remote devices for a model's layers (client) and this machine's devices for
// others (server). llama.cpp's client no longer aborts when a server fails
// (deps/patches/0013): the connection is marked failed and its calls complete without effect, so
// the work of a model using it is checked after every step and refused from then on.
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ggml-backend.h"

namespace llava {

struct RpcTimeouts {
  uint32_t connectMs = 10000;
  uint32_t callMs = 120000;
};

// The RPC servers a model's weights live on, and whether one of their connections has failed
// since the model was loaded. Shared by the model's state and every worker using it.
class RpcLink {
 public:
  explicit RpcLink(std::vector<std::string> endpoints);

  // Throws ERR_RPC (naming the server and what happened) when a connection failed, now or before.
  void Check();
  // "the RPC server at host:port failed (why)" for the first server whose connection failed
  // since this link was made, or "".
  std::string NewFailure() const;
  bool Failed() const { return failed_.load(); }
  std::string Error() const;
  const std::vector<std::string>& endpoints() const { return endpoints_; }

 private:
  std::vector<std::string> endpoints_;
  std::vector<uint64_t> baseline_;
  std::atomic<bool> failed_{false};
  mutable std::mutex mutex_;
  std::string error_;
};

// Connects to each server (ERR_RPC when one cannot be reached) and returns their devices in the
// order given. Blocking: call it off the JS thread.
std::vector<ggml_backend_dev_t> ConnectRpcServers(const std::vector<std::string>& endpoints, const RpcTimeouts& timeouts);
// The endpoint an RPC device belongs to ("" for a local device).
std::string RpcEndpointOf(ggml_backend_dev_t dev);
bool RpcAvailable();

// JS: rpcDevices(endpoints, { connectMs, callMs }) -> Promise<device[]>
Napi::Value RpcDevices(const Napi::CallbackInfo& info);
// JS: rpcServe({ host, port, devices, threads, cacheDir }): serves until the process ends.
// Blocks the calling thread; meant for a process of its own (lib/rpc/server-child.ts).
Napi::Value RpcServe(const Napi::CallbackInfo& info);

std::vector<std::string> ParseEndpoints(Napi::Env env, const Napi::Value& value);
RpcTimeouts ParseTimeouts(const Napi::Value& value);

}  // namespace llava
