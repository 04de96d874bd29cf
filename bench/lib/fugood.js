'use strict'
// @fugood/llama.node, the comparison binding, installed on demand into a bench-only folder outside
// llava-native's dependencies (never in package.json): ~/.cache/llava-native/bench-deps, or
// $LLAVA_NATIVE_BENCH_DEPS. Its prebuilt binary comes with it from the npm registry, in the
// optional dependency @fugood/node-llama-<platform>-<arch>.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { runChild, tail } = require('./spawn')

const FUGOOD_VERSION = '1.7.15'

function depsDir() {
  return process.env.LLAVA_NATIVE_BENCH_DEPS || path.join(os.homedir(), '.cache', 'llava-native', 'bench-deps')
}

function readVersion(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version
  } catch {
    return undefined
  }
}

function packagePaths(dir) {
  const modules = path.join(dir, 'node_modules', '@fugood')
  return {
    main: path.join(modules, 'llama.node'),
    native: path.join(modules, `node-llama-${process.platform}-${process.arch}`),
  }
}

/**
 * Returns `{ dir, version }` of an installed @fugood/llama.node@FUGOOD_VERSION with its native
 * package, installing it first when needed (`npm install --prefix <dir> --no-save`, no install
 * scripts: its postinstall only matters for builds from source), or `{ error }`.
 */
async function ensureFugood(log) {
  const dir = depsDir()
  const p = packagePaths(dir)
  const ready = () => readVersion(p.main) === FUGOOD_VERSION && readVersion(p.native) === FUGOOD_VERSION
  if (ready()) return { dir: p.main, version: FUGOOD_VERSION }
  fs.mkdirSync(dir, { recursive: true })
  log(`installing @fugood/llama.node@${FUGOOD_VERSION} into ${dir} (bench only, not a dependency of llava-native)…`)
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const run = await runChild(
    npm,
    ['install', '--prefix', dir, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--ignore-scripts', `@fugood/llama.node@${FUGOOD_VERSION}`],
    { timeoutMs: 10 * 60 * 1000 },
  )
  if (ready()) return { dir: p.main, version: FUGOOD_VERSION }
  const why = run.timedOut ? 'npm install timed out' : `npm install exited with ${run.code}: ${tail(run.stderr || run.stdout, 800)}`
  const native = fs.existsSync(p.main) && !fs.existsSync(p.native) ? ` (no prebuilt package for ${process.platform}-${process.arch})` : ''
  return { error: `@fugood/llama.node@${FUGOOD_VERSION} could not be installed${native}: ${why}` }
}

function sumMs(text, re) {
  let total
  for (const m of text.matchAll(re)) total = (total ?? 0) + Number(m[1])
  return total
}

/**
 * Adds what @fugood/llama.node's child printed to stderr through llama.cpp's mtmd helper: the
 * image encode time and the image-token decode time. Its timings.prompt_ms is llama_perf's prompt
 * eval time, which spans the encoder (see promptFromPerf in reference.js): prompt evaluation proper
 * is that minus encoding, and so is the time to first token with the image already encoded.
 */
function fugoodLogTimings(result, stderr) {
  result.encodeMs = sumMs(stderr, /(?:slice encoded|encoding done) in (\d+(?:\.\d+)?) ms/g)
  result.imagePrefillMs = sumMs(stderr, /decoded \(batch \d+\/\d+\) in (\d+(?:\.\d+)?) ms/g)
  if (result.encodeMs !== undefined) {
    const minus = (x) => (typeof x === 'number' ? Math.round((x - result.encodeMs) * 100) / 100 : undefined)
    result.promptMs = minus(result.perfPromptEvalMs)
    result.ttftMs = minus(result.ttftFromFileMs)
  }
  return result
}

module.exports = { FUGOOD_VERSION, depsDir, ensureFugood, fugoodLogTimings }
