#!/usr/bin/env node
'use strict'
// Reads the sanitizer reports of a test:asan run. Fails on any ASan/UBSan error report, and on
// any leak allocated by the addon's own code: the first frame after the allocator is in
// llava_native.node (which holds llama.cpp, ggml and mtmd too). Memory that node or V8 allocate
// (the runtime is not instrumented and frees little at exit) is counted and ignored, even when an
// addon call led to it: e.g. the promise of a generation still running when a worker thread is
// terminated, which cannot be settled once its environment is gone.
const fs = require('node:fs')
const path = require('node:path')

const dir = process.argv[2]
const allocator = /asan_(malloc|new_delete)|in (malloc|calloc|realloc|operator new|aligned_alloc|posix_memalign)/
function allocatedByAddon(block) {
  const frames = block.split('\n').filter((l) => /^\s+#\d+ /.test(l))
  const first = frames.find((f) => !allocator.test(f))
  return first !== undefined && /llava_native\.node/.test(first)
}
let ignored = 0
const findings = []
for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
  const text = fs.readFileSync(path.join(dir, f), 'utf8')
  if (/ERROR: AddressSanitizer|runtime error:/.test(text)) findings.push(`${f}: ${text.split('\n').slice(0, 30).join('\n')}`)
  for (const block of text.split(/\n(?=(?:Direct|Indirect) leak of )/)) {
    if (!/^(Direct|Indirect) leak of /.test(block)) continue
    if (allocatedByAddon(block)) findings.push(`${f}: ${block.split('\n').slice(0, 25).join('\n')}`)
    else ignored++
  }
}
console.log(`sanitizer reports: ${findings.length} finding(s) in llava-native/llama.cpp, ${ignored} runtime-only leak record(s) ignored`)
for (const f of findings) console.log(`\n${f}`)
process.exit(findings.length > 0 ? 1 : 0)
