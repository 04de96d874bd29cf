#include "session.h"

#include <functional>
#include <mutex>

#include "abort_handle.h"
#include "chat_spec.h"
#include "addon_data.h"
#include "batched_callback.h"
#include "embedding.h"
#include "errors.h"
#include "js_number.h"
#include "generation.h"
#include "session_file.h"
#include "session_group.h"
#include "model.h"
#include "promise_worker.h"

namespace llava {
namespace {

Napi::Object ChoiceToJs(Napi::Env env, const TokenChoice& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("token", c.token);
  o.Set("logit", static_cast<double>(c.logit));
  o.Set("logprob", c.logprob);
  return o;
}

Napi::Array LogprobsToJs(Napi::Env env, const std::vector<TokenLogprob>& list) {
  Napi::Array arr = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); i++) {
    Napi::Object o = ChoiceToJs(env, list[i].chosen);
    Napi::Array top = Napi::Array::New(env, list[i].top.size());
    for (size_t k = 0; k < list[i].top.size(); k++) top.Set(static_cast<uint32_t>(k), ChoiceToJs(env, list[i].top[k]));
    o.Set("top", top);
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

void Deliver(Napi::Env env, Napi::Function fn, std::vector<StreamPiece> pieces) {
  if (pieces.empty()) return;
  Napi::Array arr = Napi::Array::New(env, pieces.size());
  for (size_t i = 0; i < pieces.size(); i++) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("text", Napi::String::New(env, pieces[i].text));
    Napi::Array toks = Napi::Array::New(env, pieces[i].tokens.size());
    for (size_t k = 0; k < pieces[i].tokens.size(); k++) toks.Set(static_cast<uint32_t>(k), pieces[i].tokens[k]);
    p.Set("tokens", toks);
    if (!pieces[i].logprobs.empty()) p.Set("logprobs", LogprobsToJs(env, pieces[i].logprobs));
    if (!pieces[i].deltas.empty()) {
      Napi::Array deltas = Napi::Array::New(env, pieces[i].deltas.size());
      for (size_t k = 0; k < pieces[i].deltas.size(); k++) {
        const ChatDelta& d = pieces[i].deltas[k];
        Napi::Object o = Napi::Object::New(env);
        o.Set("kind", d.kind == ChatDelta::kReasoning ? "reasoning" : d.kind == ChatDelta::kToolCall ? "toolCall" : "text");
        o.Set("text", Napi::String::New(env, d.text));
        if (d.kind == ChatDelta::kToolCall) {
          o.Set("index", d.toolIndex);
          o.Set("id", Napi::String::New(env, d.toolId));
          o.Set("name", Napi::String::New(env, d.toolName));
        }
        deltas.Set(static_cast<uint32_t>(k), o);
      }
      p.Set("deltas", deltas);
    }
    arr.Set(static_cast<uint32_t>(i), p);
  }
  fn.Call({arr});
}

class GenerateWorker : public PromiseWorker {
 public:
  GenerateWorker(Napi::Env env, SessionPtr session, GenerateRequest req, AbortFlag abort, Napi::Value onPieces)
      : PromiseWorker(env, "llava.generate", abort),
        session_(std::move(session)),
        req_(std::move(req)),
        abort_(std::move(abort)),
        pieces_(env, onPieces, "llava.tokens", &Deliver) {
    GuardRpc(session_->model->rpc);
  }

 protected:
  void Run() override {
    if (session_->busy.exchange(true)) {
      Throw("ERR_BUSY", "this session is already generating; wait for the running call or use another session");
    }
    struct BusyReset {
      std::atomic<bool>& b;
      ~BusyReset() { b.store(false); }
    } busyReset{session_->busy};
    std::lock_guard<std::mutex> lock(session_->mutex);
    result_ = RunGeneration(*session_, req_, *abort_, [this](StreamPiece&& p) { pieces_.Push(std::move(p)); });
  }

