#pragma once
// jsonSchemaToGrammar(schemaJson): a promise of the GBNF grammar llama.cpp's converter makes.
#include <napi.h>

namespace llava {
Napi::Value JsonSchemaToGrammar(const Napi::CallbackInfo& info);
}
