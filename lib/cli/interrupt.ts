// Ctrl-C: the first one aborts the running operation through its AbortSignal; a second one within a
// second (or one while an abort is still being honoured) ends the process at once with 130.
// Between operations (at the chat prompt) it calls onIdle.
import { EXIT, Interrupted } from './exit'

const DOUBLE_PRESS_MS = 1000

function exitNow(): never {
  process.stderr.write('\n')
  process.exit(EXIT.INTERRUPTED)
}

export class Interrupter {
  #current: AbortController | null = null
  #last = Number.NEGATIVE_INFINITY
  readonly #onIdle: () => void

  constructor(onIdle: () => void = exitNow) {
    this.#onIdle = onIdle
  }

  /** Listens to SIGINT (Ctrl-C on a terminal, or `kill -INT`). */
  install(): this {
    process.on('SIGINT', this.handle)
    return this
  }

  uninstall(): void {
    process.off('SIGINT', this.handle)
  }

  /** A signal for the next operation, aborted with an {@link Interrupted} reason by Ctrl-C. */
  begin(): AbortSignal {
    this.#current = new AbortController()
    return this.#current.signal
  }

  /** The operation ended: Ctrl-C now means onIdle. */
  end(): void {
    this.#current = null
  }

  readonly handle = (): void => {
    const now = Date.now()
    const double = now - this.#last < DOUBLE_PRESS_MS
    this.#last = now
    const current = this.#current
    if (double || current?.signal.aborted) exitNow()
    if (current) current.abort(new Interrupted())
    else this.#onIdle()
  }
}
