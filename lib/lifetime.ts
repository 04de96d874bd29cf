// Tracks the operations running on a native object so that dispose() can wait for them, and
// refuses new work once disposal has begun.
import { LlavaError } from './errors'

export class Lifetime {
  readonly #what: string
  readonly #inflight = new Set<Promise<unknown>>()
  #disposing: Promise<void> | undefined

  constructor(what: string) {
    this.#what = what
  }

  get disposed(): boolean {
    return this.#disposing !== undefined
  }

  get busy(): boolean {
    return this.#inflight.size > 0
  }

  assertAlive(hint: string): void {
    if (this.#disposing) throw new LlavaError('ERR_DISPOSED', `This ${this.#what} has been disposed; ${hint}`)
  }

  /** Runs `op` as tracked work; dispose() waits for it. */
  track<T>(op: Promise<T>): Promise<T> {
    this.#inflight.add(op)
    const done = (): void => {
      this.#inflight.delete(op)
    }
    op.then(done, done)
    return op
  }

  /** Idempotent: the first call runs `beforeWait`, waits for tracked work, then `release`. */
  dispose(beforeWait: () => void, release: () => void | Promise<void>): Promise<void> {
    if (!this.#disposing) {
      this.#disposing = (async () => {
        beforeWait()
        await Promise.allSettled([...this.#inflight])
        await release()
      })()
    }
    return this.#disposing
  }
}
