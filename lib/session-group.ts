import { fromNative } from './errors'
import { Lifetime } from './lifetime'
import type { Model } from './model'
import type { NativeSessionGroup, NativeSessionParams } from './native-types'
import { Session, type SessionOptions } from './session'
import { WeakObjectSet } from './weak-set'

/** Options for {@link Model.createSessionGroup}. */
export interface SessionGroupOptions extends SessionOptions {
  /** How many sessions the group holds at most (each gets `contextSize` tokens of its own). */
  sessions: number
}

/**
 * Sessions that share one context, so that their work is decoded together: while several of them
 * generate, each step evaluates one token of every session in a single pass over the weights.
 * Generation is bound by memory bandwidth, so four sessions generating at once cost far less than
 * four times one. The KV memory for every session is reserved when the first of them runs.
 *
 * Each session keeps its own KV cache (`contextSize` tokens), prefix reuse, save/load and reset;
 * calls on one session still run one at a time.
 */
export class SessionGroup {
  /** How many sessions the group holds at most. */
  readonly size: number
  /** Context size of each session. */
  readonly contextSize: number
  readonly #model: Model
  readonly #params: NativeSessionParams
  readonly #native: NativeSessionGroup
  readonly #lifetime = new Lifetime('session group')
  readonly #sessions = new WeakObjectSet<Session>()
  readonly #onDispose: (g: SessionGroup) => void

  /** @internal */
  constructor(model: Model, params: NativeSessionParams, size: number, onDispose: (g: SessionGroup) => void) {
    this.#model = model
    this.#params = params
    this.size = size
    this.contextSize = params.contextSize
    this.#onDispose = onDispose
    try {
      this.#native = new model.binding.SessionGroup(model.native, params, size)
    } catch (err) {
      throw fromNative(err)
    }
  }

  get disposed(): boolean {
    return this.#lifetime.disposed
  }

  /** Sessions that can still be created (disposing a session frees its place). */
  get available(): number {
    if (this.#lifetime.disposed) return 0
    return this.#native.freeSessions()
  }

  /** A new session in this group. Throws `ERR_GROUP_FULL` when all `size` sessions are in use. */
  createSession(): Session {
    this.#lifetime.assertAlive('create a new one with model.createSessionGroup()')
    this.#model.assertAlive()
    const session = new Session(this.#model, this.#params, (s) => this.#sessions.delete(s), this.#native)
    this.#sessions.add(session)
    return session
  }

  /** Disposes the group's sessions (waiting for their running work), then the shared context. Idempotent. */
  dispose(): Promise<void> {
    return this.#lifetime.dispose(
      () => undefined,
      async () => {
        await Promise.all(this.#sessions.values().map((s) => s.dispose()))
        this.#native.dispose()
        this.#onDispose(this)
      },
    )
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}
