'use strict'
// Medians, ranges and ratios of the runs, as a table and as JSON; the machine they ran on.
const fs = require('node:fs')
const os = require('node:os')

const SYSTEMS = [
  { id: 'llava', name: 'llava-native' },
  { id: 'reference', name: 'llama-mtmd-cli' },
  { id: 'fugood', name: '@fugood/llama.node' },
]

// better: which direction is better; null for figures that are checks, not scores.
// note: how a figure is obtained where the systems differ (printed under the table).
const FIGURES = [
  { key: 'loadMs', label: 'load: model + projector', unit: 'ms', better: 'lower', note: 'load' },
  { key: 'encodeMs', label: 'image encode (the encoder)', unit: 'ms', better: 'lower', note: 'encode' },
  { key: 'encodeCallMs', label: 'encodeImage() call, wall (decode + preprocess + encode)', unit: 'ms', better: 'lower' },
  { key: 'imagePrefillMs', label: 'image-token prefill', unit: 'ms', better: 'lower' },
  { key: 'promptMs', label: 'prompt eval, total (image + text)', unit: 'ms', better: 'lower', note: 'prompt' },
  { key: 'promptTokens', label: 'prompt tokens (should be equal)', unit: 'tok', better: null },
  { key: 'textPrefillTokPerS', label: 'text prefill (~256-token prompt)', unit: 'tok/s', better: 'higher' },
  { key: 'genTokPerS', label: 'generation', unit: 'tok/s', better: 'higher' },
  { key: 'generatedTokens', label: 'generated tokens', unit: 'tok', better: null },
  { key: 'ttftMs', label: 'time to first token, image encoded', unit: 'ms', better: 'lower', note: 'ttft' },
  { key: 'ttftFromFileMs', label: 'time to first token from image file', unit: 'ms', better: 'lower', note: 'ttftFile' },
  { key: 'peakRssMb', label: 'peak RSS', unit: 'MiB', better: 'lower' },
  { key: 'lag.load', label: 'event-loop lag (worst), load', unit: 'ms', better: 'lower' },
  { key: 'lag.encode', label: 'event-loop lag (worst), encode', unit: 'ms', better: 'lower' },
  { key: 'lag.generate', label: 'event-loop lag (worst), prefill + generate', unit: 'ms', better: 'lower', note: 'lagGen' },
  { key: 'turn2.ttftMs', label: '2nd turn: time to first token', unit: 'ms', better: 'lower' },
  { key: 'turn2Speedup', label: '2nd turn: 1st TTFT / 2nd TTFT (bar: >= 10)', unit: 'x', better: 'higher' },
  { key: 'turn2.reusedTokens', label: '2nd turn: reused tokens', unit: 'tok', better: null },
  { key: 'turn2.promptTokens', label: '2nd turn: prompt tokens', unit: 'tok', better: null },
  { key: 'turn2.evaluatedTokens', label: '2nd turn: tokens evaluated', unit: 'tok', better: null },
  { key: 'parallel.oneSessionGenTokPerS', label: '1 session alone, generation', unit: 'tok/s', better: 'higher', note: 'parallel' },
  { key: 'parallel.genTokPerS', label: '4 sessions at once, generation total', unit: 'tok/s', better: 'higher', note: 'parallel' },
  { key: 'parallel.scaling', label: '4 sessions / 1 session, generation', unit: 'x', better: 'higher' },
  { key: 'parallel.totalTokPerS', label: '4 sessions at once, total (wall, prompts included)', unit: 'tok/s', better: 'higher' },
]

const NOTES = {
  load: 'load: llava-native and @fugood/llama.node: wall time of the load call(s) in a fresh process; llama-mtmd-cli: log timestamp when both models are loaded and warmed up (process start included).',
  encode: "image encode: the vision encoder's own time, as llama.cpp's mtmd helper logs it for the CLI and @fugood/llama.node (\"image slice encoded in\"): llava-native's embedding.encoderMs, measured around the same mtmd_encode_chunk() call (the hop to the compute thread included). The whole encodeImage() call is on the next row.",
  prompt: "prompt eval: llava-native: timings.promptMs; the others: llama_perf's prompt eval time minus the encode time, which it spans (its timer runs from the text decoded before the image to the first sampling).",
  ttft: 'time to first token, image encoded: llava-native: measured, complete() call to first onToken (the session creates its context at this first call); llama-mtmd-cli: its prompt eval (derived); @fugood/llama.node: measured from the image file minus its logged encode time (derived).',
  ttftFile: "time to first token from image file: @fugood/llama.node: measured (it encodes inside completion()); llava-native: encodeImage() + the above (derived); llama-mtmd-cli: llama_perf's prompt eval time, encoder included (derived).",
  parallel: "4 sessions: llava-native: a session group of 4, each session its own prompt (~30 tokens, evaluated first) then 64 greedy tokens, all four at once: total generated tokens over the longest generation phase; the reference column: llama-batched-bench on the same text model and threads (-npp 32 -ntg 64 -npl 1,4, one KV stream per sequence as in a session group), its S_TG.",
  lagGen: 'event-loop lag, prefill + generate: for @fugood/llama.node this phase also encodes the image.',
}

