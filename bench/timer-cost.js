#!/usr/bin/env node
'use strict'
// What watching the event loop costs the compute-bound phases: image encode and image-token prefill
// on the benchmark preset, in one process, rotating between no watcher, a 5 ms JS `setInterval`,
// and Node's native `monitorEventLoopDelay` at 5 ms resolution. On a machine with as many cores as
// compute threads, every wake-up of the JS thread preempts one of them.
//   node bench/timer-cost.js [--runs 8] [--threads N]
const os = require('node:os')
const path = require('node:path')
const { writeTestImage } = require('./lib/image')

const args = process.argv.slice(2)
const opt = (name, fallback) => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : fallback
}
const runs = opt('--runs', 4)
const threads = opt('--threads', typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length)
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function main() {
  const { loadModel } = require('..')
  const { ensurePair } = require('../dist/fixtures')
  const image = writeTestImage(os.tmpdir(), 336, 336)
  const model = await loadModel({ ...ensurePair('bench'), threads })
  const { monitorEventLoopDelay } = require('node:perf_hooks')
  const modes = ['quiet', 'timer', 'histogram']
  const res = Object.fromEntries(modes.map((m) => [m, { encode: [], prefill: [] }]))
  for (let i = 0; i < runs * modes.length; i++) {
    const mode = modes[i % modes.length]
    const interval = mode === 'timer' ? setInterval(() => undefined, 5) : null
    const histogram = mode === 'histogram' ? monitorEventLoopDelay({ resolution: 5 }) : null
    if (histogram) histogram.enable()
    const e = await model.encodeImage(image)
    res[mode].encode.push(e.encoderMs)
    const s = model.createSession({ contextSize: 4096 })
    const r = await s.complete({ prompt: 'USER: <image>\nDescribe the image in detail.\nASSISTANT:', images: [e], maxTokens: 1, temperature: 0 })
    res[mode].prefill.push(r.timings.imagePrefillMs)
    await s.dispose()
    await e.dispose()
    if (interval) clearInterval(interval)
    if (histogram) histogram.disable()
  }
  await model.dispose()
  console.log(`${runs} runs of each, rotating, ${threads} threads, ${path.basename(image)}; medians in ms`)
  for (const phase of ['encode', 'prefill']) {
    const q = median(res.quiet[phase])
    const pct = (x) => `${((x / q - 1) * 100).toFixed(1)}%`
    const t = median(res.timer[phase])
    const h = median(res.histogram[phase])
    console.log(`${phase.padEnd(8)} quiet ${q.toFixed(0)}  setInterval(5) ${t.toFixed(0)} (${pct(t)})  monitorEventLoopDelay(5) ${h.toFixed(0)} (${pct(h)})`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
