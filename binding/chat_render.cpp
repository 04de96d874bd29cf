#include "chat_render.h"

#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "chat.h"  // llama.cpp's common/chat.h
#include "errors.h"
#include "jinja/runtime.h"
#include "model.h"
#include "promise_worker.h"

namespace llava {
namespace {

using json = common_json;

// Templates come from model files: untrusted code. llama.cpp's Jinja engine runs them with these
// bounds (deps/patches/0005): a time budget, a nesting depth that keeps recursion far from the
// thread's stack limit, and a size for any one string or list a step may build (real templates
// build prompts of kilobytes and lists of a few messages).
constexpr size_t kMaxDepth = 200;
constexpr size_t kMaxString = 32u << 20;
constexpr size_t kMaxItems = 1u << 20;

class ExecutionLimits {
 public:
  explicit ExecutionLimits(double timeoutMs) {
    jinja::execution_limits l;
    l.max_depth = kMaxDepth;
    l.max_string = kMaxString;
    l.max_items = kMaxItems;
    l.deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(static_cast<int64_t>(timeoutMs * 1000));
    jinja::set_execution_limits(l);
  }
  ~ExecutionLimits() { jinja::set_execution_limits({}); }
  ExecutionLimits(const ExecutionLimits&) = delete;
  ExecutionLimits& operator=(const ExecutionLimits&) = delete;
};

// A template parsed once, and what llama-server works out once per template.
struct ParsedTemplates {
  common_chat_templates_ptr templates;
  bool supportsThinking = false;
};

// Per model: the templates in use (the model's own under "", overrides by their source).
struct TemplateCache {
  std::mutex mutex;
  std::list<std::pair<std::string, std::shared_ptr<ParsedTemplates>>> entries;  // most recent first
};
constexpr size_t kCachedTemplates = 8;

std::shared_ptr<ParsedTemplates> TemplatesFor(ModelState& m, const std::string& source, double timeoutMs) {
  std::shared_ptr<TemplateCache> cache;
  {
    std::lock_guard<std::mutex> lock(m.chatMutex);
    if (!m.chatTemplates) m.chatTemplates = std::make_shared<TemplateCache>();
    cache = std::static_pointer_cast<TemplateCache>(m.chatTemplates);
  }
  std::lock_guard<std::mutex> lock(cache->mutex);
  for (auto it = cache->entries.begin(); it != cache->entries.end(); ++it) {
    if (it->first != source) continue;
    cache->entries.splice(cache->entries.begin(), cache->entries, it);
    return it->second;
  }
  auto parsed = std::make_shared<ParsedTemplates>();
  try {
    ExecutionLimits limits(timeoutMs);
    parsed->templates = common_chat_templates_init(m.model, source);
    // llama-server turns thinking on by default where the template supports it.
    parsed->supportsThinking = common_chat_templates_support_enable_thinking(parsed->templates.get());
  } catch (const std::exception& e) {
    Throw("ERR_CHAT_TEMPLATE", std::string("llama.cpp's chat layer cannot use this chat template: ") + e.what());
  }
  cache->entries.emplace_front(source, parsed);
  if (cache->entries.size() > kCachedTemplates) cache->entries.pop_back();
  return parsed;
}

const char* TriggerType(common_grammar_trigger_type t) {
  switch (t) {
    case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN: return "token";
    case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: return "word";
    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN: return "pattern";
    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: return "pattern_full";
  }
  return "word";
}

// The request as llama-server's oaicompat_chat_params_parse() turns an OpenAI request into
// common_chat_templates_inputs (tools/server/server-common.cpp), minus HTTP and media loading:
// media parts arrive as { type: 'media_marker', text: <marker> } already.
json Render(ModelState& m, const json& req, double timeoutMs) {
  const bool useJinja = req.value("use_jinja", true);
  const std::string source = req.contains("template") && req.at("template").is_string() ? req.at("template").get<std::string>() : "";
  std::shared_ptr<ParsedTemplates> parsed = TemplatesFor(m, source, timeoutMs);

  common_chat_templates_inputs inputs;
  try {
    inputs.messages = common_chat_msgs_parse_oaicompat(req.at("messages"));
    inputs.tools = common_chat_tools_parse_oaicompat(req.value("tools", json()));
    inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(req.value("tool_choice", std::string("auto")));
  } catch (const std::exception& e) {
    Throw("ERR_INVALID_ARGUMENT", std::string("llama.cpp's chat layer refused the messages: ") + e.what());
  }
  const auto caps = common_chat_templates_get_caps(parsed->templates.get());
  inputs.use_jinja = useJinja;
  inputs.parallel_tool_calls = req.contains("parallel_tool_calls") && req.at("parallel_tool_calls").is_boolean()
                                   ? req.at("parallel_tool_calls").get<bool>()
                                   : caps.at("supports_parallel_tool_calls");
  inputs.add_generation_prompt = true;
  // As llama-server (prefill_assistant, on by default): a conversation that ends with an assistant
  // message is continued, not answered.
  if (!inputs.messages.empty() && inputs.messages.back().role == "assistant") {
    if (inputs.messages.size() >= 2 && inputs.messages[inputs.messages.size() - 2].role == "assistant") {
      Throw("ERR_INVALID_ARGUMENT", "a conversation cannot end with two assistant messages");
    }
    if (!inputs.messages.back().tool_calls.empty()) {
      Throw("ERR_INVALID_ARGUMENT", "the last message is an assistant message with tool calls: add the tools' answers (role 'tool') before asking for the next turn");
    }
    inputs.continue_final_message = COMMON_CHAT_CONTINUATION_AUTO;
    inputs.add_generation_prompt = false;
  }
  inputs.reasoning_format = common_reasoning_format_from_name(req.value("reasoning_format", std::string("deepseek")));
  inputs.enable_thinking = useJinja && parsed->supportsThinking;
  if (req.contains("json_schema") && req.at("json_schema").is_object()) inputs.json_schema = req.at("json_schema").dump();
  if (req.contains("grammar") && req.at("grammar").is_string()) inputs.grammar = req.at("grammar").get<std::string>();
  if (req.contains("chat_template_kwargs") && req.at("chat_template_kwargs").is_object()) {
    for (const auto& item : req.at("chat_template_kwargs").items()) inputs.chat_template_kwargs[item.key()] = item.value().dump();
  }
  // As llama-server: the enable_thinking template variable, when given, decides; then our option.
  auto kw = inputs.chat_template_kwargs.find("enable_thinking");
  if (kw != inputs.chat_template_kwargs.end()) {
    if (kw->second == "true") inputs.enable_thinking = true;
    else if (kw->second == "false") inputs.enable_thinking = false;
  }
  if (req.contains("enable_thinking") && req.at("enable_thinking").is_boolean()) inputs.enable_thinking = req.at("enable_thinking").get<bool>();
  if (req.contains("reasoning_effort") && req.at("reasoning_effort").is_string()) {
    const std::string effort = req.at("reasoning_effort").get<std::string>();
    if (effort == "none") {
      inputs.enable_thinking = false;
      inputs.chat_template_kwargs.erase("reasoning_effort");
    } else if (!effort.empty()) {
      inputs.chat_template_kwargs["reasoning_effort"] = json(effort).dump();
    }
  }

  common_chat_params params;
  try {
    ExecutionLimits limits(timeoutMs);
    params = common_chat_templates_apply(parsed->templates.get(), inputs);
  } catch (const std::exception& e) {
    Throw("ERR_CHAT_TEMPLATE", std::string("the chat template could not be rendered: ") + e.what());
  }

  json out = {
      {"prompt", params.prompt},
      {"format", common_chat_format_name(params.format)},
      {"format_id", static_cast<int>(params.format)},
      {"grammar", params.grammar},
      {"grammar_lazy", params.grammar_lazy},
      {"generation_prompt", params.generation_prompt},
      {"supports_thinking", params.supports_thinking},
      {"enable_thinking", inputs.enable_thinking},
      {"thinking_start_tag", params.thinking_start_tag},
      {"thinking_end_tags", params.thinking_end_tags},
      {"preserved_tokens", params.preserved_tokens},
      {"additional_stops", params.additional_stops},
      {"parser", params.parser},
      {"parse_tool_calls", !inputs.tools.empty() && inputs.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE},
      {"caps", caps},
  };
  json triggers = json::array();
  for (const auto& t : params.grammar_triggers) triggers.push_back({{"type", TriggerType(t.type)}, {"value", t.value}, {"token", t.token}});
  out["grammar_triggers"] = triggers;
  return out;
}

class RenderWorker : public PromiseWorker {
 public:
  RenderWorker(Napi::Env env, ModelPtr model, std::string request, double timeoutMs)
      : PromiseWorker(env, "llava.renderChat", nullptr), model_(std::move(model)), request_(std::move(request)), timeoutMs_(timeoutMs) {}

 protected:
  void Run() override {
    json req;
    try {
      req = json::parse(request_);
    } catch (const std::exception& e) {
      Throw("ERR_INVALID_ARGUMENT", std::string("the chat request is not valid JSON: ") + e.what());
    }
    try {
      result_ = Render(*model_, req, timeoutMs_).dump();
    } catch (const NativeError&) {
      throw;
    } catch (const std::exception& e) {
      Throw("ERR_INVALID_ARGUMENT", std::string("the chat request was refused: ") + e.what());
    }
  }
  Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, result_); }

 private:
  ModelPtr model_;
  std::string request_;
  double timeoutMs_;
  std::string result_;
};

}  // namespace

Napi::Value RenderChat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[1].IsString() || !info[2].IsNumber()) {
    throw MakeError(env, "ERR_INVALID_ARGUMENT", "renderChat(model, requestJson, timeoutMs) expected");
  }
  ModelPtr model = Model::FromValue(env, info[0])->State(env);
  auto* w = new RenderWorker(env, std::move(model), info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Number>().DoubleValue());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace llava
