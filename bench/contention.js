#!/usr/bin/env node
'use strict'
// Speed on a busy machine: llava-native's defaults against its best fixed thread count and against
// llama.cpp's own llama-mtmd-cli, with background CPU hogs and inside a 1-CPU quota cgroup.
//   node bench/contention.js [--pair bench|tiny] [--rounds N] [--tokens N] [--hogs 0,1,2] [--no-quota]
//                            [--no-spin] [--no-reference] [--timeout S]
//   npm run bench -- --contention [same options]
// Each condition runs every system once per round, alternating; figures are medians over rounds.
// Writes bench/results/contention-<pair>.json.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { ensurePair } = require('llava-native/fixtures')
const { cpuBudget } = require('../dist/cpu')
const { writeTestImage } = require('./lib/image')
const { cliPath, runReference } = require('./lib/reference')
const { killAll, runChild, tail } = require('./lib/spawn')
const { eachArg, round } = require('./lib/common')
const { median, startHogs } = require('./lib/load')

const ROOT = path.resolve(__dirname, '..')
const log = (msg) => process.stderr.write(`${msg}\n`)

function parseArgs(argv) {
  const o = { pair: 'bench', rounds: undefined, tokens: undefined, hogs: [0, 1, 2], quota: true, reference: true, spin: true, timeout: 600 }
  eachArg(argv, (a, value) => {
    if (a === '--pair') o.pair = value()
    else if (a === '--rounds') o.rounds = Number(value())
    else if (a === '--tokens') o.tokens = Number(value())
    else if (a === '--hogs') o.hogs = ((v) => (v === 'none' ? [] : v.split(',').map(Number)))(value())
    else if (a === '--no-quota') o.quota = false
    else if (a === '--no-reference') o.reference = false
    else if (a === '--no-spin') o.spin = false
    else if (a === '--timeout') o.timeout = Number(value())
    else if (a === '--contention') return // as passed on by `npm run bench -- --contention`
    else if (a === '--help' || a === '-h') o.help = true
    else throw new Error(`unknown option '${a}' (try --help)`)
  })
  if (!['bench', 'tiny'].includes(o.pair)) throw new Error(`--pair must be bench or tiny, got '${o.pair}'`)
  for (const n of [o.rounds, o.tokens, o.timeout]) if (n !== undefined && !(Number.isInteger(n) && n > 0)) throw new Error('counts must be positive integers')
  if (o.hogs.some((n) => !(Number.isInteger(n) && n >= 0))) throw new Error('--hogs takes non-negative integers, e.g. 0,1,2')
  return o
}

// --- background load ------------------------------------------------------------------------
// Runs fn after the killed processes have had a moment to leave their cgroup (the process is about
// to exit: no event loop turn is left to wait in).
function setTimeoutSync(fn, ms = 200) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
  fn()
}

// --- a 1-CPU quota cgroup, where the machine lets us make one --------------------------------
function makeQuotaCgroup() {
  const name = `llava-native-bench-${process.pid}`
  const attempts = [
    () => {
      // cgroup v2: the cpu controller must be enabled for the parent's children
      const base = '/sys/fs/cgroup'
      if (!fs.existsSync(path.join(base, 'cgroup.controllers'))) throw new Error('no cgroup v2 hierarchy')
      const subtree = fs.readFileSync(path.join(base, 'cgroup.subtree_control'), 'utf8')
      if (!/\bcpu\b/.test(subtree)) fs.writeFileSync(path.join(base, 'cgroup.subtree_control'), '+cpu')
      const dir = path.join(base, name)
      fs.mkdirSync(dir)
      fs.writeFileSync(path.join(dir, 'cpu.max'), '100000 100000')
      return { dir, version: 2 }
    },
    () => {
      const base = ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct'].find((d) => fs.existsSync(path.join(d, 'cpu.cfs_quota_us')))
      if (!base) throw new Error('no cgroup v1 cpu hierarchy')
      const dir = path.join(base, name)
      fs.mkdirSync(dir)
      fs.writeFileSync(path.join(dir, 'cpu.cfs_period_us'), '100000')
      fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), '100000')
      return { dir, version: 1 }
    },
  ]
  const reasons = []
  for (const attempt of attempts) {
    try {
      const cg = attempt()
      return {
        ...cg,
        // the command joins the cgroup (its own pid, before exec), then becomes the measured program
        wrap: (cmd, args) => ['sh', ['-c', 'echo $$ > "$0" && exec "$@"', path.join(cg.dir, 'cgroup.procs'), cmd, ...args]],
        remove: () => fs.rmdirSync(cg.dir),
      }
    } catch (err) {
      reasons.push(err.message)
    }
  }
  return { skipped: reasons.join('; ') }
}

