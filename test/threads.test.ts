// Adaptive thread counts: the governor's choices against scripted machines (exact, no timing),
// and results that do not depend on how many threads computed them.
import { loadModel } from '../lib'
import { binding } from '../lib/native'
import { greedy, tinyPair } from './helpers/fixtures'

type Cost = (step: number, threads: number) => number

function trace(maxThreads: number, steps: number, cost: Cost, tokens = 1, hint?: { threads: number; ageSeconds: number }): number[] {
  return Array.from(binding().traceThreadGovernor(maxThreads, steps, cost, tokens, hint?.threads, hint?.ageSeconds))
}

const share = (xs: number[], n: number): number => xs.filter((x) => x === n).length / xs.length

// Step times in seconds: on an idle machine 2 threads take 1.0 and 1 thread 1.7 (the benchmark
// pair's ratio); with another process on one of the two cores 2 threads take 5.0, 1 thread 1.2.
const idle: Cost = (_s, t) => (t === 2 ? 1.0 : 1.7)
const busy: Cost = (_s, t) => (t === 2 ? 5.0 : 1.2)

describe('thread governor', () => {
  test('an idle machine keeps every thread, and pays about 1% for watching', () => {
    const chosen = trace(2, 5000, idle)
    expect(share(chosen.slice(100), 2)).toBeGreaterThan(0.98) // the rest: trials of one thread
    const extra = chosen.reduce((sum, t) => sum + idle(0, t), 0) / (chosen.length * idle(0, 2)) - 1
    expect(extra).toBeLessThan(0.015)
  })

  test('a busy machine moves to fewer threads within a few dozen steps and stays there', () => {
    const chosen = trace(2, 3000, busy)
    const moved = chosen.indexOf(1)
    expect(moved).toBeGreaterThanOrEqual(0)
    expect(moved).toBeLessThan(32)
    // afterwards, a trial of two threads is cut short after its first step
    const after = chosen.slice(moved)
    expect(after.some((t, i) => t === 2 && after[i + 1] === 2)).toBe(false)
    expect(share(chosen.slice(100), 1)).toBeGreaterThan(0.98)
    const cost = chosen.slice(100).reduce((sum, t) => sum + busy(0, t), 0) / ((chosen.length - 100) * busy(0, 1))
    expect(cost).toBeLessThan(1.03) // trials of two threads, cut short after one step
  })

  test('load that comes and goes: the governor follows it both ways', () => {
    const phases: Cost = (s, t) => (s >= 1000 && s < 3000 ? busy(s, t) : idle(s, t))
    const chosen = trace(2, 5000, phases)
    // Long idle: the trials have spaced out to the longest interval; the rise of the step times
    // still triggers a trial at once.
    const movedDown = chosen.indexOf(1, 1000) - 1000
    expect(movedDown).toBeGreaterThanOrEqual(0)
    expect(movedDown).toBeLessThan(16)
    expect(share(chosen.slice(1100, 3000), 1)).toBeGreaterThan(0.98)
    // After the load: back to two threads within the longest trial interval (256 steps) and a window.
    const backUp = chosen.slice(3000).findIndex((t, i) => t === 2 && chosen[3000 + i + 1] === 2 && chosen[3000 + i + 2] === 2)
    expect(backUp).toBeGreaterThanOrEqual(0)
    expect(backUp).toBeLessThan(256 + 16)
    expect(share(chosen.slice(-1000), 2)).toBeGreaterThan(0.98)
  })

  test('many cores: one fewer, then halvings, are tried in turn and the best count is found', () => {
    // 8 cores where 4 threads are fastest (U-shaped cost)
    const cost: Cost = (_s, t) => ({ 8: 2.0, 7: 1.8, 4: 1.0, 2: 1.5, 1: 2.5 })[t] ?? 99
    const chosen = trace(8, 3000, cost)
    expect(new Set(chosen)).toEqual(new Set([8, 7, 4, 2]))
    expect(share(chosen.slice(500), 4)).toBeGreaterThan(0.98)
    // one core taken on a 4-core machine: 3 threads
    const oneTaken: Cost = (_s, t) => ({ 4: 3.0, 3: 1.0, 2: 1.3, 1: 2.2 })[t] ?? 99
    expect(share(trace(4, 2000, oneTaken).slice(200), 3)).toBeGreaterThan(0.98)
  })

  test("a new session starts from what the model's other sessions found recently", () => {
    // under load, told that 1 thread won 2 s ago: no step at the slow count before the first trial
    const told = trace(2, 200, busy, 1, { threads: 1, ageSeconds: 2 })
    expect(told.slice(0, 60).every((t) => t === 1)).toBe(true)
    // a stale hint (a minute old) is ignored: the session learns for itself
    const stale = trace(2, 200, busy, 1, { threads: 1, ageSeconds: 60 })
    expect(stale.slice(0, 8).every((t) => t === 2)).toBe(true)
    expect(share(stale.slice(40), 1)).toBeGreaterThan(0.95)
    // a hint that turns out wrong (the load went away) is corrected like any other choice
    const wrong = trace(2, 2000, idle, 1, { threads: 1, ageSeconds: 2 })
    expect(wrong[0]).toBe(1)
    expect(share(wrong.slice(200), 2)).toBeGreaterThan(0.98)
  })

  test('one thread, or steps of several tokens, are governed apart and within bounds', () => {
    expect(trace(1, 200, busy).every((t) => t === 1)).toBe(true)
    const group = trace(2, 2000, busy, 4) // a session group's step of 4 tokens
    expect(share(group.slice(100), 1)).toBeGreaterThan(0.98)
  })
})

