#!/usr/bin/env node
'use strict'
// What saving and restoring a session costs in memory beyond the state itself: fills a session of
// the tiny pair with --tokens tokens, then measures the peak resident set (VmHWM, reset through
// /proc/self/clear_refs) during save() and during load() into a fresh session. Linux only.
//   node bench/session-file-memory.js [--tokens 65536]
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { loadModel } = require('llava-native')
const { ensurePair } = require('llava-native/fixtures')

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
const status = (key) => Number(/\d+/.exec(fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(key)))[0]) * 1024
const mib = (n) => (n / 1048576).toFixed(1)

async function peakDuring(work) {
  if (global.gc) global.gc()
  fs.writeFileSync('/proc/self/clear_refs', '5') // VmHWM := VmRSS
  const before = status('VmRSS:')
  await work()
  return status('VmHWM:') - before
}

;(async () => {
  const tokens = arg('tokens', 65536)
  const model = await loadModel({ ...ensurePair('tiny'), threads: Math.min(2, os.availableParallelism()) })
  const contextSize = tokens + 1024
  const s = model.createSession({ contextSize })
  // Words the tiny vocabulary holds as single tokens, so the prompt fills about `tokens` cells.
  const prompt = 'USER:' + ' the'.repeat(tokens - 8) + '\nASSISTANT:'
  const t0 = Date.now()
  await s.complete({ prompt, maxTokens: 1, temperature: 0 })
  const filled = s.cacheInfo().positions
  const file = path.join(os.tmpdir(), `llava-session-memory-${process.pid}.bin`)
  const saveMs = Date.now()
  const save = await peakDuring(() => s.save(file))
  const saveTook = Date.now() - saveMs
  const stateBytes = fs.statSync(file).size
  await s.dispose()
  const t = model.createSession({ contextSize })
  await t.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 1, temperature: 0 }) // the context exists before measuring
  const loadMs = Date.now()
  const load = await peakDuring(() => t.load(file))
  const loadTook = Date.now() - loadMs
  console.log(
    JSON.stringify({
      positions: filled,
      fileMiB: mib(stateBytes),
      savePeakMiB: mib(save),
      saveOverFile: +(save / stateBytes).toFixed(2),
      saveMs: saveTook,
      loadPeakMiB: mib(load),
      loadOverFile: +(load / stateBytes).toFixed(2),
      loadMs: loadTook,
      prefillMs: saveMs - t0,
    }),
  )
  fs.rmSync(file, { force: true })
  await model.dispose()
})()