  void Flush(Napi::Env env) override { pieces_.Flush(env); }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("text", Napi::String::New(env, result_.text));
    Napi::Int32Array toks = Napi::Int32Array::New(env, result_.tokens.size());
    for (size_t i = 0; i < result_.tokens.size(); i++) toks[i] = result_.tokens[i];
    out.Set("tokens", toks);
    if (req_.logprobs >= 0) out.Set("logprobs", LogprobsToJs(env, result_.logprobs));
    out.Set("stopReason", result_.stopReason);
    out.Set("promptTokens", result_.promptTokens);
    out.Set("reusedTokens", result_.reusedTokens);
    out.Set("sharedDecodes", result_.sharedDecodes);
    out.Set("imageEncodes", result_.imageEncodes);
    out.Set("imageEncodeMs", result_.imageEncodeMs);
    out.Set("promptMs", result_.promptMs);
    out.Set("imagePrefillMs", result_.imagePrefillMs);
    out.Set("generatedTokens", result_.generatedTokens);
    out.Set("generateMs", result_.generateMs);
    if (result_.message.present) out.Set("message", ChatMessageToJs(env, result_.message));
    return out;
  }

 private:
  SessionPtr session_;
  GenerateRequest req_;
  AbortFlag abort_;
  BatchedCallback<StreamPiece> pieces_;
  GenerateResult result_;
};

// Runs one blocking task (save, load) on the session, with the same exclusion as generation.
class SessionTaskWorker : public PromiseWorker {
 public:
  SessionTaskWorker(Napi::Env env, const char* name, SessionPtr session, std::function<void(SessionState&)> task)
      : PromiseWorker(env, name, nullptr), session_(std::move(session)), task_(std::move(task)) {
    GuardRpc(session_->model->rpc);
  }

 protected:
  void Run() override {
    if (session_->busy.exchange(true)) Throw("ERR_BUSY", "this session is busy; wait for the running call");
    struct BusyReset {
      std::atomic<bool>& b;
      ~BusyReset() { b.store(false); }
    } busyReset{session_->busy};
    std::lock_guard<std::mutex> lock(session_->mutex);
    task_(*session_);
  }

 private:
  SessionPtr session_;
  std::function<void(SessionState&)> task_;
};

}  // namespace

Napi::Function Session::Define(Napi::Env env) {
  return DefineClass(env, "Session",
                     {InstanceMethod<&Session::Generate>("generate"), InstanceMethod<&Session::Reset>("reset"),
                      InstanceMethod<&Session::CacheInfo>("cacheInfo"), InstanceMethod<&Session::Save>("save"),
                      InstanceMethod<&Session::Load>("load"), InstanceMethod<&Session::Dispose>("dispose")});
}

Session::Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsObject()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "Session(model, params[, group]) expected");
  ModelPtr model = Model::FromValue(env, info[0])->State(env);
  if (model->vocabOnly) throw MakeError(env, "ERR_INVALID_ARGUMENT", "the model was loaded with vocabOnly: it has a tokenizer and a chat template but no weights to run; load it without vocabOnly to generate");
  auto s = std::make_shared<SessionState>();
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    ContextPtr group = SessionGroup::FromValue(env, info[2])->State(env);
    if (group->model() != model) throw MakeError(env, "ERR_INVALID_ARGUMENT", "the session group belongs to another model");
    const int32_t seq = group->ClaimSequence();
    if (seq < 0) {
      throw MakeError(env, "ERR_GROUP_FULL",
                      "all " + std::to_string(group->sequences()) + " sessions of this group are in use; dispose one, or create the group with more sessions");
    }
    s->context = std::move(group);
    s->seq = seq;
  } else {
    s->context = std::make_shared<ContextState>(model, ParseSessionParams(info[1].As<Napi::Object>()), 1);
  }
  s->model = std::move(model);
  state_ = std::move(s);
}

SessionPtr Session::State(Napi::Env env) const {
  if (!state_) throw MakeError(env, "ERR_DISPOSED", "the session has been disposed; create a new one with model.createSession()");
  return state_;
}

