// Reference for the chat tests: a conversation rendered by llama-server's own request path
// (oaicompat_chat_params_parse in tools/server/server-common.cpp), compiled from the same tree.
// Reads one JSON object per line on stdin:
//   { "template": <Jinja source or null for the model's>, "body": <OpenAI chat request> }
// and writes one JSON line per request: the server's llama_params, or { "error": message }.
// Usage: llama-chat-render <model.gguf>   (the model is loaded vocab-only, for its template and tokens)
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "chat.h"
#include "common.h"
#include "llama.h"
#include "log.h"
#include "server-common.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <model.gguf>\n", argv[0]);
    return 2;
  }
  common_log_set_verbosity_thold(-1);
  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.vocab_only = true;
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    fprintf(stderr, "cannot load %s\n", argv[1]);
    return 1;
  }
  std::map<std::string, common_chat_templates_ptr> cache;
  std::string line;
  while (std::getline(std::cin, line)) {
    json out;
    try {
      json req = json::parse(line);
      std::string tmpl = req.contains("template") && req.at("template").is_string() ? req.at("template").get<std::string>() : "";
      auto it = cache.find(tmpl);
      if (it == cache.end()) it = cache.emplace(tmpl, common_chat_templates_init(model, tmpl)).first;
      // As llama-server sets these up at start (server-context.cpp) with its default flags.
      server_chat_params opt;
      opt.use_jinja = true;
      opt.prefill_assistant = true;
      opt.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;
      opt.tmpls = common_chat_templates_ptr(nullptr);
      opt.allow_image = true;
      opt.allow_audio = true;
      opt.allow_video = false;
      opt.enable_thinking = common_chat_templates_support_enable_thinking(it->second.get());
      // server_chat_params owns its templates; lend ours for the call.
      opt.tmpls.reset(it->second.release());
      std::vector<raw_buffer> files;
      json body = req.at("body");
      try {
        out = oaicompat_chat_params_parse(body, opt, files);
        out["n_files"] = files.size();
      } catch (const std::exception& e) {
        out = {{"error", e.what()}};
      }
      it->second.reset(opt.tmpls.release());
    } catch (const std::exception& e) {
      out = {{"error", std::string("reference: ") + e.what()}};
    }
    std::cout << out.dump() << "\n" << std::flush;
  }
  llama_model_free(model);
  return 0;
}
