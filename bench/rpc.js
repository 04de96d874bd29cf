#!/usr/bin/env node
'use strict'
// What splitting a model over RPC servers costs on loopback: the same model local-only and with
// its layers split local + server A + server B (two startRpcServer() processes, the projector on
// server A), the two alternating:
//   node bench/rpc.js [--rounds 3] [--tokens 64] [--threads N] [--hogs N] [--pair bench|tiny]
// Prints medians (min–max) and the ratio split / local for load, image encode, prefill and
// generation, the bytes over the wire per generated token (one more run through counting proxies,
// untimed), and whether the greedy tokens were the same; writes bench/results/rpc.json. On a CPU
// whose quantized weights ggml repacks (AMX, AVX2 Q4_0), the servers' CPU devices compute with
// the plain layout instead, so the tokens of such a model may differ and remote layers run slower.
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { round } = require('./lib/common')
const { drawPixels } = require('./lib/image')
const { median, parseComparisonArgs, startHogs } = require('./lib/load')

const log = (msg) => process.stderr.write(`${msg}\n`)
const PROMPT = 'USER: <image>\nDescribe the picture in detail.\nASSISTANT:'
const LONG = `USER: ${'the quick brown fox jumps over the lazy dog, '.repeat(14)}\nASSISTANT:`

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** A loopback proxy to a server that counts the bytes in both directions (for the wire figure only). */
async function countingProxy(target) {
  const [host, port] = target.split(':')
  const proxy = { bytes: 0, sockets: new Set() }
  proxy.server = net.createServer((client) => {
    const up = net.connect({ host, port: Number(port) })
    for (const [from, to] of [[client, up], [up, client]]) {
      proxy.sockets.add(from)
      from.on('data', (chunk) => {
        proxy.bytes += chunk.length
        to.write(chunk)
      })
      from.on('error', () => to.destroy())
      from.on('close', () => to.destroy())
    }
  })
  await new Promise((resolve) => proxy.server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  proxy.address = `127.0.0.1:${proxy.server.address().port}`
  proxy.close = () => {
    for (const x of proxy.sockets) x.destroy()
    return new Promise((resolve) => proxy.server.close(resolve))
  }
  return proxy
}

/** Bytes over the wire per generated token: a prompt alone, then the prompt and N tokens. */
async function wireBytes(loadModel, pair, options, servers, o, image) {
  const proxies = await Promise.all(servers.map((x) => countingProxy(x.address)))
  const model = await loadModel({ ...pair, threads: o.threads, deterministic: false, ...options, rpcServers: proxies.map((p) => p.address), mmprojDevice: proxies[0].address })
  const bytes = () => proxies.reduce((a, p) => a + p.bytes, 0)
  try {
    const embedding = await model.encodeImage(image)
    const run = async (maxTokens) => {
      const s = model.createSession({ contextSize: 2048 })
      try {
        const before = bytes()
        const x = await s.complete({ prompt: PROMPT, images: [embedding], maxTokens, temperature: 0 })
        return { bytes: bytes() - before, tokens: x.timings.generatedTokens }
      } finally {
        await s.dispose()
      }
    }
    const one = await run(1)
    const many = await run(o.tokens)
    return { perToken: (many.bytes - one.bytes) / (many.tokens - one.tokens), prompt: one.bytes }
  } finally {
    await model.dispose()
    for (const p of proxies) await p.close()
  }
}

async function measure(loadModel, pair, loadOptions, o, image) {
  const r = {}
  let t = performance.now()
  const model = await loadModel({ ...pair, threads: o.threads, deterministic: false, ...loadOptions })
  r.loadMs = performance.now() - t
  r.layers = model.info.layers
  r.placement = model.info.placement
  try {
    t = performance.now()
    const embedding = await model.encodeImage(image)
    r.encodeMs = performance.now() - t
    const s = model.createSession({ contextSize: 2048 })
    try {
      const x = await s.complete({ prompt: PROMPT, images: [embedding], maxTokens: o.tokens, temperature: 0 })
      r.gen = x.timings.generatedTokens / (x.timings.generateMs / 1000)
      r.tokens = x.tokens
    } finally {
      await s.dispose()
    }
    const s2 = model.createSession({ contextSize: 2048 })
    try {
      const x = await s2.complete({ prompt: LONG, maxTokens: 1, temperature: 0 })
      r.prefill = x.timings.promptTokens / (x.timings.promptMs / 1000)
    } finally {
      await s2.dispose()
    }
  } finally {
    await model.dispose()
  }
  return r
}

const FIGURES = [
  ['loadMs', 'load (ms)', false],
  ['encodeMs', 'image encode (ms)', false],
  ['prefill', 'prompt processing (tok/s)', true],
  ['gen', 'generation (tok/s)', true],
]

async function main() {
  const o = parseComparisonArgs(process.argv.slice(2))
  o.threads = o.threads ?? Math.max(1, os.availableParallelism())
  const { loadModel, startRpcServer } = require('llava-native')
  const { ensurePair } = require('llava-native/fixtures')
  const pair = ensurePair(o.pair)
  const image = { data: drawPixels(336, 336), width: 336, height: 336, format: 'rgb' }
  const hogs = startHogs(o.hogs)
  const servers = [await startRpcServer({ port: await freePort(), threads: o.threads }), await startRpcServer({ port: await freePort(), threads: o.threads })]
  const runs = { local: [], split: [] }
  let layers
  let wire
  try {
    layers = (await measure(loadModel, pair, {}, { ...o, tokens: 4 }, image)).layers // warm-up: the page cache
    const modes = {
      local: {},
      // a third of the blocks stay here, a third on each server with the output layer; the projector on A
      split: { rpcServers: servers.map((s) => s.address), gpuLayers: layers + 1 - Math.floor(layers / 3), tensorSplit: [1, 1], mmprojDevice: servers[0].address },
    }
    for (let i = 0; i < o.rounds; i++) {
      for (const mode of i % 2 ? ['split', 'local'] : ['local', 'split']) {
        const t = performance.now()
        runs[mode].push(await measure(loadModel, pair, modes[mode], o, image))
        log(`round ${i + 1}/${o.rounds} ${mode}: ${round((performance.now() - t) / 1000, 1)} s`)
      }
    }
    wire = await wireBytes(loadModel, pair, modes.split, servers, o, image)
  } finally {
    hogs.kill()
    for (const s of servers) await s.close()
  }
  const rows = FIGURES.map(([key, label, higherBetter]) => {
    const split = runs.split.map((r) => r[key])
    const local = runs.local.map((r) => r[key])
    const fmt = (xs) => `${round(median(xs), 1)} (${round(Math.min(...xs), 1)}–${round(Math.max(...xs), 1)})`
    const ratio = higherBetter ? median(split) / median(local) : median(local) / median(split)
    return { key, label, split: fmt(split), local: fmt(local), ratio: round(ratio, 3) }
  })
  const same = runs.split.every((r, i) => JSON.stringify(r.tokens) === JSON.stringify(runs.local[i % runs.local.length].tokens))
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  const lines = [
    `rpc bench: pair ${o.pair} (${layers} blocks), ${o.threads} threads here and on each server, ${o.rounds} rounds, ${o.tokens} tokens, ${o.hogs} background hog(s); ${cpu}, ${os.cpus().length} CPUs, Node ${process.version}`,
    `split: ${Math.floor(layers / 3)} blocks local, the rest over 2 loopback servers (tensorSplit 1:1), projector on server A; greedy tokens identical to local: ${same}`,
    `over the wire (a separate run through counting proxies): ${round(wire.perToken / 1024, 1)} KiB per generated token, ${round(wire.prompt / 1048576, 2)} MiB for the image prompt and its first token`,
    '',
    `${'figure'.padEnd(28)} ${'split over RPC'.padEnd(26)} ${'local only'.padEnd(26)} split / local (speed)`,
    ...rows.map((r) => `${r.label.padEnd(28)} ${r.split.padEnd(26)} ${r.local.padEnd(26)} ${r.ratio}`),
  ]
  console.log(lines.join('\n'))
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true })
  fs.writeFileSync(path.join(__dirname, 'results', 'rpc.json'), JSON.stringify({ options: o, rows, runs, wire, same, cpu, node: process.version }, null, 2))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
