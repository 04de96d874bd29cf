// Argument checks with one message template: "Expected <what> for <option> but received <value>".
import { LlavaError } from './errors'

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value)
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value)
  if (typeof value === 'function') return 'a function'
  if (Array.isArray(value)) return `an array of length ${value.length}`
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`
  return `${typeof value} ${String(value)}`
}

export function invalid(option: string, expected: string, value: unknown): LlavaError {
  return new LlavaError('ERR_INVALID_ARGUMENT', `Expected ${expected} for ${option} but received ${describe(value)}`, {
    details: { option },
  })
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
  }
  return d[a.length][b.length]
}

/** Refuses option names a function does not know, naming the closest known one. */
export function checkKeys(where: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue
    let best = ''
    let bestDistance = Infinity
    for (const k of known) {
      const dist = editDistance(key.toLowerCase(), k.toLowerCase())
      if (dist < bestDistance) {
        best = k
        bestDistance = dist
      }
    }
    const hint = bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? ` Did you mean '${best}'?` : ''
    throw new LlavaError('ERR_INVALID_ARGUMENT', `Unknown option '${key}' for ${where}.${hint} Known options: ${known.join(', ')}.`, {
      details: { option: key },
    })
  }
}

export function optionsObject<T extends object>(where: string, value: T | undefined): T {
  if (value === undefined) return {} as T
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid(where, 'an options object', value)
  return value
}

export function int(option: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(option, `an integer between ${min} and ${max}`, value)
  }
  return value
}

export function num(option: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalid(option, `a finite number between ${min} and ${max}`, value)
  }
  return value
}

export function bool(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw invalid(option, 'a boolean', value)
  return value
}

export function str(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(option, 'a non-empty string', value)
  if (value.includes('\0')) throw invalid(option, 'a string without NUL characters', value)
  return value
}

export function fn<T extends (...args: never[]) => unknown>(option: string, value: unknown): T | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw invalid(option, 'a function', value)
  return value as T
}

export function signal(option: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object' || typeof (value as AbortSignal).aborted !== 'boolean' ||
      typeof (value as AbortSignal).addEventListener !== 'function') {
    throw invalid(option, 'an AbortSignal', value)
  }
  return value as AbortSignal
}
