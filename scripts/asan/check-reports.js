#!/usr/bin/env node
'use strict'
// Reads the sanitizer reports of a test:asan run. Fails on any ASan/UBSan error report, and on
// any leak whose allocation stack passes through the addon. Leaks entirely inside node/V8 (the
// runtime is not instrumented and frees little at exit) are counted and ignored.
const fs = require('node:fs')
const path = require('node:path')

const dir = process.argv[2]
const ours = /llava_native\.node|llava::|llama_|ggml_|mtmd_|clip_|gguf_/
let ignored = 0
const findings = []
for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
  const text = fs.readFileSync(path.join(dir, f), 'utf8')
  if (/ERROR: AddressSanitizer|runtime error:/.test(text)) findings.push(`${f}: ${text.split('\n').slice(0, 30).join('\n')}`)
  for (const block of text.split(/\n(?=(?:Direct|Indirect) leak of )/)) {
    if (!/^(Direct|Indirect) leak of /.test(block)) continue
    if (ours.test(block)) findings.push(`${f}: ${block.split('\n').slice(0, 25).join('\n')}`)
    else ignored++
  }
}
console.log(`sanitizer reports: ${findings.length} finding(s) in llava-native/llama.cpp, ${ignored} runtime-only leak record(s) ignored`)
for (const f of findings) console.log(`\n${f}`)
process.exit(findings.length > 0 ? 1 : 0)
