#include "chat_stream.h"

#include <cctype>
#include <algorithm>
#include <climits>
#include <random>

#include "chat.h"  // llama.cpp's common/chat.h
#include "common.h"
#include "errors.h"

namespace llava {
namespace {

std::vector<llama_token> Tokenize(const llama_vocab* vocab, const std::string& text) {
  return common_tokenize(vocab, text, /*add_special=*/false, /*parse_special=*/true);
}

// As llama-server's gen_tool_call_id(): 32 random letters and digits.
std::string NewToolCallId() {
  static const char kChars[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937 gen{std::random_device{}()};
  std::string id(32, ' ');
  for (auto& c : id) c = kChars[gen() % (sizeof(kChars) - 1)];
  return id;
}

std::string Spelled(const llama_vocab* vocab, const std::vector<llama_token>& ids, size_t from = 0) {
  std::string out;
  for (size_t i = from; i < ids.size(); i++) out += common_token_to_piece(vocab, ids[i], true);
  return out;
}

// common/sampling.cpp's prefill tokens: the generation prompt tokenized, without a first token
// that is only there because some tokenizers put a space before a leading special token.
std::vector<llama_token> PrefillTokens(const llama_vocab* vocab, const std::string& text) {
  std::vector<llama_token> out;
  if (text.empty()) return out;
  auto ids = Tokenize(vocab, text);
  for (size_t i = 0; i < ids.size(); i++) {
    std::string piece = common_token_to_piece(vocab, ids[i], true);
    if (i == 0 && !piece.empty() && std::isspace(static_cast<unsigned char>(piece[0])) && !std::isspace(static_cast<unsigned char>(text[0]))) {
      continue;
    }
    out.push_back(ids[i]);
  }
  return out;
}

}  // namespace

// A SentencePiece vocabulary that adds a space prefix turns "ASSISTANT:" into "▁A" "SS" …: tokens
// that spell " ASSISTANT:". Tokenized after a newline instead, the text keeps tokens of its own.
std::vector<llama_token> TokensSpelling(const llama_vocab* vocab, const std::string& text) {
  auto ids = Tokenize(vocab, text);
  if (Spelled(vocab, ids) == text) return ids;
  ids = Tokenize(vocab, "\n" + text);
  for (size_t k = 0; k < ids.size(); k++) {
    if (Spelled(vocab, ids, k) == text) return std::vector<llama_token>(ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end());
  }
  return {};
}

std::unordered_set<llama_token> ApplyChatSampling(const llama_vocab* vocab, const ChatSpec& spec, SamplingParams& p) {
  // Preserved tokens: single tokens the parser must see as text (llama-server's accept_special_token).
  std::unordered_set<llama_token> preserved;
  for (const auto& t : spec.preservedTokens) {
    auto ids = Tokenize(vocab, t);
    if (ids.size() == 1) preserved.insert(ids[0]);
  }
  if (!p.grammar.empty()) {
    p.grammarLazy = spec.grammarLazy;
    // Trigger words that are one preserved token trigger on that token, others by pattern
    // (tools/server/server-schema.cpp and common/sampling.cpp).
    for (const auto& t : spec.triggers) {
      if (t.type == "word") {
        auto ids = Tokenize(vocab, t.value);
        if (ids.size() == 1 && preserved.count(ids[0])) {
          p.triggerTokens.push_back(ids[0]);
        } else {
          p.triggerPatterns.push_back(regex_escape(t.value));
        }
      } else if (t.type == "token") {
        if (t.token >= 0 && t.token < llama_vocab_n_tokens(vocab)) p.triggerTokens.push_back(t.token);
      } else if (t.type == "pattern") {
        p.triggerPatterns.push_back(t.value);
      } else if (t.type == "pattern_full") {
        const std::string& v = t.value;
        p.triggerPatterns.push_back(v.empty() ? "^$" : (v.front() != '^' ? "^" : "") + v + (v.back() != '$' ? "$" : ""));
      }
    }
    if (p.grammarLazy && p.triggerTokens.empty() && p.triggerPatterns.empty()) {
      Throw("ERR_CHAT_TEMPLATE", "the chat layer asked for a lazy grammar without triggers");
    }
  }
  // The generation prompt, as tokens the template already placed in the prompt: the grammar and
  // the reasoning budget start from after them.
  std::vector<llama_token> prefill = PrefillTokens(vocab, spec.generationPrompt);
  // The grammar reads text: it needs tokens whose pieces spell the generation prompt exactly (a
  // vicuna-style template's "ASSISTANT:" with a response format, on a SentencePiece vocabulary).
  if (!p.grammar.empty() && !p.grammarLazy && spec.grammarPrefill) {
    auto exact = Spelled(vocab, prefill) == spec.generationPrompt ? prefill : TokensSpelling(vocab, spec.generationPrompt);
    p.grammarPrefill = exact.empty() ? prefill : exact;
  }

  // The reasoning budget: llama-server creates it when the template has thinking tags and a budget
  // is set, or a lazy grammar must stay quiet while the model thinks.
  if (!spec.thinkingStartTag.empty() && !spec.thinkingEndTags.empty() && (p.grammarLazy || spec.reasoningBudget >= 0)) {
    // The tags as the model writes them: llama-server tokenizes them alone, which on a vocabulary
    // where a tag is several tokens (and SentencePiece adds a space prefix) gives other tokens
    // than the same tag in generated text; where a tag is one special token, both agree.
    auto tagTokens = [&](const std::string& tag) {
      auto exact = TokensSpelling(vocab, tag);
      return exact.empty() ? Tokenize(vocab, tag) : exact;
    };
    p.budgetStart = tagTokens(spec.thinkingStartTag);
    for (const auto& tag : spec.thinkingEndTags) {
      if (!tag.empty()) p.budgetEnd.push_back(tagTokens(tag));
    }
    if (!p.budgetStart.empty() && !p.budgetEnd.empty()) {
      p.budget = true;
      p.budgetForced = p.budgetEnd.front();
      if (!spec.reasoningBudgetMessage.empty()) {
        auto msg = tagTokens(spec.reasoningBudgetMessage);
        p.budgetForced.insert(p.budgetForced.begin(), msg.begin(), msg.end());
      }
      p.budgetTokens = spec.reasoningBudget < 0 ? INT_MAX : spec.reasoningBudget;
      // The generation prompt up to the end of its opening tag: tokens the template writes after
      // the tag ("<think>\n") are not the model's thinking, and would take a forced position from
      // a budget of 0 (llama-server feeds them all; its budget of N then lets the model write N-1).
      p.budgetPrefill = prefill;
      const auto& tag = p.budgetStart;
      for (size_t end = prefill.size(); end >= tag.size() && end > 0; end--) {
        if (std::equal(tag.begin(), tag.end(), prefill.begin() + static_cast<std::ptrdiff_t>(end - tag.size()))) {
          p.budgetPrefill.assign(prefill.begin(), prefill.begin() + static_cast<std::ptrdiff_t>(end));
          break;
        }
      }
    }
  }
  return preserved;
}

struct ChatStream::Impl {
  common_chat_parser_params params;
  std::string text;
  common_chat_msg msg;
  std::vector<std::string> ids;
};

ChatStream::ChatStream(const ChatSpec& spec) : impl_(std::make_unique<Impl>()) {
  auto& pp = impl_->params;
  pp.format = static_cast<common_chat_format>(spec.format);
  pp.generation_prompt = spec.generationPrompt;
  pp.reasoning_format = common_reasoning_format_from_name(spec.reasoningFormat);
  pp.parse_tool_calls = spec.parseToolCalls;
  if (!spec.parser.empty()) pp.parser.load(spec.parser);
}

ChatStream::~ChatStream() = default;

std::vector<ChatDelta> ChatStream::Push(const std::string& text) {
  std::vector<ChatDelta> out;
  Impl& s = *impl_;
  s.text += text;
  common_chat_msg next;
  std::vector<common_chat_msg_diff> diffs;
  try {
    next = common_chat_parse(s.text, /*is_partial=*/true, s.params);
    if (next.empty()) return out;
    next.set_tool_call_ids(s.ids, NewToolCallId);
    diffs = common_chat_msg_diff::compute_diffs(s.msg, next);
  } catch (const std::exception&) {
    // The partial text does not parse yet, or a parse took back what an earlier one found (text
    // that turned out to open a tool call): say nothing until a later parse extends the last one.
    return out;
  }
  s.msg = std::move(next);
  for (auto& d : diffs) {
    if (!d.reasoning_content_delta.empty()) out.push_back({ChatDelta::kReasoning, std::move(d.reasoning_content_delta)});
    if (!d.content_delta.empty()) out.push_back({ChatDelta::kContent, std::move(d.content_delta)});
    if (d.tool_call_index != std::string::npos) {
      ChatDelta t;
      t.kind = ChatDelta::kToolCall;
      t.toolIndex = static_cast<int32_t>(d.tool_call_index);
      t.toolId = d.tool_call_delta.id;
      t.toolName = d.tool_call_delta.name;
      t.text = d.tool_call_delta.arguments;
      out.push_back(std::move(t));
    }
  }
  return out;
}

ChatMessage ChatStream::Finish(bool complete) {
  Impl& s = *impl_;
  ChatMessage out;
  out.present = true;
  common_chat_msg msg;
  try {
    msg = common_chat_parse(s.text, /*is_partial=*/!complete, s.params);
  } catch (const std::exception& e) {
    // llama-server answers an error here; the answer is worth more to a caller than an error:
    // the lenient parse's message, with the reason.
    out.parseError = e.what();
    try {
      msg = common_chat_parse(s.text, /*is_partial=*/true, s.params);
    } catch (const std::exception&) {
      msg = common_chat_msg();
      msg.content = s.text;
    }
  }
  msg.set_tool_call_ids(s.ids, NewToolCallId);
  out.content = msg.content;
  out.reasoning = msg.reasoning_content;
  for (const auto& t : msg.tool_calls) out.toolCalls.push_back({t.id, t.name, t.arguments});
  return out;
}

}  // namespace llava
