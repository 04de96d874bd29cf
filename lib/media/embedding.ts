// What images and sounds share once encoded: the projector's output, reusable in any prompt or
// session of the model that made it, with the same lifetime rules.

import { Lifetime } from '../lifetime'
import type { NativeEmbedding } from '../native-types'

/**
 * An encoded image or sound: the projector's output, reusable in any prompt or session of the
 * model that made it without encoding again. Dispose it when done, or let the model's dispose()
 * do it.
 */
export abstract class MediaEmbedding {
  /** Tokens the medium occupies in a prompt. */
  readonly nTokens: number
  /** Width of each token's embedding (the text model's input width). */
  readonly nEmbd: number
  /** A content hash of the decoded pixels or samples: equal content has equal ids. */
  readonly id: string
  /** How long the whole call took: decoding, preprocessing and encoding. */
  readonly encodeMs: number
  /** How long the encoder itself ran (the figure llama.cpp's tools log); 0 when `reused`. */
  readonly encoderMs: number
  /** true when the model already held an embedding of the same content, so nothing was encoded. */
  readonly reused: boolean

  /** @internal */
  readonly native: NativeEmbedding
  /** @internal */
  readonly owner: object
  readonly #lifetime: Lifetime
  readonly #onDispose: (e: MediaEmbedding) => void
  readonly #again: string

  /** @internal */
  protected constructor(native: NativeEmbedding, owner: object, onDispose: (e: MediaEmbedding) => void, what: string, again: string) {
    const info = native.info()
    this.native = native
    this.owner = owner
    this.nTokens = info.nTokens
    this.nEmbd = info.nEmbd
    this.id = info.id
    this.encodeMs = native.encodeMs
    this.encoderMs = native.encoderMs
    this.reused = native.reused
    this.#lifetime = new Lifetime(what)
    this.#onDispose = onDispose
    this.#again = again
  }

  get disposed(): boolean {
    return this.#lifetime.disposed
  }

  /** @internal */
  assertAlive(): void {
    this.#lifetime.assertAlive(this.#again)
  }

  /** A copy of the embeddings: nTokens rows of nEmbd floats. */
  toFloat32Array(): Float32Array {
    this.assertAlive()
    return this.native.toFloat32Array()
  }

  /** Frees the embeddings. Idempotent. Prompts already running keep their own reference. */
  dispose(): Promise<void> {
    return this.#lifetime.dispose(
      () => this.#onDispose(this),
      () => this.native.dispose(),
    )
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}
