#!/usr/bin/env node
'use strict'
// isolation: 'process' against in-process, on the same model files, image and prompts, runs of
// the two alternating, each run a fresh host process (its own load time and RSS):
//   node bench/isolation.js [--rounds 3] [--tokens 64] [--threads N] [--hogs N] [--pair bench|tiny]
// Prints medians (min–max) and the ratio isolated / in-process for each figure; writes them to
// bench/results/isolation.json. --hogs N runs N busy-loop processes in the background meanwhile.
const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { round } = require('./lib/common')
const { median, parseComparisonArgs, startHogs } = require('./lib/load')
const { drawPixels, encodeBmp, writeTestImage } = require('./lib/image')

const ROOT = path.resolve(__dirname, '..')
const log = (msg) => process.stderr.write(`${msg}\n`)
const PROMPT = 'USER: <image>Describe the image in detail.\nASSISTANT:'

// --- one run ---------------------------------------------------------------------------------
async function child(mode, config) {
  const { loadModel, systemInfo } = require('llava-native')
  systemInfo() // the addon itself loads before the clock starts
  const r = { mode }
  let t = performance.now()
  const model = await loadModel({ model: config.model, mmproj: config.mmproj, threads: config.threads, isolation: mode })
  r.loadMs = performance.now() - t

  t = performance.now()
  let image = await model.encodeImage(config.image)
  r.encodeFileMs = performance.now() - t
  r.encoderMs = image.encoderMs
  await image.dispose() // (an alive embedding of the same pixels would be reused, not encoded)
  const bytes = fs.readFileSync(config.image)
  t = performance.now()
  image = await model.encodeImage(bytes)
  r.encodeBufferMs = performance.now() - t
  await image.dispose()
  const photo = fs.readFileSync(config.photo)
  t = performance.now()
  const big = await model.encodeImage(photo)
  r.encodePhotoBufferMs = performance.now() - t
  await big.dispose()
  image = await model.encodeImage(config.image)

  const session = model.createSession()
  let first
  let last
  t = performance.now()
  const res = await session.complete({
    prompt: PROMPT,
    images: [image],
    maxTokens: config.tokens,
    temperature: 0,
    onToken: () => {
      last = performance.now()
      first ??= last
    },
  })
  r.ttftMs = first - t
  r.promptMs = res.timings.promptMs
  r.generatedTokens = res.timings.generatedTokens
  // measured in the host, so that what crossing the process boundary costs is in it
  r.genTokPerS = (res.timings.generatedTokens - 1) / ((last - first) / 1000)
  r.nativeGenTokPerS = res.timings.generatedTokens / (res.timings.generateMs / 1000)
  r.prefillTokPerS = res.timings.promptTokens / ((first - t) / 1000)
  r.tokens = res.tokens
  r.hostRssMb = process.memoryUsage().rss / 2 ** 20
  r.childRssMb = mode === 'process' ? Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${model.pid}/status`, 'utf8'))[1]) / 1024 : 0
  await model.dispose()
  process.stdout.write(`${JSON.stringify(r)}\n`)
}

// --- the comparison --------------------------------------------------------------------------
function runOnce(mode, configFile) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [__filename, '--child', mode, configFile], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${mode} run exited with ${code}`))))
  })
}

const FIGURES = [
  ['loadMs', 'load: model + projector (ms)'],
  ['encodeFileMs', 'encode, image from a file (ms)'],
  ['encodeBufferMs', 'encode, image from a Buffer (ms)'],
  ['encodePhotoBufferMs', 'encode, 12 MP BMP from a Buffer, 36 MB (ms)'],
  ['ttftMs', 'time to first token (ms)'],
  ['prefillTokPerS', 'prefill to first token (tok/s)'],
  ['genTokPerS', 'generation (tok/s, host clock)'],
  ['nativeGenTokPerS', "generation (tok/s, llama.cpp's clock)"],
  ['hostRssMb', 'host RSS after generating (MiB)'],
  ['childRssMb', 'model process RSS (MiB)'],
]

async function main() {
  const o = parseComparisonArgs(process.argv.slice(2))
  const { ensurePair } = require('llava-native/fixtures')
  const pair = ensurePair(o.pair)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-bench-isolation-'))
  const photo = path.join(dir, 'photo.bmp')
  fs.writeFileSync(photo, encodeBmp(drawPixels(4000, 3000), 4000, 3000))
  const configFile = path.join(dir, 'config.json')
  const threads = o.threads ?? os.availableParallelism()
  fs.writeFileSync(configFile, JSON.stringify({ ...pair, image: writeTestImage(dir), photo, tokens: o.tokens, threads }))
  const hogs = startHogs(o.hogs)
  const runs = { none: [], process: [] }
  try {
    for (let i = 0; i < o.rounds; i++) {
      // alternating, the first mode swapped each round
      for (const mode of i % 2 ? ['process', 'none'] : ['none', 'process']) {
        const t = performance.now()
        runs[mode].push(await runOnce(mode, configFile))
        log(`round ${i + 1}/${o.rounds} ${mode === 'none' ? 'in-process' : 'isolated'}: ${round((performance.now() - t) / 1000, 1)} s`)
      }
    }
  } finally {
    hogs.kill()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const same = runs.none.concat(runs.process).every((r) => JSON.stringify(r.tokens) === JSON.stringify(runs.none[0].tokens))
  const rows = FIGURES.map(([key, label]) => {
    const a = runs.none.map((r) => r[key])
    const b = runs.process.map((r) => r[key])
    const fmt = (xs) => `${round(median(xs), 1)} (${round(Math.min(...xs), 1)}–${round(Math.max(...xs), 1)})`
    return { key, label, inProcess: fmt(a), isolated: fmt(b), ratio: median(a) > 0 ? round(median(b) / median(a), 3) : null }
  })
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  const load = os.loadavg().map((x) => round(x, 2)).join(' ')
  const lines = [
    `isolation bench: pair ${o.pair}, ${o.rounds} rounds, ${o.tokens} tokens, ${o.hogs} background hog(s); ${cpu}, ${os.cpus().length} CPUs, Node ${process.version}; load average now ${load}`,
    `greedy tokens identical in every run: ${same ? 'yes' : 'NO'}`,
    '',
    `${'figure'.padEnd(46)} ${'in-process'.padEnd(24)} ${'isolated'.padEnd(24)} isolated / in-process`,
    ...rows.map((r) => `${r.label.padEnd(46)} ${r.inProcess.padEnd(24)} ${r.isolated.padEnd(24)} ${r.ratio ?? '-'}`),
  ]
  console.log(lines.join('\n'))
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true })
  fs.writeFileSync(path.join(__dirname, 'results', 'isolation.json'), JSON.stringify({ options: o, same, rows, runs, cpu, node: process.version }, null, 2))
  if (!same) process.exitCode = 1
}

if (process.argv[2] === '--child') {
  child(process.argv[3], JSON.parse(fs.readFileSync(process.argv[4], 'utf8'))).catch((e) => {
    console.error(e)
    process.exit(1)
  })
} else {
  main().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