// --- the systems ------------------------------------------------------------------------------
async function runLlava(system, ctx) {
  const config = {
    model: ctx.pair.model,
    mmproj: ctx.pair.mmproj,
    image: ctx.image,
    nPredict: ctx.tokens,
    contextSize: ctx.contextSize,
    threads: system.threads,
    // a fixed count is that count for every step
    adaptiveThreads: system.fixed ? false : undefined,
    cpuWait: system.cpuWait,
  }
  const tag = `${system.id}-${process.hrtime.bigint()}`
  const configFile = path.join(ctx.workDir, `${tag}.config.json`)
  const resultPath = path.join(ctx.workDir, `${tag}.result.json`)
  fs.writeFileSync(configFile, JSON.stringify(config))
  let cmd = process.execPath
  let args = [path.join(__dirname, 'lib', 'contention-child.js'), configFile, resultPath]
  if (ctx.wrap) [cmd, args] = ctx.wrap(cmd, args)
  const run = await runChild(cmd, args, { timeoutMs: ctx.timeoutMs, cwd: ROOT })
  let result
  try {
    result = JSON.parse(fs.readFileSync(resultPath, 'utf8'))
  } catch {
    result = { ok: false }
  }
  if (run.timedOut) result.error = `timed out after ${ctx.timeoutMs / 1000} s`
  else if (!result.ok) result.error = result.error ?? `exit ${run.code}: ${tail(run.stderr, 800)}`
  return result
}

async function runCli(system, ctx) {
  const r = await runReference({
    root: ROOT, model: ctx.pair.model, mmproj: ctx.pair.mmproj, image: ctx.image, nPredict: ctx.tokens,
    threads: system.threads, contextSize: ctx.contextSize, timeoutMs: ctx.timeoutMs, workDir: ctx.workDir, rss: null, wrap: ctx.wrap,
  })
  if (r.promptTokens && r.promptMs) r.prefillTokPerS = round(r.promptTokens / (r.promptMs / 1000))
  return r
}

function systemsFor(usable, withReference, withSpin) {
  const systems = [{ id: 'default', label: 'llava-native, defaults', run: runLlava }]
  for (let t = 1; t <= usable; t++) systems.push({ id: `t${t}`, label: `llava-native, fixed threads ${t}`, threads: t, run: runLlava, fixed: true })
  if (withSpin) systems.push({ id: 'spin', label: "llava-native, defaults but llama.cpp's spin wait", cpuWait: 'spin', run: runLlava })
  if (withReference) systems.push({ id: 'cli', label: 'llama-mtmd-cli, its default threads', run: runCli })
  return systems
}

// --- figures ----------------------------------------------------------------------------------
const FIGURES = [
  { key: 'genTokPerS', label: 'generation tok/s', better: 'higher' },
  { key: 'prefillTokPerS', label: 'prefill tok/s (image tokens included)', better: 'higher' },
  { key: 'encodeMs', label: 'image encode ms', better: 'lower' },
]

/** Speed ratio a/b, where higher is better (so encode time is inverted). */
function speedRatio(fig, a, b) {
  if (a === undefined || b === undefined || a === 0 || b === 0) return undefined
  return fig.better === 'higher' ? a / b : b / a
}

