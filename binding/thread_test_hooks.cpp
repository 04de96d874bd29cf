// Test hooks for the CPU thread machinery (not part of the public API):
// - traceThreadGovernor(maxThreads, steps, cost[, tokens[, hintThreads, hintAgeSeconds]]): runs
//   the thread governor against a cost model instead of a machine, so that tests can check its
//   choices exactly. `cost(step, threads)` gives the seconds a step would take; the hint is what
//   another session of the model found. Returns the count chosen for every step.
// - flashAttentionDecode(nKv, threads, seed, kvHeads): one single-query flash-attention operation
//   (8 query heads of 64, `kvHeads` K/V heads, a causal-style mask) on seeded random data,
//   computed by ggml's CPU backend with `threads` threads; returns the inputs as the graph saw
//   them and the output, so that tests can check it against a reference and across thread counts.
#include "thread_test_hooks.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "errors.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "thread_governor.h"

namespace llava {

Napi::Value TraceThreadGovernor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsFunction()) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "traceThreadGovernor(maxThreads, steps, cost) expected");
  }
  const int32_t maxThreads = info[0].As<Napi::Number>().Int32Value();
  const int32_t steps = info[1].As<Napi::Number>().Int32Value();
  const int32_t tokens = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : 1;
  if (maxThreads < 1 || maxThreads > 1024 || steps < 0 || steps > 1000000 || tokens < 1) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "traceThreadGovernor: maxThreads 1..1024, steps 0..1e6, tokens >= 1");
  }
  Napi::Function cost = info[2].As<Napi::Function>();
  // Optionally, what another session of the model found, and how many seconds ago.
  ThreadHint hint;
  if (info.Length() > 4 && info[4].IsNumber()) {
    const double age = info.Length() > 5 && info[5].IsNumber() ? info[5].As<Napi::Number>().DoubleValue() : 0;
    hint.maxThreads = maxThreads;
    hint.threads = info[4].As<Napi::Number>().Int32Value();
    hint.atNs = ThreadHint::NowNs() - static_cast<int64_t>(age * 1e9);
  }
  ThreadGovernor governor(maxThreads, true, &hint);
  Napi::Int32Array out = Napi::Int32Array::New(env, static_cast<size_t>(steps));
  for (int32_t i = 0; i < steps; i++) {
    const int32_t threads = governor.Next(tokens);
    out[i] = threads;
    const double seconds = cost.Call({Napi::Number::New(env, i), Napi::Number::New(env, threads)}).As<Napi::Number>().DoubleValue();
    governor.Record(tokens, threads, seconds);
  }
  return out;
}

namespace {

struct GgmlContextFree {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
struct BackendFree {
  void operator()(ggml_backend* b) const { ggml_backend_free(b); }
};
struct BufferFree {
  void operator()(ggml_backend_buffer* b) const { ggml_backend_buffer_free(b); }
};

}  // namespace

Napi::Value FlashAttentionDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber()) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "flashAttentionDecode(nKv, threads, seed, kvHeads) expected");
  }
  const int64_t nKv = info[0].As<Napi::Number>().Int64Value();
  const int32_t threads = info[1].As<Napi::Number>().Int32Value();
  uint64_t state = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value()) * 0x9E3779B97F4A7C15ull + 1;
  const int64_t kvHeads = info[3].As<Napi::Number>().Int64Value();
  constexpr int64_t kDim = 64, kHeads = 8;
  if (nKv < 1 || nKv > 8192 || threads < 1 || threads > 64 || kvHeads < 1 || kHeads % kvHeads != 0) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "flashAttentionDecode: nKv 1..8192, threads 1..64, kvHeads dividing 8");
  }

  ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (dev == nullptr) throw MakeError(env, "ERR_INTERNAL", "no CPU backend");
  std::unique_ptr<ggml_backend, BackendFree> backend(ggml_backend_dev_init(dev, nullptr));
  auto setThreads = reinterpret_cast<void (*)(ggml_backend_t, int)>(
      ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev), "ggml_backend_set_n_threads"));
  if (!backend || setThreads == nullptr) throw MakeError(env, "ERR_INTERNAL", "the CPU backend cannot be set up");
  setThreads(backend.get(), threads);

  ggml_init_params ip = {ggml_tensor_overhead() * 8 + ggml_graph_overhead(), nullptr, true};
  std::unique_ptr<ggml_context, GgmlContextFree> ctx(ggml_init(ip));
  ggml_tensor* q = ggml_new_tensor_4d(ctx.get(), GGML_TYPE_F32, kDim, 1, kHeads, 1);
  ggml_tensor* k = ggml_new_tensor_4d(ctx.get(), GGML_TYPE_F16, kDim, nKv, kvHeads, 1);
  ggml_tensor* v = ggml_new_tensor_4d(ctx.get(), GGML_TYPE_F16, kDim, nKv, kvHeads, 1);
  // As llama.cpp's KV cache gives it: 0 for visible cells, -inf for the others.
  ggml_tensor* mask = ggml_new_tensor_4d(ctx.get(), GGML_TYPE_F16, nKv, 1, 1, 1);
  ggml_tensor* out = ggml_flash_attn_ext(ctx.get(), q, k, v, mask, 0.125f, 0.0f, 0.0f);
  ggml_cgraph* graph = ggml_new_graph(ctx.get());
  ggml_build_forward_expand(graph, out);
  std::unique_ptr<ggml_backend_buffer, BufferFree> buffer(ggml_backend_alloc_ctx_tensors(ctx.get(), backend.get()));
  if (!buffer) throw MakeError(env, "ERR_OUT_OF_MEMORY", "flashAttentionDecode: no memory for the tensors");

  auto next = [&state]() {  // uniform in [-1, 1)
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(state >> 11) / 4503599627370496.0 - 1.0);
  };
  Napi::Object result = Napi::Object::New(env);
  // Each input goes to the graph and, as the float values the graph sees, back to the caller.
  auto fill = [&](ggml_tensor* t, const char* name, auto value) {
    const size_t n = static_cast<size_t>(ggml_nelements(t));
    Napi::Float32Array seen = Napi::Float32Array::New(env, n);
    if (t->type == GGML_TYPE_F32) {
      for (size_t i = 0; i < n; i++) seen[i] = value(i);
      ggml_backend_tensor_set(t, seen.Data(), 0, ggml_nbytes(t));
    } else {
      std::vector<ggml_fp16_t> data(n);
      for (size_t i = 0; i < n; i++) {
        data[i] = ggml_fp32_to_fp16(value(i));
        seen[i] = ggml_fp16_to_fp32(data[i]);
      }
      ggml_backend_tensor_set(t, data.data(), 0, ggml_nbytes(t));
    }
    result.Set(name, seen);
  };
  fill(q, "q", [&](size_t) { return next() * 4.0f; });
  fill(k, "k", [&](size_t) { return next(); });
  fill(v, "v", [&](size_t) { return next(); });
  fill(mask, "mask", [&](size_t i) { return (i % 7 == 3 || static_cast<int64_t>(i) >= nKv - 5) ? -INFINITY : 0.0f; });
  if (ggml_backend_graph_compute(backend.get(), graph) != GGML_STATUS_SUCCESS) {
    throw MakeError(env, "ERR_INTERNAL", "flashAttentionDecode: the graph failed");
  }
  Napi::Float32Array o = Napi::Float32Array::New(env, static_cast<size_t>(ggml_nelements(out)));
  ggml_backend_tensor_get(out, o.Data(), 0, ggml_nbytes(out));
  result.Set("out", o);
  return result;
}

}  // namespace llava
