import { binding } from './native'
import * as v from './validate'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

type Sink = ((level: string, message: string) => void) & { level: LogLevel }
let current: Sink | null = null
const listeners = new Set<(level: LogLevel | null) => void>()

/**
 * Routes llama.cpp's, ggml's and mtmd's log messages at or above `level` (default 'warn') to
 * `logger`. Pass null to silence them again (the default). Models loaded with
 * `isolation: 'process'` send their child process's messages here too.
 */
export function setLogger(logger: ((level: LogLevel, message: string) => void) | null, options?: { level?: LogLevel }): void {
  if (logger !== null && typeof logger !== 'function') throw v.invalid('logger', 'a function or null', logger)
  const o = v.optionsObject('setLogger options', options)
  v.checkKeys('setLogger()', o, ['level'])
  const level = o.level ?? 'warn'
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw v.invalid('level', "'debug', 'info', 'warn' or 'error'", level)
  const safe = logger
    ? Object.assign(
        (lvl: string, message: string): void => {
          try {
            logger(lvl as LogLevel, message)
          } catch {
            // A throwing logger must not take the model down.
          }
        },
        { level },
      )
    : null
  binding().setLogCallback(safe, level)
  current = safe
  for (const l of listeners) l(safe ? level : null)
}

/** @internal The logger set with setLogger(), for messages of isolated models' processes. */
export function currentLogger(): Sink | null {
  return current
}

/** @internal Follows setLogger(); returns the unsubscribe. */
export function onLoggerChange(listener: (level: LogLevel | null) => void): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}
