#!/usr/bin/env node
'use strict'
// What batch-invariant decoding costs: session groups of 1, 2 and 4 generating at once, and one
// long prompt, with `deterministic: true` and `false` on the same model, the two alternating:
//   node bench/determinism.js [--rounds 3] [--tokens 64] [--threads N] [--hogs N] [--pair bench|tiny]
// Prints medians (min–max) and the ratio on / off for each figure, and whether a grouped session's
// logits equal its solo ones in each mode; writes them to bench/results/determinism.json.
// --hogs N runs N busy-loop processes in the background meanwhile.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { round } = require('./lib/common')
const { median, parseComparisonArgs, startHogs } = require('./lib/load')

const log = (msg) => process.stderr.write(`${msg}\n`)
const PROMPTS = [
  'USER: Describe a sunny beach.\nASSISTANT:',
  'USER: Name three fruits and their colours.\nASSISTANT:',
  'USER: What is a cat?\nASSISTANT:',
  'USER: Tell me a story about a dragon and a knight.\nASSISTANT:',
]
const LONG = `USER: ${'the quick brown fox jumps over the lazy dog, '.repeat(14)}\nASSISTANT:`

const sameLogits = (a, b) =>
  a.logprobs.length === b.logprobs.length &&
  a.logprobs.every((x, i) => x.token === b.logprobs[i].token && x.top.every((t, k) => t.token === b.logprobs[i].top[k].token && Object.is(t.logit, b.logprobs[i].top[k].logit)))

/** One measurement of each figure in one mode. */
async function measure(model, deterministic, o) {
  const r = {}
  const run = { maxTokens: o.tokens, temperature: 0, logprobs: 5 }
  const base = { contextSize: 1024, deterministic }
  let solo
  for (const n of [1, 2, 4]) {
    const group = model.createSessionGroup({ ...base, sessions: n })
    try {
      const sessions = Array.from({ length: n }, () => group.createSession())
      const results = await Promise.all(sessions.map((s, i) => s.complete({ prompt: PROMPTS[i], ...run })))
      const tokens = results.reduce((a, x) => a + x.timings.generatedTokens, 0)
      r[`gen${n}`] = tokens / (Math.max(...results.map((x) => x.timings.generateMs)) / 1000)
      if (n === 1) solo = results[0]
      else r[`same${n}`] = sameLogits(results[0], solo)
    } finally {
      await group.dispose()
    }
  }
  const s = model.createSession(base)
  try {
    const x = await s.complete({ prompt: LONG, maxTokens: 1, temperature: 0 })
    r.prefill = x.timings.promptTokens / (x.timings.promptMs / 1000)
    r.promptTokens = x.timings.promptTokens
  } finally {
    await s.dispose()
  }
  return r
}

const FIGURES = [
  ['gen1', 'generation, 1 session (tok/s)'],
  ['gen2', 'generation, group of 2 (tok/s, all sessions)'],
  ['gen4', 'generation, group of 4 (tok/s, all sessions)'],
  ['prefill', 'prompt processing (tok/s)'],
]

async function main() {
  const o = parseComparisonArgs(process.argv.slice(2))
  const { loadModel } = require('llava-native')
  const { ensurePair } = require('llava-native/fixtures')
  const pair = ensurePair(o.pair)
  const threads = o.threads ?? os.availableParallelism()
  const hogs = startHogs(o.hogs)
  const runs = { on: [], off: [] }
  const model = await loadModel({ model: pair.model, threads })
  try {
    await measure(model, true, { ...o, tokens: 4 }) // warm-up: first-touch of the weights
    for (let i = 0; i < o.rounds; i++) {
      for (const mode of i % 2 ? ['off', 'on'] : ['on', 'off']) {
        const t = performance.now()
        runs[mode].push(await measure(model, mode === 'on', o))
        log(`round ${i + 1}/${o.rounds} deterministic ${mode}: ${round((performance.now() - t) / 1000, 1)} s`)
      }
    }
  } finally {
    await model.dispose()
    hogs.kill()
  }
  const rows = FIGURES.map(([key, label]) => {
    const on = runs.on.map((r) => r[key])
    const off = runs.off.map((r) => r[key])
    const fmt = (xs) => `${round(median(xs), 1)} (${round(Math.min(...xs), 1)}–${round(Math.max(...xs), 1)})`
    return { key, label, on: fmt(on), off: fmt(off), ratio: round(median(on) / median(off), 3) }
  })
  const identical = (mode, n) => `${runs[mode].filter((r) => r[`same${n}`]).length}/${runs[mode].length}`
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  const lines = [
    `determinism bench: pair ${o.pair}, ${threads} threads, ${o.rounds} rounds, ${o.tokens} tokens a session, ${o.hogs} background hog(s); ${cpu}, ${os.cpus().length} CPUs, Node ${process.version}; load average now ${os.loadavg().map((x) => round(x, 2)).join(' ')}`,
    `a grouped session's top-5 logits equal to its solo ones (runs): on: group of 2 ${identical('on', 2)}, of 4 ${identical('on', 4)}; off: group of 2 ${identical('off', 2)}, of 4 ${identical('off', 4)}`,
    `prompt: ${runs.on[0].promptTokens} tokens`,
    '',
    `${'figure'.padEnd(46)} ${'deterministic'.padEnd(24)} ${'default kernels'.padEnd(24)} on / off`,
    ...rows.map((r) => `${r.label.padEnd(46)} ${r.on.padEnd(24)} ${r.off.padEnd(24)} ${r.ratio}`),
  ]
  console.log(lines.join('\n'))
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true })
  fs.writeFileSync(path.join(__dirname, 'results', 'determinism.json'), JSON.stringify({ options: o, threads, rows, runs, cpu, node: process.version }, null, 2))
  // The mode's promise, checked on every run: a grouped session's logits are its solo ones.
  if (runs.on.some((r) => !r.same2 || !r.same4)) process.exitCode = 1
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
