#!/usr/bin/env node
'use strict'
// npm run bench: llava-native against llama.cpp's own llama-mtmd-cli and @fugood/llama.node on the
// same benchmark-sized model files, image, prompt and threads, runs of each system alternating.
//   node bench/run.js [--rounds 3] [--threads N] [--quick] [--no-fugood] [--no-reference]
//                     [--model file.gguf --mmproj mmproj.gguf] [--timeout 600]
// Prints a table of medians (min–max) and ratios; writes the same to bench/results/latest.json.
// See bench/README.md for what each figure means.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { ensurePair } = require('llava-native/fixtures')
const { writeTestImage } = require('./lib/image')
const { ensureFugood, fugoodLogTimings, FUGOOD_VERSION } = require('./lib/fugood')
const { batchedBenchPath, cliPath, rssMethod, runBatchedBench, runReference } = require('./lib/reference')
const { SYSTEMS, machineInfo, summarize, table } = require('./lib/report')
const { runChild, tail } = require('./lib/spawn')
const { QUESTION, eachArg, round } = require('./lib/common')

const ROOT = path.resolve(__dirname, '..')
const log = (msg) => process.stderr.write(`${msg}\n`)

function parseArgs(argv) {
  const o = { rounds: undefined, threads: undefined, quick: false, fugood: true, reference: true, timeout: 900 }
  eachArg(argv, (a, value) => {
    const positive = (v) => {
      const n = Number(v)
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} must be a positive integer, got '${v}'`)
      return n
    }
    if (a === '--rounds') o.rounds = positive(value())
    else if (a === '--threads') o.threads = positive(value())
    else if (a === '--timeout') o.timeout = positive(value())
    else if (a === '--quick') o.quick = true
    else if (a === '--no-fugood') o.fugood = false
    else if (a === '--no-reference') o.reference = false
    else if (a === '--model') o.model = path.resolve(value())
    else if (a === '--mmproj') o.mmproj = path.resolve(value())
    else if (a === '--help' || a === '-h') o.help = true
    else throw new Error(`unknown option '${a}' (try --help)`)
  })
  if ((o.model === undefined) !== (o.mmproj === undefined)) throw new Error('--model and --mmproj go together')
  return o
}

const HELP = `Usage: npm run bench -- [options]
  --rounds N      rounds, each running every system once (default 3; --quick: 1)
  --threads N     CPU threads for every system (default: os.availableParallelism())
  --quick         tiny synthetic pair, load + encode + 16 tokens, llava-native vs llama-mtmd-cli
  --no-fugood     skip @fugood/llama.node
  --no-reference  skip llama-mtmd-cli
  --model F --mmproj F   other GGUF files instead of the synthetic LLaVA-1.5-shaped pair
                  (the prompt is written in LLaVA-1.5's "USER: … ASSISTANT:" form)
  --timeout S     seconds each child process may take (default 900)
  --contention    the busy-machine benchmark instead (bench/contention.js; --help there)
  --chat          what the chat layer costs: chat() vs complete() generation, rendering time (bench/chat.js)
  --download      hf: download throughput against llama.cpp's -hf, idle and busy (bench/download.js)
  --isolation     isolation: 'process' against in-process (bench/isolation.js)
  --deterministic batch-invariant decoding against llama.cpp's default kernels (bench/determinism.js)
  --rpc           a model split over two loopback RPC servers against local-only (bench/rpc.js)`

/** Runs one of the bench/lib children and reads what it wrote, whatever happened to it. */
async function runNodeChild(script, config, workDir, tag, timeoutMs, withStderr) {
  const configFile = path.join(workDir, `${tag}.config.json`)
  const resultFile = path.join(workDir, `${tag}.result.json`)
  fs.writeFileSync(configFile, JSON.stringify(config))
  fs.rmSync(resultFile, { force: true })
  const run = await runChild(process.execPath, [path.join(__dirname, 'lib', script), configFile, resultFile], { timeoutMs, cwd: ROOT })
  let result
  try {
    result = JSON.parse(fs.readFileSync(resultFile, 'utf8'))
  } catch {
    result = { ok: false }
  }
  result.wallMs = round(run.wallMs)
  if (run.timedOut) result.error = `timed out after ${timeoutMs / 1000} s${result.error ? `; ${result.error}` : ''}`
  else if (!result.ok && !result.error) result.error = `exit code ${run.code}${run.signal ? ` (${run.signal})` : ''}: ${tail(run.stderr || run.stdout, 1500)}`
  else if (run.code !== 0 && result.ok) result.error = `exited with ${run.code}${run.signal ? ` (${run.signal})` : ''} after writing its result`
  return withStderr ? withStderr(result, run.stderr) : result
}

function headline(system, r) {
  if (!r.ok && r.error) return `FAILED: ${r.error.split('\n')[0]}`
  const parts = []
  if (r.loadMs != null) parts.push(`load ${Math.round(r.loadMs)} ms`)
  if (r.encodeMs != null) parts.push(`encode ${Math.round(r.encodeMs)} ms${r.encodeCallMs != null ? ` (call ${Math.round(r.encodeCallMs)} ms)` : ''}`)
  if (r.promptMs != null) parts.push(`prompt ${Math.round(r.promptMs)} ms / ${r.promptTokens} tok`)
  if (r.genTokPerS != null) parts.push(`gen ${r.genTokPerS.toFixed(1)} tok/s`)
  if (r.peakRssMb != null) parts.push(`rss ${Math.round(r.peakRssMb)} MiB`)
  return parts.join(', ')
}

async function main() {
  // The other benchmarks have scripts of their own: `npm run bench -- --contention` runs one.
  for (const [flag, script] of [['--download', 'download.js'], ['--chat', 'chat.js'], ['--contention', 'contention.js'], ['--isolation', 'isolation.js'], ['--deterministic', 'determinism.js'], ['--rpc', 'rpc.js']]) {
    if (!process.argv.includes(flag)) continue
    const args = process.argv.slice(2).filter((a) => a !== flag)
    const run = require('node:child_process').spawnSync(process.execPath, [path.join(__dirname, script), ...args], { stdio: 'inherit' })
    process.exitCode = run.status ?? 1
    return
  }
  const opts = parseArgs(process.argv.slice(2))
  if (opts.help) {
    console.log(HELP)
    return
  }
  const quick = opts.quick
  const rounds = opts.rounds ?? (quick ? 1 : 3)
  const threads = opts.threads ?? (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length)
  const nPredict = quick ? 16 : 64
  const contextSize = 4096
  const timeoutMs = opts.timeout * 1000
  const skipped = {}

  let pair
  if (opts.model) pair = { model: opts.model, mmproj: opts.mmproj, kind: 'given' }
  else {
    const kind = quick ? 'tiny' : 'bench'
    log(`model pair: ensurePair('${kind}')${kind === 'bench' ? ' (generated once, ~1.2 GB, ~25 s the first time)' : ''}…`)
    pair = { ...ensurePair(kind), kind }
  }
  for (const f of [pair.model, pair.mmproj]) if (!fs.existsSync(f)) throw new Error(`${f} does not exist`)

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-native-bench-'))
  const image = writeTestImage(workDir, 336, 336)

  // Which systems run.
  const systems = ['llava']
  let rss = null
  if (!opts.reference) skipped.reference = '--no-reference'
  else if (!fs.existsSync(cliPath(ROOT))) {
    skipped.reference = `${path.relative(ROOT, cliPath(ROOT))} is not built (LLAVA_NATIVE_REFERENCE=1 npm run build:native builds it)`
  } else {
    systems.push('reference')
    rss = rssMethod()
    if (!rss) log('note: neither python3 nor GNU time found: no peak RSS for llama-mtmd-cli')
  }
  let fugood = null
  if (quick) skipped.fugood = '--quick compares llava-native with llama-mtmd-cli only'
  else if (!opts.fugood) skipped.fugood = '--no-fugood'
  else {
    fugood = await ensureFugood(log)
    if (fugood.error) skipped.fugood = fugood.error
    else systems.push('fugood')
  }
  for (const [id, why] of Object.entries(skipped)) log(`skipping ${SYSTEMS.find((s) => s.id === id).name}: ${why}`)

  const machine = machineInfo(threads)
  const conditions = {
    mode: quick ? 'quick' : 'full',
    rounds,
    threads,
    contextSize,
    nPredict,
    sampling: 'greedy (temperature 0)',
    question: QUESTION,
    model: pair.model,
    mmproj: pair.mmproj,
    pairKind: pair.kind,
    image: '336x336 procedural BMP',
    loadAverageBefore: os.loadavg().map((x) => round(x)),
    fugoodVersion: systems.includes('fugood') ? FUGOOD_VERSION : undefined,
    referenceRss: systems.includes('reference') ? rss : undefined,
  }
  log(`machine: ${machine.cpu}, ${machine.cores} cores, ${threads} threads used; load average ${conditions.loadAverageBefore.join(' ')}`)

  const childConfig = { model: pair.model, mmproj: pair.mmproj, image, threads, contextSize, nPredict, quick }
  const runs = { llava: [], reference: [], fugood: [] }
  const t0 = Date.now()
  for (let round_ = 0; round_ < rounds; round_++) {
    // Alternate, and rotate who goes first, so that no system always runs right after another.
    const order = systems.map((_, i) => systems[(i + round_) % systems.length])
    for (const id of order) {
      const name = SYSTEMS.find((s) => s.id === id).name
      let r
      try {
        if (id === 'llava') r = await runNodeChild('llava-child.js', childConfig, workDir, `llava-${round_}`, timeoutMs)
        else if (id === 'fugood') r = await runNodeChild('fugood-child.js', { ...childConfig, fugoodDir: fugood.dir }, workDir, `fugood-${round_}`, timeoutMs, fugoodLogTimings)
        else {
          r = await runReference({ root: ROOT, ...childConfig, timeoutMs, workDir, rss })
          if (!quick && fs.existsSync(batchedBenchPath(ROOT))) {
            const b = await runBatchedBench({ root: ROOT, ...childConfig, timeoutMs })
            if (b.error) r.error = r.error ? `${r.error}; ${b.error}` : b.error
            else r.parallel = { ...b, sessions: 4 }
          }
        }
      } catch (err) {
        r = { ok: false, error: String(err && err.stack ? err.stack : err) }
      }
      r.round = round_ + 1
      runs[id].push(r)
      log(`round ${round_ + 1}/${rounds} ${name.padEnd(18)} ${(r.wallMs / 1000).toFixed(1).padStart(6)} s  ${headline(id, r)}`)
    }
  }
  conditions.loadAverageAfter = os.loadavg().map((x) => round(x))
  conditions.totalSeconds = round((Date.now() - t0) / 1000, 1)
  fs.rmSync(workDir, { recursive: true, force: true })

  const rows = summarize(runs)
  const text = table(rows, systems)
  const errors = []
  for (const id of systems) for (const r of runs[id]) if (r.error) errors.push({ system: id, round: r.round, error: r.error })

  console.log('')
  console.log(`llava-native benchmark (${conditions.mode}): ${rounds} round(s), ${threads} thread(s), context ${contextSize}, greedy, ${nPredict} tokens`)
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores (${machine.availableParallelism} available), ${machine.memoryGiB} GiB, ${machine.os}, node ${machine.node}`)
  console.log(`load average: ${conditions.loadAverageBefore.join(' ')} before, ${conditions.loadAverageAfter.join(' ')} after, on ${machine.cores} cores${conditions.loadAverageBefore[0] > machine.cores * 0.5 ? ' (other work was running: expect noise)' : ''}`)
  console.log(`model: ${pair.model}\nmmproj: ${pair.mmproj}`)
  console.log('')
  console.log(text)
  const fugoodInfo = runs.fugood.find((r) => r.systemInfo)?.systemInfo
  if (fugoodInfo) console.log(`\n@fugood/llama.node@${FUGOOD_VERSION} ${fugoodInfo.trim()}`)
  if (machine.llavaNative?.cpuFeatures) console.log(`llava-native system_info: ${machine.llavaNative.cpuFeatures.trim()}`)
  for (const [id, why] of Object.entries(skipped)) console.log(`\n${SYSTEMS.find((s) => s.id === id).name} skipped: ${why}`)
  for (const e of errors) console.log(`\n${SYSTEMS.find((s) => s.id === e.system).name}, round ${e.round}, failed: ${e.error}`)

  // latest.json is the last run of either mode; latest-full.json / latest-quick.json keep one of each.
  const resultsDir = path.join(__dirname, 'results')
  fs.mkdirSync(resultsDir, { recursive: true })
  const json = { generatedAt: new Date().toISOString(), argv: process.argv.slice(2), machine, conditions, skipped, errors, summary: rows, table: text, runs }
  const files = ['latest.json', `latest-${conditions.mode}.json`].map((f) => path.join(resultsDir, f))
  for (const f of files) fs.writeFileSync(f, `${JSON.stringify(json, null, 2)}\n`)
  console.log(`\nwritten: ${files.map((f) => path.relative(process.cwd(), f)).join(', ')}`)
  if (runs.llava.length > 0 && runs.llava.every((r) => !r.ok)) process.exitCode = 1
}

main().catch((err) => {
  console.error(err && err.message ? `bench: ${err.message}` : err)
  process.exit(1)
})
