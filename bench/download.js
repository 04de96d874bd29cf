#!/usr/bin/env node
'use strict'
// Download throughput: llava-native's resolveModel('hf:…') (Node's fetch, SHA-256 verified, into
// the hub cache) against llama.cpp's own `-hf` download (build/bin/llama-hf-plan: cpp-httplib,
// no checksum), fetching the benchmark pair (~1.2 GB) from the same local hub process, rounds
// alternating, each into an empty cache; idle, and with background CPU hogs.
//   node bench/download.js [--rounds 3] [--hogs 0,2] [--rate MB/s]
// --rate caps each transfer at a link's speed (e.g. 117 for 1 Gbit/s), where the client's own cost
// stops mattering if it keeps up; without it the local hub sends as fast as it can.
// Prints medians and the ratio llava-native / llama.cpp (> 1: llava-native is faster).
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { ensurePair } = require('llava-native/fixtures')
const { runChild, killAll } = require('./lib/spawn')
const { startHogs } = require('./lib/load')
const { eachArg } = require('./lib/common')

const ROOT = path.resolve(__dirname, '..')
const REFERENCE = path.join(ROOT, 'build', 'bin', 'llama-hf-plan')
const REPO = 'bench/bench-vlm-GGUF'
const log = (m) => process.stderr.write(`${m}\n`)

function parseArgs(argv) {
  const o = { rounds: 3, hogs: [0, 2], rate: 0 }
  eachArg(argv, (a, value) => {
    if (a === '--rounds') o.rounds = Number(value())
    else if (a === '--rate') o.rate = Number(value())
    else if (a === '--hogs') o.hogs = value().split(',').map(Number)
    else throw new Error(`unknown option '${a}'`)
  })
  return o
}

function sha256File(file) {
  // cached next to the file: hashing 1.2 GB is not what is measured
  const st = fs.statSync(file)
  const memo = `${file}.sha256-${st.size}-${Math.floor(st.mtimeMs)}`
  if (fs.existsSync(memo)) return fs.readFileSync(memo, 'utf8')
  const h = crypto.createHash('sha256')
  const fd = fs.openSync(file, 'r')
  const buf = Buffer.alloc(1 << 22)
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n))
  fs.closeSync(fd)
  const d = h.digest('hex')
  fs.writeFileSync(memo, d)
  return d
}

async function startHub(spec, rate) {
  const file = path.join(os.tmpdir(), `llava-bench-hub-${process.pid}.json`)
  fs.writeFileSync(file, JSON.stringify(spec))
  const child = spawn(process.execPath, [path.join(__dirname, 'lib', 'hub-server.js'), file, String(rate)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(String(d))))
  return { endpoint: JSON.parse(line).endpoint, stop: () => child.kill('SIGKILL') }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main() {
  const o = parseArgs(process.argv.slice(2))
  if (!fs.existsSync(REFERENCE)) throw new Error(`${REFERENCE} is missing: build with LLAVA_NATIVE_REFERENCE=1 npm run build:native`)
  const pair = ensurePair('bench')
  const files = [
    { path: 'bench-vlm-Q4_0.gguf', file: pair.model, sha256: sha256File(pair.model) },
    { path: 'mmproj-bench-vlm-f16.gguf', file: pair.mmproj, sha256: sha256File(pair.mmproj) },
  ]
  const bytes = files.reduce((n, f) => n + fs.statSync(f.file).size, 0)
  const hub = await startHub({ repo: REPO, files }, o.rate)
  process.on('SIGINT', () => {
    killAll()
    hub.stop()
    process.exit(130)
  })
  const systems = {
    'llava-native': (cache) => [process.execPath, ['-e', `require(${JSON.stringify(ROOT)}).resolveModel('hf:${REPO}:Q4_0', { cacheDir: ${JSON.stringify(cache)}, endpoint: ${JSON.stringify(hub.endpoint)} }).then((r) => console.log(r.model), (e) => { console.error(e); process.exit(1) })`]],
    'llama.cpp -hf': (cache) => [REFERENCE, [`${REPO}:Q4_0`, '--download']],
  }
  const results = []
  try {
    for (const hogs of o.hogs) {
      const stop = startHogs(hogs).kill
      const times = { 'llava-native': [], 'llama.cpp -hf': [] }
      try {
        for (let r = 0; r < o.rounds; r++) {
          const order = r % 2 ? ['llama.cpp -hf', 'llava-native'] : ['llava-native', 'llama.cpp -hf']
          for (const name of order) {
            const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-bench-dl-'))
            try {
              const [cmd, args] = systems[name](cache)
              const res = await runChild(cmd, args, { timeoutMs: 600_000, env: { ...process.env, MODEL_ENDPOINT: hub.endpoint, LLAMA_CACHE: cache } })
              if (res.code !== 0) throw new Error(`${name} failed: ${res.stderr.slice(-1000)}`)
              const model = path.join(cache, `models--${REPO.replace('/', '--')}`, 'snapshots')
              if (!fs.existsSync(model)) throw new Error(`${name} wrote no snapshot`)
              times[name].push(res.wallMs)
              log(`hogs=${hogs} round ${r + 1} ${name}: ${(res.wallMs / 1000).toFixed(2)} s`)
            } finally {
              fs.rmSync(cache, { recursive: true, force: true })
            }
          }
        }
      } finally {
        stop()
      }
      const ours = median(times['llava-native'])
      const theirs = median(times['llama.cpp -hf'])
      results.push({ hogs, bytes, llavaNativeMs: Math.round(ours), llamaCppMs: Math.round(theirs), llavaNativeMBps: +(bytes / 1e6 / (ours / 1000)).toFixed(1), llamaCppMBps: +(bytes / 1e6 / (theirs / 1000)).toFixed(1), ratio: +(theirs / ours).toFixed(3) })
    }
  } finally {
    hub.stop()
  }
  const cpu = (/^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8')) || [])[1]
  console.log(`download of ${(bytes / 1e9).toFixed(2)} GB from a local hub${o.rate ? ` at most ${o.rate} MB/s per transfer` : ''}, ${o.rounds} rounds, median wall time per fetch (${cpu}, ${os.cpus().length} CPUs)`)
  console.log('condition        llava-native          llama.cpp -hf         ratio (llama.cpp time / llava-native time)')
  for (const r of results) {
    const label = r.hogs ? `${r.hogs} CPU hogs` : 'idle'
    console.log(`${label.padEnd(16)} ${(r.llavaNativeMs / 1000).toFixed(2).padStart(6)} s ${String(r.llavaNativeMBps).padStart(7)} MB/s  ${(r.llamaCppMs / 1000).toFixed(2).padStart(6)} s ${String(r.llamaCppMBps).padStart(7)} MB/s  ${r.ratio.toFixed(3)}`)
  }
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true })
  fs.writeFileSync(path.join(__dirname, 'results', 'download.json'), JSON.stringify({ date: new Date().toISOString(), rateMBps: o.rate || null, results }, null, 2))
}

main().catch((e) => {
  killAll()
  console.error(e)
  process.exit(1)
})