function summarizeCondition(cond, systems, runs) {
  const med = {}
  for (const s of systems) {
    med[s.id] = {}
    for (const f of FIGURES) med[s.id][f.key] = median(runs[s.id].map((r) => r[f.key]))
    med[s.id].threads = median(runs[s.id].map((r) => r.threads))
    med[s.id].errors = runs[s.id].filter((r) => !r.ok).map((r) => r.error)
  }
  const best = {}
  for (const f of FIGURES) {
    const fixed = systems.filter((s) => s.fixed && med[s.id][f.key] !== undefined)
    fixed.sort((a, b) => (speedRatio(f, med[a.id][f.key], med[b.id][f.key]) > 1 ? -1 : 1))
    best[f.key] = fixed[0] && { id: fixed[0].id, value: med[fixed[0].id][f.key] }
  }
  return { condition: cond.label, medians: med, bestFixed: best }
}

function printCondition(summary, systems) {
  const { medians: med, bestFixed } = summary
  const lines = [`\n## ${summary.condition}`]
  const head = ['system', ...FIGURES.map((f) => f.label), 'threads']
  const rows = systems.map((s) => [s.label, ...FIGURES.map((f) => fmt(med[s.id][f.key])), fmt(med[s.id].threads)])
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`
  lines.push(line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line))
  for (const f of FIGURES) {
    const b = bestFixed[f.key]
    const vsBest = b && speedRatio(f, med.default[f.key], b.value)
    const vsCli = med.cli && speedRatio(f, med.default[f.key], med.cli[f.key])
    const vsSpin = med.spin && speedRatio(f, med.default[f.key], med.spin[f.key])
    lines.push(`${f.label}: defaults ${fmt(vsBest)}x the best fixed count (${b ? b.id : '-'})` +
      (med.spin ? `, ${fmt(vsSpin)}x llama.cpp's spin wait` : '') +
      (med.cli ? `, ${fmt(vsCli)}x llama-mtmd-cli` : ''))
  }
  for (const s of systems) for (const e of med[s.id].errors) lines.push(`  ${s.id}: ${e}`)
  console.log(lines.join('\n'))
}

function fmt(x) {
  if (x === undefined) return '-'
  return x >= 100 ? String(Math.round(x)) : String(round(x, 2))
}

/** The bars, on generation (and the quota condition's thread count). */
function bars(summaries) {
  const out = []
  for (const s of summaries) {
    const f = FIGURES[0]
    const d = s.medians.default[f.key]
    const vsBest = s.bestFixed[f.key] && speedRatio(f, d, s.bestFixed[f.key].value)
    const vsCli = s.medians.cli && speedRatio(f, d, s.medians.cli[f.key])
    if (s.kind === 'idle') {
      out.push({ condition: s.condition, bar: 'defaults >= 0.97x best fixed', value: vsBest, ok: vsBest >= 0.97 })
      if (vsCli !== undefined) out.push({ condition: s.condition, bar: 'defaults not slower than llama-mtmd-cli (>= 0.95x)', value: vsCli, ok: vsCli >= 0.95 })
    } else if (s.kind === 'hogs') {
      out.push({ condition: s.condition, bar: 'defaults >= 0.8x best fixed', value: vsBest, ok: vsBest >= 0.8 })
      if (vsCli !== undefined) out.push({ condition: s.condition, bar: 'defaults >= 3x llama-mtmd-cli', value: vsCli, ok: vsCli >= 3 })
    } else if (s.kind === 'quota') {
      out.push({ condition: s.condition, bar: 'defaults within 0.9x of best fixed', value: vsBest, ok: vsBest >= 0.9 })
      out.push({ condition: s.condition, bar: 'default thread count', value: s.medians.default.threads, ok: s.medians.default.threads === 1 || vsBest >= 0.9 })
    }
  }
  return out
}

