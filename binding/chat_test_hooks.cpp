#include "chat_test_hooks.h"

#include <string>
#include <vector>

#include "chat_spec.h"
#include "common.h"
#include "errors.h"
#include "model.h"
#include "sampler.h"

namespace llava {
namespace {

Napi::Array Calls(Napi::Env env, const std::vector<ChatToolCall>& calls) {
  Napi::Array out = Napi::Array::New(env, calls.size());
  for (size_t i = 0; i < calls.size(); i++) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("id", calls[i].id);
    c.Set("name", calls[i].name);
    c.Set("arguments", calls[i].arguments);
    out.Set(static_cast<uint32_t>(i), c);
  }
  return out;
}

// Length of the longest prefix of s[0, n) that does not end inside a UTF-8 character.
size_t Utf8Safe(const std::string& s, size_t n) {
  size_t i = n;
  while (i > 0 && i > n - std::min<size_t>(n, 3) && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) i--;
  if (i == 0) return n;
  unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  size_t need = (lead & 0x80) == 0 ? 1 : (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 1;
  return n - (i - 1) >= need ? n : i - 1;
}

}  // namespace

Napi::Value ChatParseStreamed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsString()) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "chatParseStreamed(spec, text) expected");
  }
  auto spec = ParseChatSpec(info[0].As<Napi::Object>());
  const std::string text = info[1].As<Napi::String>().Utf8Value();
  ChatMessage streamed;
  ChatMessage msg;
  try {
    ChatStream stream(*spec);
    size_t sent = 0;
    for (size_t n = 1; n <= text.size(); n++) {
      const size_t safe = Utf8Safe(text, n);
      if (safe <= sent) continue;
      for (auto& d : stream.Push(text.substr(sent, safe - sent))) {
        if (d.kind == ChatDelta::kContent) streamed.content += d.text;
        if (d.kind == ChatDelta::kReasoning) streamed.reasoning += d.text;
        if (d.kind == ChatDelta::kToolCall) {
          if (streamed.toolCalls.size() <= static_cast<size_t>(d.toolIndex)) streamed.toolCalls.resize(static_cast<size_t>(d.toolIndex) + 1);
          ChatToolCall& c = streamed.toolCalls[static_cast<size_t>(d.toolIndex)];
          if (!d.toolName.empty()) c.name = d.toolName;
          if (!d.toolId.empty()) c.id = d.toolId;
          c.arguments += d.text;
        }
      }
      sent = safe;
    }
    msg = stream.Finish(true);
  } catch (const std::exception& e) {
    throw MakeError(env, "ERR_INTERNAL", e.what());
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("content", msg.content);
  out.Set("reasoning", msg.reasoning);
  out.Set("toolCalls", Calls(env, msg.toolCalls));
  if (!msg.parseError.empty()) out.Set("parseError", msg.parseError);
  Napi::Object s = Napi::Object::New(env);
  s.Set("content", streamed.content);
  s.Set("reasoning", streamed.reasoning);
  s.Set("toolCalls", Calls(env, streamed.toolCalls));
  out.Set("streamed", s);
  return out;
}

Napi::Value ChatGrammarAccepts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[1].IsObject() || !info[2].IsString() || !info[3].IsString()) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "chatGrammarAccepts(model, spec, grammar, text) expected");
  }
  ModelPtr model = Model::FromValue(env, info[0])->State(env);
  auto spec = ParseChatSpec(info[1].As<Napi::Object>());
  const llama_vocab* vocab = model->vocab();
  SamplingParams p;
  p.temperature = 0;
  p.grammar = info[2].As<Napi::String>().Utf8Value();
  Napi::Object out = Napi::Object::New(env);
  llama_sampler* smpl = nullptr;
  size_t n = 0;
  try {
    ApplyChatSampling(vocab, *spec, p);
    smpl = BuildSampler(vocab, p);
    const std::string text = info[3].As<Napi::String>().Utf8Value();
    auto tokens = TokensSpelling(vocab, text);
    // Whether the model's tokens can spell the text exactly.
    out.Set("roundTrip", !tokens.empty());
    for (; n < tokens.size(); n++) llama_sampler_accept(smpl, tokens[n]);
    out.Set("accepted", true);
  } catch (const std::exception& e) {
    out.Set("accepted", false);
    out.Set("error", e.what());
  }
  out.Set("tokens", static_cast<double>(n));
  if (smpl) llama_sampler_free(smpl);
  return out;
}

}  // namespace llava
