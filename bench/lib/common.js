'use strict'
// What every benchmarked system is given (prompts), and the pieces the child processes share:
// the event-loop lag monitor and the result file that survives a crash half-way.
const fs = require('node:fs')
const { monitorEventLoopDelay } = require('node:perf_hooks')

/** The question about the image. llama-mtmd-cli gets it as `-p`, puts the image marker in front and applies the chat template. */
const QUESTION = 'Describe the image in detail.'
/** The second turn's question (llava-native only). */
const FOLLOW_UP = 'What colour is the disc, and where is it?'

/**
 * The prompt llama-mtmd-cli builds from `-p QUESTION` with the LLaVA-1.5 (vicuna) template of the
 * benchmark pair: `USER: <image>QUESTION\nASSISTANT:`. `marker` is the image marker of the API
 * that gets it ('<image>' for llava-native, '<__media__>' for @fugood/llama.node).
 */
function imagePrompt(marker) {
  return `USER: ${marker}${QUESTION}\nASSISTANT:`
}

// About 256 tokens with the synthetic pair's vocabulary (whose pieces are mostly single
// characters): the children report the exact count they evaluated.
const TEXT_PROMPT =
  'USER: Read this note and summarise it.\n' +
  'The river rose in the night, and by morning the low road was gone. ' +
  'Farmers moved the sheep to the hill, where the grass was thin but dry. ' +
  'The ferry stopped at noon. ' +
  'By evening the water had turned, and the children came out to count the boats.\n' +
  'Nobody was hurt. The mill lost its lower floor, the bakery opened late, and the bridge will be checked on Monday.\n' +
  'ASSISTANT:'

/** Four different text prompts for the sessions that generate at once. */
const PARALLEL_PROMPTS = [
  'USER: Tell a short story about a lighthouse.\nASSISTANT:',
  'USER: List five uses of a paper clip.\nASSISTANT:',
  'USER: Explain how a bicycle stays upright.\nASSISTANT:',
  'USER: Write a letter to a friend about the sea.\nASSISTANT:',
]

/**
 * Worst event-loop lag per phase, from Node's native event-loop delay monitor at `intervalMs`
 * resolution: no JS runs per tick, so watching costs the compute threads less than a JS timer
 * does (bench/timer-cost.js compares the two). `take()` closes the current phase (counting a
 * block that just ended, e.g. a synchronous native call) and starts the next.
 */
class LagMonitor {
  constructor(intervalMs = 5) {
    this.intervalMs = intervalMs
    this.histogram = null
  }

  // A fresh monitor per phase (reset() drops the tick in progress). A monitor records nothing
  // until its first tick, so this waits for that tick: a phase that blocks the JS thread at once
  // is then measured too.
  async #start() {
    this.histogram = monitorEventLoopDelay({ resolution: this.intervalMs })
    this.histogram.enable()
    const first = this.histogram.count
    while (this.histogram.count === first) await new Promise((resolve) => setTimeout(resolve, 1))
  }

  /** Starts the first phase. */
  async begin() {
    await this.#start()
  }

  /** Ends the phase and starts the next: its worst delay beyond the monitor's interval, in ms. */
  async take() {
    // A native call that blocked the JS thread until just now has not been recorded yet: the
    // monitor's overdue timer fires before this one.
    await new Promise((resolve) => setTimeout(resolve, 1))
    // Each sample is the time between two ticks: the interval plus the delay.
    const worst = this.histogram.count > 0 ? Math.max(this.histogram.max / 1e6 - this.intervalMs, 0) : 0
    this.histogram.disable()
    await this.#start()
    return round(worst)
  }

  stop() {
    this.histogram.disable()
  }
}

function round(x, digits = 2) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** Peak resident set size of this process so far, in MiB. */
function peakRssMb() {
  return round(process.resourceUsage().maxRSS / 1024, 1) // maxRSS is in KiB
}

/**
 * A result object written to `file` after every phase, so that a child killed by its timeout or a
 * crash still leaves what it had measured. `fail(err)` records the error and exits non-zero.
 */
function resultFile(file, initial) {
  const result = { ok: false, ...initial }
  const save = () => fs.writeFileSync(file, JSON.stringify(result, null, 2))
  save()
  return {
    result,
    save,
    done() {
      result.ok = true
      save()
    },
    fail(err) {
      result.error = err && err.stack ? String(err.stack) : String(err)
      save()
    },
  }
}

/** Reads `node child.js <config.json> <result.json>`. */
function childArgs() {
  const [configFile, resultPath] = process.argv.slice(2)
  if (!configFile || !resultPath) throw new Error('usage: node <child>.js <config.json> <result.json>')
  return { config: JSON.parse(fs.readFileSync(configFile, 'utf8')), resultPath }
}

/**
 * Runs a child's main(), records a failure in its result file, and always exits: some bindings
 * keep the process alive after their work is done.
 */
function exitWhenDone(main, out) {
  main().then(
    () => process.exit(0),
    (err) => {
      out.fail(err)
      console.error(err)
      process.exit(1)
    },
  )
}

/** Walks command-line arguments: onArg(arg, value) for each, where value() takes the next one as its value. */
function eachArg(argv, onArg) {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    onArg(arg, () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    })
  }
}

module.exports = {
  eachArg,
  FOLLOW_UP,
  LagMonitor,
  PARALLEL_PROMPTS,
  QUESTION,
  TEXT_PROMPT,
  childArgs,
  imagePrompt,
  peakRssMb,
  resultFile,
  round,
  exitWhenDone,
}