function get(obj, key) {
  return key.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj)
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
}

/** { median, min, max, n } of a figure over the runs that have it, or null. */
function stats(runs, key) {
  const xs = runs.map((r) => get(r, key)).filter((x) => typeof x === 'number' && Number.isFinite(x))
  if (xs.length === 0) return null
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length }
}

function fmt(x) {
  if (x == null) return '–'
  const a = Math.abs(x)
  if (a >= 100 || Number.isInteger(x)) return String(Math.round(x))
  if (a >= 10) return x.toFixed(1)
  return x.toFixed(2)
}

function cell(s) {
  if (!s) return '–'
  if (s.n === 1 || s.min === s.max) return fmt(s.median)
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`
}

function ratioCell(a, b) {
  if (!a || !b || b.median === 0) return '–'
  return `${(a.median / b.median).toFixed(2)}x`
}

/** Per-figure statistics for every system, and the llava-native / other ratios. */
function summarize(runsBySystem) {
  return FIGURES.map((f) => {
    const row = { figure: f.label, key: f.key, unit: f.unit, better: f.better }
    for (const s of SYSTEMS) row[s.id] = stats(runsBySystem[s.id] || [], f.key)
    const ratio = (other) => (row.llava && row[other] && row[other].median !== 0 ? row.llava.median / row[other].median : null)
    row.ratioVsReference = ratio('reference')
    row.ratioVsFugood = ratio('fugood')
    return row
  })
}

/** The summary as a Markdown table (readable as plain text), rows without any value left out. */
function table(rows, present) {
  const systems = SYSTEMS.filter((s) => present.includes(s.id))
  const head = ['figure', 'unit', 'better', ...systems.map((s) => s.name)]
  if (present.includes('reference')) head.push('llava-native / cli')
  if (present.includes('fugood')) head.push('llava-native / fugood')
  const body = []
  const notes = new Set()
  for (const row of rows) {
    if (!systems.some((s) => row[s.id])) continue
    const f = FIGURES.find((x) => x.key === row.key)
    if (f.note) notes.add(f.note)
    const line = [row.figure, row.unit, row.better ?? '', ...systems.map((s) => cell(row[s.id]))]
    if (present.includes('reference')) line.push(row.better ? ratioCell(row.llava, row.reference) : '')
    if (present.includes('fugood')) line.push(row.better ? ratioCell(row.llava, row.fugood) : '')
    body.push(line)
  }
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((l) => l[i].length)))
  const fmtLine = (l) => `| ${l.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`
  const lines = [fmtLine(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(fmtLine)]
  const text = [
    lines.join('\n'),
    '',
    'Cells: median (min–max) over the rounds. Ratios are llava-native / other, of the medians: below 1 is better for',
    "llava-native where 'better' is lower, above 1 where it is higher.",
    ...[...notes].map((n) => `- ${NOTES[n]}`),
  ]
  return text.join('\n')
}

/** What the benchmark ran on. */
function machineInfo(threads) {
  let cpu = os.cpus()[0]?.model
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))
    if (m) cpu = m[1].trim()
  } catch {
    // not Linux
  }
  let llava = null
  try {
    const info = require('llava-native').systemInfo()
    llava = { version: info.version, llamaCppCommit: info.llamaCppCommit, backends: info.backends, cpuFeatures: info.cpuFeatures }
  } catch (err) {
    llava = { error: String(err.message || err) }
  }
  return {
    cpu,
    cores: os.cpus().length,
    availableParallelism: typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length,
    threadsUsed: threads,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${process.platform}-${process.arch}`,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    llavaNative: llava,
  }
}

module.exports = { FIGURES, SYSTEMS, machineInfo, summarize, table }
