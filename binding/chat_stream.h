#pragma once
// The answer side of a chat rendered by llama.cpp's chat layer (chat_render.h): what the
// rendering said about constraining and parsing the answer, applied to one generation. The
// sampling part (tool-call grammar triggers, the generation prompt fed to the grammar, the
// reasoning budget) follows common/sampling.cpp; the parsing part runs llama.cpp's parser over the
// text as it grows, as llama-server does, so that streamed pieces say whether they are reasoning,
// answer or a tool call.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "llama.h"
#include "sampler.h"

namespace llava {

struct ChatTriggerSpec {
  std::string type;  // token | word | pattern | pattern_full
  std::string value;
  llama_token token = -1;
};

struct ChatSpec {
  std::string parser;  // llama.cpp's serialized PEG parser; empty = the whole text is the answer
  int format = 0;      // common_chat_format
  std::string generationPrompt;
  std::string reasoningFormat = "deepseek";
  bool parseToolCalls = false;
  std::vector<std::string> preservedTokens;
  bool grammarLazy = false;
  bool grammarPrefill = false;  // the grammar was written by the chat layer and starts at the generation prompt
  std::vector<ChatTriggerSpec> triggers;
  std::string thinkingStartTag;
  std::vector<std::string> thinkingEndTags;
  int32_t reasoningBudget = -1;  // tokens; -1 = unlimited
  std::string reasoningBudgetMessage;
};

struct ChatDelta {
  enum Kind { kContent, kReasoning, kToolCall } kind = kContent;
  std::string text;  // content or reasoning text; a tool call's arguments text
  int32_t toolIndex = -1;
  std::string toolId;
  std::string toolName;
};

struct ChatToolCall {
  std::string id;
  std::string name;
  std::string arguments;
};

struct ChatMessage {
  bool present = false;
  std::string content;
  std::string reasoning;
  std::vector<ChatToolCall> toolCalls;
  std::string parseError;  // the final parse failed; content and calls are those of the lenient parse
};

// Fills the sampling parameters the chat layer asks for; returns the tokens to detokenize as
// their text (special tokens the parser needs to see, such as <tool_call>).
std::unordered_set<llama_token> ApplyChatSampling(const llama_vocab* vocab, const ChatSpec& spec, SamplingParams& p);

// Tokens whose pieces spell `text` exactly, or none when the vocabulary cannot.
std::vector<llama_token> TokensSpelling(const llama_vocab* vocab, const std::string& text);

class ChatStream {
 public:
  explicit ChatStream(const ChatSpec& spec);
  ~ChatStream();
  ChatStream(const ChatStream&) = delete;
  ChatStream& operator=(const ChatStream&) = delete;

  // Adds generated text; returns what the answer gained, by kind.
  std::vector<ChatDelta> Push(const std::string& text);
  // The message of the whole text. `complete`: the model ended it (not a limit or an abort).
  ChatMessage Finish(bool complete);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace llava
