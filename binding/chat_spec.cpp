#include "chat_spec.h"

#include <algorithm>

#include "js_number.h"

namespace llava {
namespace {

std::string Str(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

std::vector<std::string> Strings(const Napi::Object& o, const char* key) {
  std::vector<std::string> out;
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) return out;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).ToString().Utf8Value());
  return out;
}

}  // namespace

// What lib/chat passes on from renderChat's result (binding/chat_render.cpp).
std::shared_ptr<const ChatSpec> ParseChatSpec(const Napi::Object& o) {
  auto spec = std::make_shared<ChatSpec>();
  spec->parser = Str(o, "parser");
  spec->format = static_cast<int>(Num(o, "format", 0));
  spec->generationPrompt = Str(o, "generationPrompt");
  spec->reasoningFormat = Str(o, "reasoningFormat");
  if (spec->reasoningFormat.empty()) spec->reasoningFormat = "deepseek";
  spec->parseToolCalls = o.Get("parseToolCalls").ToBoolean().Value();
  spec->preservedTokens = Strings(o, "preservedTokens");
  spec->grammarLazy = o.Get("grammarLazy").ToBoolean().Value();
  spec->grammarPrefill = o.Get("grammarPrefill").ToBoolean().Value();
  Napi::Value triggers = o.Get("triggers");
  if (triggers.IsArray()) {
    Napi::Array a = triggers.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      if (!a.Get(i).IsObject()) continue;
      Napi::Object t = a.Get(i).As<Napi::Object>();
      spec->triggers.push_back({Str(t, "type"), Str(t, "value"), static_cast<llama_token>(Num(t, "token", -1))});
    }
  }
  spec->thinkingStartTag = Str(o, "thinkingStartTag");
  spec->thinkingEndTags = Strings(o, "thinkingEndTags");
  spec->reasoningBudget = static_cast<int32_t>(std::max(-1.0, std::min(1e9, Num(o, "reasoningBudget", -1))));
  spec->reasoningBudgetMessage = Str(o, "reasoningBudgetMessage");
  return spec;
}

Napi::Object ChatMessageToJs(Napi::Env env, const ChatMessage& m) {
  Napi::Object msg = Napi::Object::New(env);
  msg.Set("content", Napi::String::New(env, m.content));
  msg.Set("reasoning", Napi::String::New(env, m.reasoning));
  Napi::Array calls = Napi::Array::New(env, m.toolCalls.size());
  for (size_t i = 0; i < m.toolCalls.size(); i++) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("id", Napi::String::New(env, m.toolCalls[i].id));
    c.Set("name", Napi::String::New(env, m.toolCalls[i].name));
    c.Set("arguments", Napi::String::New(env, m.toolCalls[i].arguments));
    calls.Set(static_cast<uint32_t>(i), c);
  }
  msg.Set("toolCalls", calls);
  if (!m.parseError.empty()) msg.Set("parseError", Napi::String::New(env, m.parseError));
  return msg;
}

}  // namespace llava
