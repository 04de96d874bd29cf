// JSON Schema -> GBNF with llama.cpp's own converter (common/json-schema-to-grammar), the one its
// server uses for response_format, so that a schema constrains answers exactly as there.
#include "json_schema.h"

#include <string>
#include <vector>

#include "errors.h"
#include "json-schema-to-grammar.h"
#include "promise_worker.h"

namespace llava {

namespace {

class SchemaWorker : public PromiseWorker {
 public:
  SchemaWorker(Napi::Env env, std::string schema) : PromiseWorker(env, "llava.jsonSchemaToGrammar", nullptr), schema_(std::move(schema)) {}

 protected:
  void Run() override {
    common_json parsed;
    try {
      parsed = common_json::parse(schema_);
    } catch (const std::exception& e) {
      Throw("ERR_INVALID_ARGUMENT", std::string("the JSON schema is not valid JSON: ") + e.what());
    }
    try {
      grammar_ = json_schema_to_grammar(parsed, warnings_);
    } catch (const std::exception& e) {
      Throw("ERR_INVALID_ARGUMENT", std::string("llama.cpp's JSON schema converter refused the schema: ") + e.what());
    }
  }
  // { grammar, warnings }: what the grammar would not enforce, for the caller to refuse.
  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("grammar", grammar_);
    Napi::Array w = Napi::Array::New(env, warnings_.size());
    for (size_t i = 0; i < warnings_.size(); i++) w.Set(static_cast<uint32_t>(i), warnings_[i]);
    out.Set("warnings", w);
    return out;
  }

 private:
  std::string schema_;
  std::string grammar_;
  std::vector<std::string> warnings_;
};

}  // namespace

Napi::Value JsonSchemaToGrammar(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "jsonSchemaToGrammar(schemaJson) expected");
  auto* w = new SchemaWorker(env, info[0].As<Napi::String>().Utf8Value());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace llava
