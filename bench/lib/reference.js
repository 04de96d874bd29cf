'use strict'
// llama.cpp's reference program, llama-mtmd-cli, built from the same llama.cpp tree as the addon
// (LLAVA_NATIVE_REFERENCE=1 npm run build:native). It is run under a small wrapper that reports
// its peak RSS, and its figures are read from the timing lines it logs.
const fs = require('node:fs')
const path = require('node:path')
const { QUESTION, round } = require('./common')
const { runChild, tail } = require('./spawn')

// Runs the command given after the output path; writes its exit code and its peak RSS (KiB, from
// getrusage of the waited-for children) to that path; exits with the command's code.
const RSS_WRAPPER = [
  'import json, resource, subprocess, sys',
  'p = subprocess.run(sys.argv[2:])',
  'ru = resource.getrusage(resource.RUSAGE_CHILDREN)',
  "open(sys.argv[1], 'w').write(json.dumps({'rc': p.returncode, 'maxrssKb': ru.ru_maxrss}))",
  'sys.exit(p.returncode if p.returncode >= 0 else 128 - p.returncode)',
].join('\n')

function cliPath(root) {
  return path.join(root, 'build', 'bin', process.platform === 'win32' ? 'llama-mtmd-cli.exe' : 'llama-mtmd-cli')
}

function haveCommand(cmd, args) {
  try {
    require('node:child_process').execFileSync(cmd, args, { stdio: 'ignore', timeout: 10000 })
    return true
  } catch {
    return false
  }
}

/** How peak RSS is taken: python3's getrusage, else GNU time, else not at all. */
function rssMethod() {
  if (haveCommand('python3', ['-c', 'import resource'])) return 'python3'
  if (fs.existsSync('/usr/bin/time') && haveCommand('/usr/bin/time', ['-f', '%M', 'true'])) return 'gnu-time'
  return null
}

// "0.00.022.114 I main: ..." is minutes.seconds.milliseconds.microseconds since the logger started.
function logTimestampMs(line) {
  const m = /^(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) /.exec(line)
  return m ? Number(m[1]) * 60000 + Number(m[2]) * 1000 + Number(m[3]) + Number(m[4]) / 1000 : undefined
}

/**
 * llama_perf's "prompt eval time" runs from the first decode after the last sampling to the next
 * sampling (llama_context's t_compute_start_us .. synchronize()). With an image in the prompt it
 * therefore also spans the image encoder, which runs between the decode of the text before the
 * image and the decode of the image tokens. Prompt evaluation proper is that time minus encoding.
 * Nothing reports the first token's time, so time to first token is derived: with the image already
 * encoded, prompt evaluation; from the image file, encoding and prompt evaluation.
 */
function promptFromPerf(perfPromptEvalMs, encodeMs) {
  if (perfPromptEvalMs === undefined) return {}
  const promptMs = encodeMs !== undefined ? round(perfPromptEvalMs - encodeMs) : perfPromptEvalMs
  return { promptMs, ttftMs: promptMs, ttftFromFileMs: perfPromptEvalMs }
}

/** The figures in llama-mtmd-cli's log (stderr), as the same names llava-native's child reports. */
function parseCliLog(stderr) {
  const lines = stderr.split('\n')
  const out = {}
  let decodeMs = 0
  let decodeBatches = 0
  for (const line of lines) {
    let m
    // Both models loaded and warmed up: the line main() prints right after constructing its context.
    if (/ main: loading model: /.test(line) && out.loadMs === undefined) out.loadMs = logTimestampMs(line)
    // "mtmd batch encoding done in N ms" (this llama.cpp) or "image slice encoded in N ms" (older ones)
    if ((m = /(?:encoding done|encoded) in (\d+(?:\.\d+)?) ms/.exec(line))) out.encodeMs = (out.encodeMs ?? 0) + Number(m[1])
    if ((m = /decoded \(batch \d+\/\d+\) in (\d+(?:\.\d+)?) ms/.exec(line))) {
      decodeMs += Number(m[1])
      decodeBatches++
    }
    if ((m = /llama_perf_context_print:\s+load time =\s*([\d.]+) ms/.exec(line))) out.perfLoadMs = Number(m[1])
    if ((m = /prompt eval time =\s*([\d.]+) ms \/\s*(\d+) tokens/.exec(line))) {
      out.perfPromptEvalMs = Number(m[1])
      out.promptTokens = Number(m[2])
    }
    if ((m = /llama_perf_context_print:\s+eval time =\s*([\d.]+) ms \/\s*(\d+) runs.*?([\d.]+) tokens per second/.exec(line))) {
      out.generateMs = Number(m[1])
      out.evalRuns = Number(m[2])
      out.genTokPerS = Number(m[3])
    }
  }
  if (decodeBatches > 0) out.imagePrefillMs = decodeMs
  Object.assign(out, promptFromPerf(out.perfPromptEvalMs, out.encodeMs))
  return out
}

