'use strict'
// What the A/B benchmarks share: background load, medians, and the options of the two-mode
// comparisons (isolation, determinism).
const { spawn } = require('node:child_process')
const { eachArg } = require('./common')

/**
 * N busy-loop processes: kill() ends them at once, stop() resolves once they have exited. They
 * also end by themselves if this process dies (they poll it).
 */
function startHogs(n) {
  const code = `const p = ${process.pid}; let i = 0; for (;;) { if (++i % 5e7 === 0) { try { process.kill(p, 0) } catch { process.exit(0) } } }`
  const hogs = Array.from({ length: n }, () => spawn(process.execPath, ['-e', code], { stdio: 'ignore' }))
  return {
    kill: () => hogs.forEach((h) => h.kill('SIGKILL')),
    stop: () => Promise.all(hogs.map((h) => new Promise((resolve) => {
      if (h.exitCode !== null || h.signalCode !== null) return resolve()
      h.once('exit', resolve)
      h.kill('SIGKILL')
    }))),
  }
}

/** The median of the finite numbers in xs (undefined if there are none). */
function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return undefined
  const m = Math.floor(v.length / 2)
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

/** --rounds, --tokens, --threads, --hogs and --pair of a two-mode comparison. */
function parseComparisonArgs(argv) {
  const o = { rounds: 3, tokens: 64, threads: undefined, hogs: 0, pair: 'bench' }
  eachArg(argv, (a, value) => {
    if (a === '--rounds') o.rounds = Number(value())
    else if (a === '--tokens') o.tokens = Number(value())
    else if (a === '--threads') o.threads = Number(value())
    else if (a === '--hogs') o.hogs = Number(value())
    else if (a === '--pair') o.pair = value()
    else throw new Error(`unknown option '${a}'`)
  })
  for (const k of ['rounds', 'tokens']) if (!(Number.isInteger(o[k]) && o[k] > 0)) throw new Error(`--${k} takes a positive integer`)
  if (!(Number.isInteger(o.hogs) && o.hogs >= 0)) throw new Error('--hogs takes a non-negative integer')
  return o
}

module.exports = { median, parseComparisonArgs, startHogs }
