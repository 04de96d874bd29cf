// Proxies with the addon's own surface (native-types.ts) whose work runs in a child process: the
// TypeScript layer above them is the same for in-process and isolated models, so validation,
// chat rendering, streaming, errors and lifetimes are the same too.
import { LlavaError } from '../errors'
import type {
  ModelBinding,
  NativeAbortHandle,
  NativeAudioInput,
  NativeEmbedding,
  NativeGenerateRequest,
  NativeGenerateResult,
  NativeImageBytes,
  NativeImageInput,
  NativeLoadParams,
  NativeMediaInput,
  NativeModel,
  NativeModelInfo,
  NativePiece,
  NativeSession,
  NativeSessionGroup,
  NativeSessionParams,
} from '../native-types'
import { ChildChannel } from './channel'

/**
 * The child's objects of proxies dropped without dispose(): freed there when the proxy is
 * garbage-collected here, as the addon's own objects are in-process.
 */
const forgotten = new FinalizationRegistry<{ channel: ChildChannel; id: number }>(({ channel, id }) => channel.send('dispose', [id]))

/** An abort flag whose abort() reaches the child's own handle of the call it was given to. */
export class RemoteAbortHandle implements NativeAbortHandle {
  #aborted = false
  #target: { channel: ChildChannel; id: number } | undefined

