#!/usr/bin/env node
'use strict'
// One llava-native run for bench/contention.js, in a process of its own (so that the CPU wait
// policy, read once per process, and a cgroup placement apply to it alone):
//   node bench/lib/contention-child.js <config.json> <result.json>
// Load, encode the image, answer the image prompt: the same work as one llama-mtmd-cli run.
const { performance } = require('node:perf_hooks')
const { childArgs, exitWhenDone, imagePrompt, resultFile, round } = require('./common')

const { config, resultPath } = childArgs()
const out = resultFile(resultPath, { system: 'llava-native', pid: process.pid })
const r = out.result

async function main() {
  const { loadModel, setCpuWait, systemInfo } = require('llava-native')
  if (config.cpuWait !== undefined) setCpuWait(config.cpuWait)
  const cpu = systemInfo().cpu
  r.cpuWait = cpu.wait
  r.quota = cpu.quota
  const model = await loadModel({ model: config.model, mmproj: config.mmproj, threads: config.threads, adaptiveThreads: config.adaptiveThreads, contextSize: config.contextSize })
  r.threads = model.defaults.threads // what the call used: the option, or the default
  try {
    const image = await model.encodeImage(config.image)
    r.encodeMs = round(image.encoderMs)
    const session = model.createSession()
    const t0 = performance.now()
    const result = await session.complete({ prompt: imagePrompt('<image>'), images: [image], maxTokens: config.nPredict, temperature: 0, seed: 42 })
    r.wallMs = round(performance.now() - t0)
    const t = result.timings
    Object.assign(r, {
      promptTokens: t.promptTokens,
      promptMs: round(t.promptMs),
      prefillTokPerS: round(t.promptTokens / (t.promptMs / 1000)),
      generatedTokens: t.generatedTokens,
      genTokPerS: round(t.generatedTokens / (t.generateMs / 1000)),
      answer: result.text,
    })
    await session.dispose()
  } finally {
    await model.dispose()
  }
  out.done()
}

exitWhenDone(main, out)
