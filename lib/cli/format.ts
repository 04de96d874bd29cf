// Formatting numbers, sizes and timings for people.
import type { CompletionResult } from '../index'

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`
}

/** 1234 → 1.23 K, 7241732096 → 7.24 B */
export function formatCount(n: number): string {
  const units: Array<[number, string]> = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']]
  for (const [size, suffix] of units) if (n >= size) return `${(n / size).toFixed(2)} ${suffix}`
  return String(n)
}

export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`
}

function rate(tokens: number, ms: number): string {
  return ms > 0 ? `, ${(tokens / (ms / 1000)).toFixed(1)} tokens/s` : ''
}

/** One line: image encoding, prompt evaluation and generation, with speeds. */
export function formatTimings(t: CompletionResult['timings']): string {
  const parts: string[] = []
  if (t.imageEncodes > 0) parts.push(`${t.imageEncodes} image(s) encoded in ${formatMs(t.imageEncodeMs)}`)
  const evaluated = t.promptTokens - t.reusedTokens
  const reused = t.reusedTokens > 0 ? ` (${t.reusedTokens} reused from the cache)` : ''
  parts.push(`prompt ${t.promptTokens} tokens${reused}: ${formatMs(t.promptMs)}${rate(evaluated, t.promptMs)}`)
  parts.push(`answer ${t.generatedTokens} tokens: ${formatMs(t.generateMs)}${rate(t.generatedTokens, t.generateMs)}`)
  return parts.join(' · ')
}

/** Aligned `label  value` lines. */
export function table(rows: Array<[string, string]>, minWidth = 0): string {
  const width = Math.max(minWidth, ...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n'
}

/** JSON.stringify that writes bigints as numbers when they are safe, as strings otherwise. */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v: unknown) => (typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v),
    2,
  )
}
