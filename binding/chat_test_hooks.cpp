#include "chat_test_hooks.h"

#include <string>
#include <vector>

#include "chat_spec.h"
#include "common.h"
#include "errors.h"
#include "model.h"
#include "sampler.h"
#include "text_stream.h"

namespace llava {

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
      const size_t safe = CompleteUtf8Prefix(text.data(), n);
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
  Napi::Object out = ChatMessageToJs(env, msg);
  out.Set("streamed", ChatMessageToJs(env, streamed));
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