async function main() {
  const o = parseArgs(process.argv.slice(2))
  if (o.help) {
    console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(2, 9).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'))
    return
  }
  const tiny = o.pair === 'tiny'
  const rounds = o.rounds ?? (tiny ? 5 : 3)
  const tokens = o.tokens ?? (tiny ? 256 : 32)
  const withReference = o.reference && fs.existsSync(cliPath(ROOT))
  if (o.reference && !withReference) log(`llama-mtmd-cli not built (${cliPath(ROOT)}): LLAVA_NATIVE_REFERENCE=1 npm run build:native; running without it`)
  const budget = cpuBudget()
  const pair = ensurePair(o.pair)
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-native-contention-'))
  const image = writeTestImage(workDir)
  const ctx = { pair, image, tokens, contextSize: 2048, workDir, timeoutMs: o.timeout * 1000 }
  const systems = systemsFor(budget.usable, withReference, o.spin)

  const conditions = o.hogs.map((n) => ({ kind: n === 0 ? 'idle' : 'hogs', hogs: n, label: n === 0 ? 'idle machine' : `${n} background CPU hog${n > 1 ? 's' : ''}` }))
  if (o.quota) conditions.push({ kind: 'quota', hogs: 0, label: 'in a cgroup with a 1-CPU quota' })

  console.log(`llava-native contention benchmark: ${o.pair} pair, ${rounds} round(s), ${tokens} greedy tokens, ${os.cpus()[0]?.model ?? 'CPU'}, ` +
    `${budget.logical} logical / ${budget.physical ?? '?'} physical CPUs, Node ${process.version}`)
  // Interrupted (Ctrl-C, a CI timeout): the measured program, the hogs and the cgroup go too.
  const cleanups = new Set()
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      killAll()
      for (const cleanup of cleanups) cleanup()
      process.exit(130)
    })
  }
  const summaries = []
  for (const cond of conditions) {
    let cgroup
    if (cond.kind === 'quota') {
      cgroup = makeQuotaCgroup()
      if (cgroup.skipped) {
        console.log(`\n## ${cond.label}: SKIPPED (could not create a cgroup here: ${cgroup.skipped})`)
        continue
      }
    }
    // A 1-CPU quota caps llava-native's threads at 1 (more are refused): no sweep beyond it there.
    const present = systems.filter((s) => !(cond.kind === 'quota' && s.threads > 1))
    const hogs = startHogs(cond.hogs)
    // on a signal: the hogs (SIGKILL, synchronously), then the emptied cgroup
    const cleanup = () => {
      hogs.kill()
      if (cgroup?.remove) setTimeoutSync(() => { try { cgroup.remove() } catch { /* still busy: left for the OS */ } })
    }
    cleanups.add(cleanup)
    const runs = Object.fromEntries(present.map((s) => [s.id, []]))
    try {
      for (let r = 0; r < rounds; r++) {
        // alternate the order from round to round, so that no system always runs first
        const order = r % 2 ? [...present].reverse() : present
        for (const s of order) {
          log(`${cond.label}, round ${r + 1}/${rounds}: ${s.label}`)
          const res = await s.run(s, { ...ctx, wrap: cgroup?.wrap })
          runs[s.id].push(res)
        }
      }
    } finally {
      cleanups.delete(cleanup)
      await hogs.stop()
      if (cgroup?.remove) {
        try {
          cgroup.remove()
        } catch (err) {
          log(`could not remove ${cgroup.dir}: ${err.message}`)
        }
      }
    }
    const summary = { kind: cond.kind, ...summarizeCondition(cond, present, runs), runs }
    summaries.push(summary)
    printCondition(summary, present)
  }

  const checks = bars(summaries)
  console.log('\n## Bars (generation)')
  for (const c of checks) console.log(`${c.ok ? 'MET ' : 'MISS'} ${c.condition}: ${c.bar}: ${fmt(c.value)}`)
  const outDir = path.join(__dirname, 'results')
  fs.mkdirSync(outDir, { recursive: true })
  const file = path.join(outDir, `contention-${o.pair}.json`)
  fs.writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), pair: o.pair, rounds, tokens, budget, summaries, checks }, null, 2))
  log(`results: ${path.relative(ROOT, file)}`)
  fs.rmSync(workDir, { recursive: true, force: true })
}

main().catch((err) => {
  console.error(err && err.message ? `contention bench: ${err.message}` : err)
  process.exit(1)
})