/**
 * One run of llama-mtmd-cli with the benchmark's flags. `-lv 4` makes it print its timing lines
 * (with the default verbosity they are not all printed); nothing else differs from a plain run.
 */
async function runReference({ root, model, mmproj, image, nPredict, threads, contextSize, timeoutMs, workDir, rss, wrap }) {
  const cli = cliPath(root)
  // Without `threads`, llama.cpp's own default (its physical-core count).
  const args = ['-m', model, '--mmproj', mmproj, '--image', image, '-p', QUESTION, '-n', String(nPredict), '--temp', '0',
    ...(threads === undefined ? [] : ['-t', String(threads)]), '-c', String(contextSize), '-lv', '4']
  const rssFile = path.join(workDir, `reference-rss-${process.hrtime.bigint()}.json`)
  let cmd = cli
  let cmdArgs = args
  if (rss === 'python3') {
    cmd = 'python3'
    cmdArgs = ['-c', RSS_WRAPPER, rssFile, cli, ...args]
  } else if (rss === 'gnu-time') {
    cmd = '/usr/bin/time'
    cmdArgs = ['-f', '{"maxrssKb": %M}', '-o', rssFile, cli, ...args]
  }
  const quote = (a) => (/^[\w./:=+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)
  const result = { system: 'reference', ok: false, command: [path.relative(root, cli), ...args].map(quote).join(' ') }
  // `wrap` runs the command inside something else (bench/contention.js: a CPU-quota cgroup).
  if (wrap) [cmd, cmdArgs] = wrap(cmd, cmdArgs)
  const run = await runChild(cmd, cmdArgs, { timeoutMs })
  result.wallMs = round(run.wallMs)
  Object.assign(result, parseCliLog(run.stderr))
  const answer = run.stdout.replace(/^\n/, '').replace(/\n+$/, '')
  if (answer) result.answer = answer
  try {
    const rssInfo = JSON.parse(fs.readFileSync(rssFile, 'utf8'))
    result.peakRssMb = round(rssInfo.maxrssKb / 1024, 1)
    fs.rmSync(rssFile, { force: true })
  } catch {
    // no wrapper, or it was killed
  }
  if (run.timedOut) result.error = `timed out after ${timeoutMs / 1000} s`
  else if (run.code !== 0) result.error = `exit code ${run.code}${run.signal ? ` (${run.signal})` : ''}: ${tail(run.stderr, 1500)}`
  else if (result.perfPromptEvalMs === undefined) result.error = `no timing lines in its log: ${tail(run.stderr, 1500)}`
  else result.ok = true
  return result
}

module.exports = { cliPath, parseCliLog, promptFromPerf, rssMethod, runReference }

function batchedBenchPath(root) {
  return path.join(root, 'build', 'bin', process.platform === 'win32' ? 'llama-batched-bench.exe' : 'llama-batched-bench')
}

/**
 * llama-batched-bench on the text model: decoding speed for 1 and for `sessions` sequences at once,
 * each with a `promptTokens` prompt and `nPredict` generated tokens, one KV stream per sequence.
 * Returns { oneSessionGenTokPerS, genTokPerS, scaling } from its S_TG column.
 */
async function runBatchedBench({ root, model, threads, contextSize, nPredict, sessions = 4, promptTokens = 32, timeoutMs }) {
  const bin = batchedBenchPath(root)
  const args = ['-m', model, '-c', String(contextSize * sessions), '-b', '2048', '-ub', '512', '-npp', String(promptTokens),
    '-ntg', String(nPredict), '-npl', `1,${sessions}`, '-t', String(threads), '-tb', String(threads)]
  const run = await runChild(bin, args, { timeoutMs })
  const rows = {}
  for (const line of `${run.stdout}\n${run.stderr}`.split('\n')) {
    const cells = line.split('|').map((c) => c.trim()).filter(Boolean)
    if (cells.length === 10 && /^\d+$/.test(cells[2])) rows[Number(cells[2])] = Number(cells[7])
  }
  const command = [path.relative(root, bin), ...args].join(' ')
  if (run.code !== 0 || rows[1] === undefined || rows[sessions] === undefined) {
    return { error: `llama-batched-bench failed (exit ${run.code}): ${tail(run.stderr || run.stdout, 800)}`, command }
  }
  return { oneSessionGenTokPerS: rows[1], genTokPerS: rows[sessions], scaling: round(rows[sessions] / rows[1]), command }
}

module.exports.batchedBenchPath = batchedBenchPath
module.exports.runBatchedBench = runBatchedBench
