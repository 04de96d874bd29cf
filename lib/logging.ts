import { binding } from './native'
import * as v from './validate'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

/**
 * Routes llama.cpp's, ggml's and mtmd's log messages at or above `level` (default 'warn') to
 * `logger`. Pass null to silence them again (the default).
 */
export function setLogger(logger: ((level: LogLevel, message: string) => void) | null, options?: { level?: LogLevel }): void {
  if (logger !== null && typeof logger !== 'function') throw v.invalid('logger', 'a function or null', logger)
  const o = v.optionsObject('setLogger options', options)
  v.checkKeys('setLogger()', o, ['level'])
  const level = o.level ?? 'warn'
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw v.invalid('level', "'debug', 'info', 'warn' or 'error'", level)
  const safe = logger
    ? (lvl: string, message: string): void => {
        try {
          logger(lvl as LogLevel, message)
        } catch {
          // A throwing logger must not take the model down.
        }
      }
    : null
  binding().setLogCallback(safe, level)
}