  abort(): void {
    if (this.#aborted) return
    this.#aborted = true
    if (this.#target) this.#target.channel.send('abort', [this.#target.id])
  }

  aborted(): boolean {
    return this.#aborted
  }

  /** @internal The handle's number for a call, and whether it is aborted already. */
  attach(channel: ChildChannel): [number, boolean] {
    const id = channel.newId()
    this.#target = { channel, id }
    return [id, this.#aborted]
  }
}

function abortArgs(channel: ChildChannel, handle: NativeAbortHandle | undefined): [number | null, boolean] {
  if (handle === undefined) return [null, false]
  if (!(handle instanceof RemoteAbortHandle)) throw new LlavaError('ERR_INTERNAL', 'an in-process abort handle was given to an isolated model')
  return handle.attach(channel)
}

/** Media bytes gathered in the host, handed to the child without another copy (transferred). */
export class HostImageBytes implements NativeImageBytes {
  #bytes: Uint8Array | undefined
  #length = 0

  constructor(size: number) {
    this.#bytes = new Uint8Array(size)
  }

  copyFrom(source: Uint8Array, offset: number, length: number): void {
    if (!this.#bytes || length < 0 || offset < 0 || offset + length > source.byteLength || this.#length + length > this.#bytes.byteLength) {
      throw new LlavaError('ERR_INVALID_ARGUMENT', 'copyFrom out of range')
    }
    this.#bytes.set(source.subarray(offset, offset + length), this.#length)
    this.#length += length
  }

  seal(): void {}

  /** @internal The bytes, once: their memory moves to the transport thread. */
  take(transfer: ArrayBuffer[]): Uint8Array {
    const bytes = this.#bytes
    if (!bytes) throw new LlavaError('ERR_INTERNAL', 'these media bytes were already sent')
    this.#bytes = undefined
    transfer.push(bytes.buffer as ArrayBuffer)
    return bytes.subarray(0, this.#length)
  }
}

interface EmbeddingFacts {
  info: ReturnType<NativeEmbedding['info']>
  encodeMs: number
  encoderMs: number
  reused: boolean
}

/** One handle on an embedding held by the child. */
export class RemoteEmbedding implements NativeEmbedding {
  readonly #channel: ChildChannel
  readonly #facts: EmbeddingFacts
  #disposed = false
  /** @internal */
  readonly id: number

  /** @internal */
  constructor(channel?: ChildChannel, id?: number, facts?: EmbeddingFacts) {
    if (!channel || id === undefined || !facts) throw new LlavaError('ERR_INTERNAL', 'embeddings come from model.encodeImage() and model.encodeAudio()')
    this.#channel = channel
    this.id = id
    this.#facts = facts
    forgotten.register(this, { channel, id }, this)
  }

  get encodeMs(): number {
    return this.#facts.encodeMs
  }

  get encoderMs(): number {
    return this.#facts.encoderMs
  }

  get reused(): boolean {
    return this.#facts.reused
  }

  info(): EmbeddingFacts['info'] {
    return this.#facts.info
  }

  toFloat32Array(): Float32Array {
    return this.#channel.callSync('floats', [this.id]) as Float32Array
  }

  retain(): NativeEmbedding {
    if (this.#disposed) throw new LlavaError('ERR_DISPOSED', 'This embedding has been disposed')
    const copy = this.#channel.newId()
    this.#channel.send('retain', [this.id, copy])
    return new RemoteEmbedding(this.#channel, copy, this.#facts)
  }

  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    forgotten.unregister(this)
    this.#channel.send('dispose', [this.id])
  }
}

/** A call's media as they cross: embeddings by handle, bytes gathered in the host transferred. */
function wireMedia(channel: ChildChannel, list: Array<NativeEmbedding | NativeMediaInput>, transfer: ArrayBuffer[]): unknown[] {
  return list.map((m) => {
    if (m instanceof RemoteEmbedding) return { ref: m.id }
    if (!('kind' in m)) throw new LlavaError('ERR_INVALID_ARGUMENT', 'this embedding belongs to another model; encode it with this model')
    return wireInput(m, transfer)
  })
}

function wireInput(m: NativeMediaInput, transfer: ArrayBuffer[]): unknown {
  if (!('data' in m)) return m
  const data = m.data instanceof HostImageBytes ? m.data.take(transfer) : m.data
  if (!(data instanceof Uint8Array)) throw new LlavaError('ERR_INTERNAL', 'in-process media bytes were given to an isolated model')
  return { ...m, data }
}

export class RemoteModel implements NativeModel {
  /** @internal */
  readonly channel: ChildChannel
  /** @internal */
  readonly id: number
  readonly #info: NativeModelInfo
  readonly gpuLayers: number

  private constructor(channel: ChildChannel, id: number, loaded: { info: NativeModelInfo; gpuLayers: number }) {
    this.channel = channel
    this.id = id
    this.#info = loaded.info
    this.gpuLayers = loaded.gpuLayers
  }

  /** Starts a child process and loads the model in it. */
  static async load(
    params: NativeLoadParams,
    abort: NativeAbortHandle | undefined,
    onProgress: ((f: number) => void) | undefined,
    memoryLimit: number | undefined,
  ): Promise<RemoteModel> {
    const channel = await ChildChannel.start()
    try {
      if (abort?.aborted()) throw new LlavaError('ERR_ABORTED', 'Model loading was aborted')
      const id = channel.newId()
      const loaded = await channel.call('load', [id, params, ...abortArgs(channel, abort), onProgress !== undefined, memoryLimit ?? null], { onEvent: onProgress as (d: unknown) => void })
      return new RemoteModel(channel, id, loaded as { info: NativeModelInfo; gpuLayers: number })
    } catch (err) {
      await channel.close()
      throw err
    }
  }

  get pid(): number | undefined {
    return this.channel.pid
  }

  get exitError(): LlavaError | undefined {
    return this.channel.exitError
  }

  info(): NativeModelInfo {
    return this.#info
  }

  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array {
    return this.channel.callSync('tokenize', [this.id, text, addSpecial, parseSpecial]) as Int32Array
  }

  detokenize(tokens: Int32Array, renderSpecial: boolean): string {
    return this.channel.callSync('detokenize', [this.id, tokens, renderSpecial]) as string
  }

  encodeImage(input: NativeImageInput, abort?: NativeAbortHandle): Promise<NativeEmbedding> {
    return this.#encode('encodeImage', input, abort)
  }

  encodeAudio(input: NativeAudioInput, abort?: NativeAbortHandle): Promise<NativeEmbedding> {
    return this.#encode('encodeAudio', input, abort)
  }

  async #encode(op: string, input: NativeMediaInput, abort: NativeAbortHandle | undefined): Promise<NativeEmbedding> {
    const transfer: ArrayBuffer[] = []
    const out = this.channel.newId()
    const facts = await this.channel.call(op, [this.id, wireInput(input, transfer), ...abortArgs(this.channel, abort), out], { transfer })
    return new RemoteEmbedding(this.channel, out, facts as EmbeddingFacts)
  }

  encodeCount(): number {
    return this.channel.callSync('encodeCount', [this.id]) as number
  }

  countTokens(prompt: string, media: Array<NativeEmbedding | NativeMediaInput>, addSpecial: boolean, parseSpecial: boolean): ReturnType<NativeModel['countTokens']> {
    const transfer: ArrayBuffer[] = []
    return this.channel.call('countTokens', [this.id, prompt, wireMedia(this.channel, media, transfer), addSpecial, parseSpecial], { transfer }) as ReturnType<NativeModel['countTokens']>
  }

  renderChat(requestJson: string, timeoutMs: number): Promise<string> {
    return this.channel.call('renderChat', [this.id, requestJson, timeoutMs]) as Promise<string>
  }

  /** Disposal has begun: a child that does not finish its work within the grace period is killed. */
  disposing(): void {
    this.channel.killAfterGrace()
  }

  /** Ends the child process (its model and everything in it go with it). */
  dispose(): Promise<void> {
    return this.channel.close()
  }
}

function remoteModel(model: NativeModel): RemoteModel {
  if (!(model instanceof RemoteModel)) throw new LlavaError('ERR_INTERNAL', 'an in-process model was given to an isolated one')
  return model
}

export class RemoteSessionGroup implements NativeSessionGroup {
  /** @internal */
  readonly channel: ChildChannel
  /** @internal */
  readonly id: number
  #disposed = false

  constructor(model: NativeModel, params: NativeSessionParams, sessions: number) {
    const m = remoteModel(model)
    this.channel = m.channel
    this.id = m.channel.newId()
    m.channel.callSync('groupNew', [this.id, m.id, params, sessions])
    forgotten.register(this, { channel: m.channel, id: this.id }, this)
  }

  freeSessions(): number {
    return this.channel.callSync('freeSessions', [this.id]) as number
  }

  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    forgotten.unregister(this)
    this.channel.send('dispose', [this.id])
  }
}

export class RemoteSession implements NativeSession {
  readonly #channel: ChildChannel
  readonly #id: number
  #disposed = false

  constructor(model: NativeModel, params: NativeSessionParams, group?: NativeSessionGroup) {
    const m = remoteModel(model)
    this.#channel = m.channel
    this.#id = m.channel.newId()
    const groupId = group === undefined ? null : (group as RemoteSessionGroup).id
    m.channel.callSync('sessionNew', [this.#id, m.id, params, groupId])
    forgotten.register(this, { channel: m.channel, id: this.#id }, this)
  }

  generate(req: NativeGenerateRequest, abort: NativeAbortHandle, onPieces?: (pieces: NativePiece[]) => void): Promise<NativeGenerateResult> {
    const transfer: ArrayBuffer[] = []
    const wire = { ...req, images: wireMedia(this.#channel, req.images, transfer) }
    return this.#channel.call('generate', [this.#id, wire, ...abortArgs(this.#channel, abort), onPieces !== undefined], {
      transfer,
      onEvent: onPieces as (d: unknown) => void,
    }) as Promise<NativeGenerateResult>
  }

  reset(): void {
    this.#channel.callSync('reset', [this.#id])
  }

  cacheInfo(): ReturnType<NativeSession['cacheInfo']> {
    return this.#channel.callSync('cacheInfo', [this.#id]) as ReturnType<NativeSession['cacheInfo']>
  }

  async save(path: string): Promise<void> {
    await this.#channel.call('sessionSave', [this.#id, path])
  }

  async load(path: string): Promise<void> {
    await this.#channel.call('sessionLoad', [this.#id, path])
  }

  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    forgotten.unregister(this)
    this.#channel.send('dispose', [this.#id])
  }
}

/** The model binding of isolated models. */
export const remoteBinding: ModelBinding = {
  AbortHandle: RemoteAbortHandle,
  ImageBytes: HostImageBytes,
  Embedding: RemoteEmbedding as unknown as ModelBinding['Embedding'],
  Session: RemoteSession,
  SessionGroup: RemoteSessionGroup,
  renderChat: (model, requestJson, timeoutMs) => remoteModel(model).renderChat(requestJson, timeoutMs),
}