Napi::Value Session::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SessionPtr s = State(env);
  if (info.Length() < 1 || !info[0].IsObject()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "generate() expects a request object");
  Napi::Object o = info[0].As<Napi::Object>();
  GenerateRequest req;
  req.prompt = o.Get("prompt").ToString().Utf8Value();
  req.media = ParseMediaSources(env, o.Get("images"), s->model);
  req.addSpecial = o.Get("addSpecial").ToBoolean().Value();
  req.parseSpecial = o.Get("parseSpecial").ToBoolean().Value();
  req.reuseCache = o.Get("reuseCache").ToBoolean().Value();
  req.maxTokens = static_cast<int32_t>(std::max(0.0, std::min(1e9, Num(o, "maxTokens", 256))));
  if (o.Get("logprobs").IsNumber()) req.logprobs = static_cast<int32_t>(std::max(0.0, std::min(1e6, Num(o, "logprobs", 0))));
  Napi::Value stop = o.Get("stop");
  if (stop.IsArray()) {
    Napi::Array arr = stop.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) req.stop.push_back(arr.Get(i).ToString().Utf8Value());
  }
  SamplingParams& sp = req.sampling;
  sp.temperature = static_cast<float>(Num(o, "temperature", sp.temperature));
  sp.topK = static_cast<int32_t>(Num(o, "topK", sp.topK));
  sp.topP = static_cast<float>(Num(o, "topP", sp.topP));
  sp.minP = static_cast<float>(Num(o, "minP", sp.minP));
  sp.repeatPenalty = static_cast<float>(Num(o, "repeatPenalty", sp.repeatPenalty));
  sp.repeatLastN = static_cast<int32_t>(Num(o, "repeatLastN", sp.repeatLastN));
  sp.frequencyPenalty = static_cast<float>(Num(o, "frequencyPenalty", sp.frequencyPenalty));
  sp.presencePenalty = static_cast<float>(Num(o, "presencePenalty", sp.presencePenalty));
  sp.seed = static_cast<uint32_t>(Num(o, "seed", sp.seed));
  Napi::Value grammar = o.Get("grammar");
  if (grammar.IsString()) sp.grammar = grammar.As<Napi::String>().Utf8Value();
  Napi::Value chat = o.Get("chat");
  if (chat.IsObject()) req.chat = ParseChatSpec(chat.As<Napi::Object>());

  auto* worker = new GenerateWorker(env, s, std::move(req), AbortHandle::From(info[1]), info.Length() > 2 ? info[2] : env.Undefined());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// Only the record is cleared here, on the JS thread: the context may be decoding for another
// session of its group. The sequence's cells are removed by the next generation (which then
// finds nothing to reuse) or trimmed by save().
Napi::Value Session::Reset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SessionPtr s = State(env);
  if (s->busy.load()) throw MakeError(env, "ERR_BUSY", "reset() while the session is generating; wait for it to finish");
  std::lock_guard<std::mutex> lock(s->mutex);
  s->cached.clear();
  s->held.clear();
  s->nPast = 0;
  s->nCells = 0;
  return env.Undefined();
}

Napi::Value Session::CacheInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SessionPtr s = State(env);
  std::unique_lock<std::mutex> lock(s->mutex, std::try_to_lock);
  if (!lock.owns_lock()) throw MakeError(env, "ERR_BUSY", "cacheInfo() while the session is generating");
  Napi::Object out = Napi::Object::New(env);
  out.Set("cachedItems", static_cast<double>(s->cached.size()));
  out.Set("positions", s->nPast);
  out.Set("cells", s->nCells);
  out.Set("contextSize", static_cast<double>(s->context->SequenceContext()));
  return out;
}

// save(path) / load(path): the file work runs on a worker thread, excluded from generation.
Napi::Value Session::FileTask(const Napi::CallbackInfo& info, const char* name, void (*task)(SessionState&, const std::string&)) {
  Napi::Env env = info.Env();
  SessionPtr s = State(env);
  if (info.Length() < 1 || !info[0].IsString()) throw MakeError(env, "ERR_INVALID_ARGUMENT", std::string(name) + " expects a file path");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto* w = new SessionTaskWorker(env, name, s, [path, task](SessionState& st) { task(st, path); });
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value Session::Save(const Napi::CallbackInfo& info) { return FileTask(info, "llava.saveSession", &SaveSession); }

Napi::Value Session::Load(const Napi::CallbackInfo& info) { return FileTask(info, "llava.loadSession", &LoadSession); }

Napi::Value Session::Dispose(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

}  // namespace llava
