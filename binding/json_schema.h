#pragma once
// jsonSchemaToGrammar(schemaJson): a promise of { grammar, warnings }: the GBNF grammar llama.cpp's
// converter makes, and what it says the grammar does not enforce.
#include <napi.h>

namespace llava {
Napi::Value JsonSchemaToGrammar(const Napi::CallbackInfo& info);
}