describe('results do not depend on the thread count', () => {
  // The operation whose split depended on the thread count: single-query flash attention over
  // 512 cells or more divided them into one chunk per thread, and its f16 accumulators made the
  // output differ by ~1e-3 between 1 and 2 threads (measured on the unpatched tree). Fixed-size
  // chunks (deps/patches/0004) make it bit-identical.
  const bits = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

  // Softmax attention in float64 from the very inputs the graph saw.
  function reference(r: ReturnType<ReturnType<typeof binding>['flashAttentionDecode']>, nKv: number, kvHeads: number): Float64Array {
    const D = 64
    const H = 8
    const out = new Float64Array(H * D)
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / kvHeads))
      const logits = new Float64Array(nKv)
      let max = -Infinity
      for (let c = 0; c < nKv; c++) {
        let dot = 0
        for (let d = 0; d < D; d++) dot += r.q[h * D + d] * r.k[(kh * nKv + c) * D + d]
        logits[c] = dot * 0.125 + r.mask[c]
        max = Math.max(max, logits[c])
      }
      let sum = 0
      for (let c = 0; c < nKv; c++) sum += logits[c] === -Infinity ? 0 : Math.exp(logits[c] - max)
      for (let c = 0; c < nKv; c++) {
        if (logits[c] === -Infinity) continue
        const p = Math.exp(logits[c] - max) / sum
        for (let d = 0; d < D; d++) out[h * D + d] += p * r.v[(kh * nKv + c) * D + d]
      }
    }
    return out
  }

  test('flash attention for one query: right, and bit-identical with 1 to 7 threads', () => {
    for (const nKv of [100, 511, 512, 513, 768, 1000, 4096]) {
      for (const kvHeads of [8, 2]) {
        const one = binding().flashAttentionDecode(nKv, 1, nKv + kvHeads, kvHeads)
        const want = reference(one, nKv, kvHeads)
        let worst = 0
        one.out.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - want[i]))))
        expect(worst).toBeLessThan(2e-3) // f16 queries and accumulators
        for (const threads of [2, 3, 4, 7]) {
          const other = binding().flashAttentionDecode(nKv, threads, nKv + kvHeads, kvHeads)
          expect(bits(other.out).equals(bits(one.out))).toBe(true)
        }
      }
    }
  })

  // A prompt long enough that flash attention takes its single-query split-KV path (>= 512
  // cells), which divided the cache into one chunk per thread before deps/patches/0004.
  const prompt = `USER: ${'the sky over the sea is wide and the water is deep. '.repeat(28)}\nASSISTANT:`

  test('greedy tokens with 1 and 2 threads, flash attention on and off, and with the governor', async () => {
    const pair = tinyPair()
    const answers: Record<string, number[]> = {}
    for (const flashAttention of [true, false]) {
      for (const [name, options] of [
        ['1', { threads: 1, adaptiveThreads: false }],
        ['2', { threads: 2, adaptiveThreads: false }],
        ['adaptive', { threads: 2, adaptiveThreads: true }],
      ] as const) {
        const model = await loadModel({ ...pair, ...options, flashAttention, contextSize: 1024 })
        try {
          const s = model.createSession()
          const r = await s.complete({ prompt, maxTokens: 48, ...greedy })
          expect(r.timings.promptTokens).toBeGreaterThan(512)
          answers[`${String(flashAttention)}-${name}`] = r.tokens
          await s.dispose()
        } finally {
          await model.dispose()
        }
      }
    }
    expect(answers['true-2']).toEqual(answers['true-1'])
    expect(answers['true-adaptive']).toEqual(answers['true-1'])
    expect(answers['false-2']).toEqual(answers['false-1'])
    expect(answers['false-adaptive']).toEqual(answers['false-1'])
  })
})
