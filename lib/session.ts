import * as nodePath from 'node:path'
import { abortError, linkSignal, throwIfAborted } from './abort'
import {
  CHAT_RENDER_KEYS,
  type ChatAnswer,
  type ChatMessage,
  type ChatPiece,
  type ChatRenderOptions,
  type NativeChatSpec,
  type PreparedChat,
  answerOf,
  piecesOf,
  prepareChat,
  renderChat,
} from './chat'
import { LlavaError, fromNative } from './errors'
import { type ResponseFormat, checkResponseFormat, grammarForSchema, parseJsonAnswer } from './structured/response-format'
import type { ResponseJson } from './structured/schema-type'
import type { AsAudio } from './audio'
import type { ImageEmbedding, ImageInput, NativeBytesImage } from './image'
import { ownImages, toNativeMedia } from './image'
import { MediaEmbedding } from './media/embedding'
import { refuseUnheard, refuseUnseen } from './media/encoders'
import type { MediaInput } from './media/input'
import { Lifetime } from './lifetime'
import type { Model } from './model'
import type {
  NativeGenerateRequest,
  NativeGenerateResult,
  NativeMediaInput,
  NativePiece,
  NativeEmbedding,
  NativeSession,
  NativeSessionGroup,
  NativeSessionParams,
} from './native-types'
import { usableCpus } from './cpu'
import * as v from './validate'

/** Options for {@link Model.createSession}. */
export interface SessionOptions {
  /** Context size in tokens (text and image tokens together). Default: the model's. */
  contextSize?: number
  /** Logical batch size for prompt processing. Default: the model's (2048). */
  batchSize?: number
  /** Physical micro-batch size. Default 512 (raised automatically where an image needs one micro-batch). */
  ubatchSize?: number
  /** Threads for generation. Default: the model's. */
  threads?: number
  /** Threads for prompt processing. Default: `threads`. */
  threadsBatch?: number
  /** Let generation steps use fewer than `threads` when that measures faster. Default: the model's (true). */
  adaptiveThreads?: boolean
  /** Flash attention: 'auto', true or false. Default: the model's. */
  flashAttention?: boolean | 'auto'
  /**
   * Batch-invariant decoding: the session's logits, bit for bit, do not depend on what is decoded
   * with it (a group's other sessions, how many there are, how its prompt is split into batches).
   * `true` refuses a context whose backends cannot do it (GPU backends, RPC servers:
   * `ERR_INVALID_ARGUMENT`); the default (the model's; see {@link LoadModelOptions.deterministic})
   * turns it on wherever they can, which is every context of a CPU-only build without `rpcServers`.
   */
  deterministic?: boolean
}

/** @internal */
export const SESSION_OPTION_KEYS = ['contextSize', 'batchSize', 'ubatchSize', 'threads', 'threadsBatch', 'adaptiveThreads', 'flashAttention', 'deterministic'] as const

/** @internal */
export function resolveSessionOptions(o: SessionOptions, model: Model, sessions = 1): NativeSessionParams {
  const d = model.defaults
  const cpus = usableCpus()
  const threads = v.int('threads', o.threads, 1, cpus, Math.min(d.threads, cpus))
  const fa = o.flashAttention
  if (fa !== undefined && fa !== 'auto' && typeof fa !== 'boolean') throw v.invalid('flashAttention', "true, false or 'auto'", fa)
  const contextSize = v.int('contextSize', o.contextSize, 16, MAX_CONTEXT_CELLS, d.contextSize)
  checkContextFits(contextSize, sessions)
  return {
    contextSize,
    batchSize: v.int('batchSize', o.batchSize, 1, 1 << 20, d.batchSize),
    ubatchSize: v.int('ubatchSize', o.ubatchSize, 1, 1 << 20, 512),
    threads,
    threadsBatch: v.int('threadsBatch', o.threadsBatch, 1, cpus, threads),
    adaptiveThreads: v.bool('adaptiveThreads', o.adaptiveThreads, d.adaptiveThreads),
    flashAttention: fa === undefined ? d.flashAttention : fa === 'auto' ? -1 : fa ? 1 : 0,
    deterministic: o.deterministic === undefined ? d.deterministic : v.bool('deterministic', o.deterministic, true) ? 1 : 0,
  }
}

/** Cells one llama.cpp context holds at most, all of a group's sessions together. */
const MAX_CONTEXT_CELLS = 1 << 24

// Refuses, before anything is allocated, a context whose cell count overflows what llama.cpp
// counts (256 sessions of 2^24 cells wrapped to 0). Whether the KV cache fits in memory is for
// llama.cpp to find out (ERR_OUT_OF_MEMORY): an estimate here cannot know sliding windows, cache
// types or GPU offload, and would refuse contexts that fit.
function checkContextFits(contextSize: number, sessions: number): void {
  const cells = contextSize * sessions
  if (cells > MAX_CONTEXT_CELLS) {
    throw new LlavaError(
      'ERR_INVALID_ARGUMENT',
      `${sessions} sessions of ${contextSize} tokens need ${cells} cells, more than the ${MAX_CONTEXT_CELLS} one context holds; use fewer sessions or a smaller contextSize`,
      { details: { option: 'contextSize' } },
    )
  }
}

/** One streamed piece of generated text. Never splits a UTF-8 character. */
export interface GeneratedPiece {
  /** The text this piece adds (may cover several tokens when text was held back for a stop string). */
  text: string
  /** The token ids sampled for it. */
  tokens: number[]
  /** With the `logprobs` option: one entry per token of `tokens`. */
  logprobs?: TokenLogprob[]
}

/** One candidate of the model's next-token distribution. */
export interface TokenChoice {
  token: number
  /** The raw logit, exactly as the model computed it (a 32-bit float). */
  logit: number
  /** Its natural-log probability under the model's distribution (softmax of the logits). */
  logprob: number
}

/**
 * A generated token's log-probability, and the most likely alternatives at that step. The
 * distribution is the model's own, before temperature, penalties, top-k/p or a grammar.
 */
export interface TokenLogprob extends TokenChoice {
  /** The `logprobs` most likely tokens, most likely first (ties: lower id first). */
  top: TokenChoice[]
}

/** Options for {@link Session.generate} and {@link Session.complete}. */
export interface GenerateOptions {
  /**
   * The prompt. With `images`, `<image>` marks where each image goes, in order; with `media`,
   * `<media>` marks where each image or sound goes (see `imageMarker`).
   */
  prompt: string
  /** Images for the prompt's markers: inputs to encode now, or embeddings encoded earlier. */
  images?: Array<ImageInput | ImageEmbedding>
  /**
   * Images and sounds for the prompt's `<media>` markers, in order: inputs to decode and encode
   * now (a WAV, MP3 or FLAC file or buffer, or raw PCM, is a sound), or embeddings encoded
   * earlier. Not together with `images`.
   */
  media?: MediaInput[]
  /** Stop after this many generated tokens. Default 512. */
  maxTokens?: number
  /** Sampling temperature; 0 = greedy. Default 0.8. */
  temperature?: number
  /** Keep the k most likely tokens (0 = off). Default 40. */
  topK?: number
  /** Nucleus sampling threshold (1 = off). Default 0.95. */
  topP?: number
  /** Minimum probability relative to the best token (0 = off). Default 0.05. */
  minP?: number
  /** Repetition penalty (1 = off). Default 1. */
  repeatPenalty?: number
  /** How many recent tokens the penalties look at. Default 64. */
  repeatLastN?: number
  frequencyPenalty?: number
  presencePenalty?: number
  /** Seed of the sampler's random numbers. Default: random. */
  seed?: number
  /** Generation ends when one of these strings appears; it is not included in the text. */
  stop?: string[]
  /** A GBNF grammar (start rule `root`) that constrains the output. */
  grammar?: string
  /**
   * Constrain the answer to JSON, or to a JSON Schema (OpenAI's `response_format` shape; see
   * {@link ResponseFormat}). The result then carries `json`. Not together with `grammar`.
   */
  responseFormat?: ResponseFormat
  /** The media marker in `prompt`. Default '<image>' with `images`, '<media>' with `media`. */
  imageMarker?: string
  /** Add BOS (and other special tokens the model wants) at the start. Default true. */
  addSpecial?: boolean
  /** Read special-token text in the prompt (e.g. `</s>`) as the special token. Default true. */
  parseSpecial?: boolean
  /** Reuse the KV cache where the prompt repeats what the session already evaluated. Default true. */
  reuseCache?: boolean
  /**
   * Also return each generated token's log-probability and this many most likely alternatives
   * (`result.logprobs`, and on streamed pieces). 0 gives the sampled token's alone. Default: off.
   */
  logprobs?: number
  signal?: AbortSignal
}

/** Options for {@link Session.complete}. */
export interface CompleteOptions extends GenerateOptions {
  /** Called with each piece as it is generated. Throwing from it stops generation and rejects. */
  onToken?: (piece: GeneratedPiece) => void
}

/**
 * Options for {@link Session.chat}: those of complete() without prompt and images, and those of
 * rendering (template, template variables, thinking, tools).
 */
export interface ChatOptions extends Omit<CompleteOptions, 'prompt' | 'images' | 'media' | 'imageMarker' | 'addSpecial' | 'parseSpecial' | 'onToken'>, ChatRenderOptions {
  /** Called with each piece as it is generated, labelled answer, thinking or tool call. Throwing from it stops generation and rejects. */
  onToken?: (piece: ChatPiece) => void
}

/** What {@link Session.chat} resolves to: the completion, with the answer read into thinking, text and tool calls. */
export interface ChatResult<J = unknown> extends CompletionResult<J>, ChatAnswer {}

/** {@link Session.chatStream}'s pieces, labelled, and the final result. */
export interface ChatStream<J = unknown> extends AsyncIterable<ChatPiece> {
  readonly result: Promise<ChatResult<J>>
}

const GENERATE_KEYS = [
  'prompt', 'images', 'media', 'maxTokens', 'temperature', 'topK', 'topP', 'minP', 'repeatPenalty', 'repeatLastN', 'frequencyPenalty',
  'presencePenalty', 'seed', 'stop', 'grammar', 'responseFormat', 'imageMarker', 'addSpecial', 'parseSpecial', 'reuseCache', 'logprobs', 'signal',
] as const

export type StopReason = 'eos' | 'maxTokens' | 'stop' | 'aborted' | 'contextFull'

/** What {@link Session.complete} resolves to. `J`: the type of `json`, from a schema written `as const` (JsonSchemaToType). */
export interface CompletionResult<J = unknown> {
  text: string
  tokens: number[]
  /** With the `logprobs` option: one entry per token of `tokens`. */
  logprobs?: TokenLogprob[]
  /** eos: the model ended; maxTokens; stop: a stop string; aborted: the stream's consumer stopped early; contextFull. */
  stopReason: StopReason
  /**
   * With `responseFormat`: the parsed answer, when generation ended by itself (`eos`, `stop`) and
   * the text is JSON; undefined when it was cut short (maxTokens, contextFull). Absent otherwise.
   */
  json?: J
  timings: {
    /** Time spent encoding images given as inputs in this call (0 for reused embeddings). */
    imageEncodeMs: number
    /** Images encoded by this call. */
    imageEncodes: number
    /** Prompt length in tokens (image tokens included). */
    promptTokens: number
    /** Prompt tokens found in the KV cache and not evaluated again. */
    reusedTokens: number
    /** Prompt evaluation time, image tokens included. */
    promptMs: number
    /** The part of promptMs spent on image tokens. */
    imagePrefillMs: number
    generatedTokens: number
    generateMs: number
    /** Decode steps of this call that also evaluated other sessions' tokens (session groups only). */
    sharedDecodes: number
  }
}

/** An async iterable of pieces that also exposes the final result. */
export interface GenerationStream<J = unknown> extends AsyncIterable<GeneratedPiece> {
  /** Settles when generation ends, with the same result `complete()` gives. */
  readonly result: Promise<CompletionResult<J>>
}

/**
 * A conversation over a model: its own context and KV cache. Calls on one session run one at a
 * time, in the order they were made; use several sessions for parallel work.
 */
export class Session {
  readonly #model: Model
  readonly #params: NativeSessionParams
  readonly #lifetime = new Lifetime('session')
  readonly #onDispose: (s: Session) => void
  #native: NativeSession
  #queue: Promise<unknown> = Promise.resolve()
  readonly #running = new Set<() => void>()

  /** @internal */
  constructor(model: Model, params: NativeSessionParams, onDispose: (s: Session) => void, group?: NativeSessionGroup) {
    this.#model = model
    this.#params = params
    this.#onDispose = onDispose
    try {
      this.#native = new model.binding.Session(model.native, params, group)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** The context size this session was created with. */
  get contextSize(): number {
    return this.#params.contextSize
  }

  get disposed(): boolean {
    return this.#lifetime.disposed
  }

  /** Streams the answer piece by piece: `for await (const piece of session.generate({...}))`. Breaking out of the loop stops generation. */
  generate<F extends ResponseFormat | undefined = undefined>(options: GenerateOptions & { responseFormat?: F }): GenerationStream<ResponseJson<F>> {
    return this.#stream(options as CompleteOptions) as GenerationStream<ResponseJson<F>>
  }

  #stream(options: CompleteOptions, input?: Promise<ChatInput>, chat = false): GenerationStream {
    const pieces: GeneratedPiece[] = []
    let wake: (() => void) | undefined
    let finished = false
    let stopEarly: (() => void) | undefined
    const result = this.#run(
      options,
      {
        onPiece: (p) => {
          pieces.push(p)
          wake?.()
        },
        registerStop: (stop) => {
          stopEarly = stop
        },
        chat,
      },
      input,
    )
    const settle = (): void => {
      finished = true
      wake?.()
    }
    result.then(settle, settle)
    const iterator = async function* (): AsyncGenerator<GeneratedPiece> {
      try {
        for (;;) {
          while (pieces.length > 0) yield pieces.shift()!
          if (finished) break
          await new Promise<void>((resolve) => {
            wake = resolve
          })
          wake = undefined
        }
        await result // surfaces errors to the for-await loop
      } finally {
        if (!finished) stopEarly?.()
      }
    }
    return { result, [Symbol.asyncIterator]: iterator }
  }

  /** Generates the whole answer; `onToken` sees each piece as it comes. */
  complete<F extends ResponseFormat | undefined = undefined>(options: CompleteOptions & { responseFormat?: F }): Promise<CompletionResult<ResponseJson<F>>> {
    const o = v.optionsObject('complete options', options)
    const onToken = v.fn<(p: GeneratedPiece) => void>('onToken', o.onToken)
    const { onToken: _, ...rest } = o
    return this.#run(rest, { onPiece: onToken, userCallback: true }) as Promise<CompletionResult<ResponseJson<F>>>
  }

  /**
   * Answers a conversation: the messages are rendered by llama.cpp's chat layer through the
   * model's chat template (or `options.chatTemplate`), images where their parts are, exactly as
   * llama-server renders them; the answer is read into `reasoning`, `text` and `toolCalls` by
   * llama.cpp's parser for the template's format. A follow-up turn that repeats the earlier turns
   * evaluates only the new tokens and never encodes an image the cache holds.
   */
  chat<F extends ResponseFormat | undefined = undefined>(messages: ChatMessage[], options?: ChatOptions & { responseFormat?: F }): Promise<ChatResult<ResponseJson<F>>> {
    try {
      const { chat, rest, onToken, schema } = this.#prepareChat(messages, options, 'chat options')
      return (this.#run(rest, { onPiece: onToken as ((p: GeneratedPiece) => void) | undefined, userCallback: true, chat: true }, this.#renderInput(chat, schema)) as Promise<ChatResult<ResponseJson<F>>>).finally(
        () => chat.release(),
      )
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** {@link Session.chat} as a stream of labelled pieces. */
  chatStream<F extends ResponseFormat | undefined = undefined>(messages: ChatMessage[], options?: Omit<ChatOptions, 'onToken'> & { responseFormat?: F }): ChatStream<ResponseJson<F>> {
    const { chat, rest, schema } = this.#prepareChat(messages, options, 'chatStream options')
    const inner = this.#stream(rest, this.#renderInput(chat, schema), true)
    const result = (inner.result as Promise<ChatResult<ResponseJson<F>>>).finally(() => chat.release())
    result.catch(() => undefined) // settled through `result` or the iterator, whichever the caller uses
    return { result, [Symbol.asyncIterator]: inner[Symbol.asyncIterator] as () => AsyncIterator<ChatPiece> }
  }

  // Splits chat options into rendering and generation; what the answer must match (a response
  // format, a grammar) goes to the chat layer, which writes the grammar that fits the template.
  #prepareChat(messages: ChatMessage[], options: ChatOptions | undefined, where: string) {
    const o = v.optionsObject(where, options) as ChatOptions & Record<string, unknown>
    const render: Record<string, unknown> = {}
    const rest: Record<string, unknown> = {}
    for (const [k, val] of Object.entries(o)) {
      if ((CHAT_RENDER_KEYS as readonly string[]).includes(k)) render[k] = val
      else rest[k] = val
    }
    const onToken = v.fn<(p: ChatPiece) => void>('onToken', rest.onToken)
    delete rest.onToken
    const { schema, grammar } = answerRules(rest)
    const chat = prepareChat(this.#model, messages, render, { jsonSchema: schema === undefined ? undefined : JSON.parse(schema), grammar })
    delete rest.grammar
    delete rest.responseFormat
    return { chat, rest: rest as unknown as CompleteOptions, onToken, schema }
  }

  // The rendered chat as the prompt, images and answer rules of a generation.
  // A response format is first converted on its own (cached): what llama.cpp's converter would not
  // enforce is refused before the chat layer converts it again inside its own grammar.
  #renderInput(chat: PreparedChat, schema: string | undefined): Promise<ChatInput> {
    const checked = schema === undefined ? Promise.resolve() : grammarForSchema(schema).then(() => undefined)
    return checked.then(() => renderChat(this.#model, chat)).then((r) => ({
      prompt: r.prompt,
      images: r.images,
      imageMarker: r.marker,
      addSpecial: true,
      chat: { spec: r.spec, grammar: r.grammar, stops: r.stops, json: schema !== undefined },
    }))
  }

  /** Writes the session's KV cache and what it holds to `path`, to resume later (in any process) with {@link Session.load}. */
  async save(path: string): Promise<void> {
    this.#lifetime.assertAlive('create a new one with model.createSession()')
    const file = nodePath.resolve(v.str('path', path))
    await this.#enqueue(async () => {
      try {
        await this.#native.save(file)
      } catch (err) {
        throw fromNative(err)
      }
    })
  }

  /** Restores a state written by {@link Session.save} with the same model; the next call continues from it. */
  async load(path: string): Promise<void> {
    this.#lifetime.assertAlive('create a new one with model.createSession()')
    const file = nodePath.resolve(v.str('path', path))
    await this.#enqueue(async () => {
      try {
        await this.#native.load(file)
      } catch (err) {
        throw fromNative(err)
      }
    })
  }

  /** Forgets the KV cache: the next prompt is evaluated from the start. */
  async reset(): Promise<void> {
    this.#lifetime.assertAlive('create a new one with model.createSession()')
    await this.#enqueue(async () => {
      try {
        this.#native.reset()
      } catch (err) {
        throw fromNative(err)
      }
    })
  }

  /**
   * What the session's KV cache holds: items (text tokens and image chunks), the next position,
   * and the cells taken, out of `contextSize`. Cells and positions differ only for M-RoPE models.
   */
  cacheInfo(): { cachedItems: number; positions: number; cells: number; contextSize: number } {
    this.#lifetime.assertAlive('create a new one with model.createSession()')
    try {
      return this.#native.cacheInfo()
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** Stops running generation (its promise rejects with ERR_DISPOSED), waits for it, frees the context. Idempotent. */
  dispose(): Promise<void> {
    return this.#lifetime.dispose(
      () => {
        for (const stop of this.#running) stop()
      },
      async () => {
        await this.#queue.catch(() => undefined)
        this.#native.dispose()
        this.#onDispose(this)
      },
    )
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }

  #enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(op, op)
    this.#queue = run.catch(() => undefined)
    return this.#lifetime.track(run)
  }

  /**
   * Queues one generation. `input`, when given, supplies the prompt and images later (a chat
   * being rendered): the call still takes its place in the session's queue now, so calls run in
   * the order they were made.
   */
  #run(
    options: CompleteOptions,
    hooks: { onPiece?: (p: GeneratedPiece) => void; registerStop?: (stop: () => void) => void; userCallback?: boolean; chat?: boolean },
    input?: Promise<ChatInput>,
  ): Promise<CompletionResult> {
    try {
      this.#lifetime.assertAlive('create a new one with model.createSession()')
      this.#model.assertAlive()
    } catch (err) {
      return Promise.reject(err)
    }
    let prepared: Prepared
    // A chat with a response format: the chat layer writes the grammar, the answer is still JSON.
    let wantsJson = false
    try {
      // Everything but the prompt and images is checked now, whenever those come.
      prepared = prepare(input ? { ...options, prompt: '', images: [] } : options, this.#model)
    } catch (err) {
      return Promise.reject(err)
    }
    // Large buffers start moving into native memory now, while the call waits its turn.
    const owning = input ? undefined : ownImages(prepared.images, this.#model.binding.ImageBytes, { signal: prepared.signal })
    owning?.catch(() => undefined) // awaited by the work below, or dropped with it
    input?.catch(() => undefined)
    const link = linkSignal(prepared.signal, this.#model.binding)
    let disposedWhileRunning = false
    let consumerStopped = false
    let callbackError: { error: unknown } | undefined
    const stopForDispose = (): void => {
      disposedWhileRunning = true
      link.abort()
    }
    hooks.registerStop?.(() => {
      consumerStopped = true
      link.abort()
    })
    this.#running.add(stopForDispose)

    const toChatPieces = hooks.chat ? piecesOf() : undefined
    const onPieces = hooks.onPiece
      ? (batch: NativePiece[]): void => {
          for (const p of batch) {
            const list: GeneratedPiece[] = toChatPieces ? toChatPieces(p) : [{ text: p.text, tokens: p.tokens, ...(p.logprobs ? { logprobs: p.logprobs } : {}) }]
            for (const piece of list) {
              if (callbackError) return
              try {
                hooks.onPiece!(piece)
              } catch (error) {
                callbackError = { error }
                link.abort()
              }
            }
          }
        }
      : undefined

    const work = async (): Promise<CompletionResult> => {
      throwIfAborted(prepared.signal)
      if (disposedWhileRunning) throw new LlavaError('ERR_DISPOSED', 'The session was disposed before generation started')
      if (input) {
        const { prompt, images, imageMarker, addSpecial, chat } = await input
        prepared = prepare({ ...options, prompt, images: images as CompleteOptions['images'], imageMarker, addSpecial }, this.#model)
        if (chat) {
          prepared.request.chat = chat.spec
          prepared.request.stop = [...prepared.request.stop, ...chat.stops]
          if (chat.grammar) prepared.request.grammar = chat.grammar
          wantsJson = chat.json
        }
      }
      // Inputs go to the native side as they are: it decodes them, and encodes only images whose
      // pixels are neither in this session's cache nor encoded elsewhere in the model.
      const images = await (owning ?? ownImages(prepared.images, this.#model.binding.ImageBytes, { signal: prepared.signal }))
      if (prepared.schema !== undefined) prepared.request.grammar = await grammarForSchema(prepared.schema)
      let raw: NativeGenerateResult
      try {
        raw = await this.#native.generate({ ...prepared.request, images }, link.handle, onPieces)
      } catch (err) {
        if (callbackError) throw callbackError.error
        if (disposedWhileRunning) throw new LlavaError('ERR_DISPOSED', 'The session was disposed during generation', { cause: err })
        throw abortError(prepared.signal, err, 'Generation')
      }
      if (callbackError) throw callbackError.error
      if (raw.stopReason === 'aborted') {
        if (prepared.signal?.aborted) throw prepared.signal.reason
        if (disposedWhileRunning) throw new LlavaError('ERR_DISPOSED', 'The session was disposed during generation')
        if (!consumerStopped) throw new LlavaError('ERR_ABORTED', 'Generation was aborted')
      }
      const answer = raw.message ? answerOf(raw.message) : undefined
      const text = answer ? answer.text : raw.text
      return {
        text,
        tokens: Array.from(raw.tokens),
        ...(raw.logprobs ? { logprobs: raw.logprobs } : {}),
        stopReason: raw.stopReason,
        ...(answer ? { reasoning: answer.reasoning, toolCalls: answer.toolCalls } : {}),
        ...(answer?.parseError !== undefined ? { parseError: answer.parseError } : {}),
        ...(prepared.schema !== undefined || wantsJson ? { json: parseJsonAnswer(text, raw.stopReason) } : {}),
        timings: {
          imageEncodeMs: raw.imageEncodeMs,
          imageEncodes: raw.imageEncodes,
          promptTokens: raw.promptTokens,
          reusedTokens: raw.reusedTokens,
          sharedDecodes: raw.sharedDecodes,
          promptMs: raw.promptMs,
          imagePrefillMs: raw.imagePrefillMs,
          generatedTokens: raw.generatedTokens,
          generateMs: raw.generateMs,
        },
      }
    }

    const op = this.#enqueue(work)
    const done = (): void => {
      link.release()
      this.#running.delete(stopForDispose)
      releaseImages(prepared.images)
    }
    op.then(done, done)
    return this.#model.track(op)
  }
}

/** A rendered chat's part of a generation request. */
interface ChatInput {
  prompt: string
  images: Array<ImageInput | NativeEmbedding | NativeBytesImage | AsAudio>
  imageMarker: string
  addSpecial: boolean
  /** How the chat layer constrains and reads the answer; `json`: a response format asked for JSON. */
  chat?: { spec: NativeChatSpec; grammar: string; stops: string[]; json: boolean }
}

interface Prepared {
  request: Omit<NativeGenerateRequest, 'images'>
  /** Embeddings as handles of their own, taken when the call was made (see retainImages). */
  images: Array<NativeMediaInput | NativeEmbedding>
  signal: AbortSignal | undefined
  /**
   * The response format's schema as JSON, made into `request.grammar` when the call runs; the
   * result then carries `json`. Undefined without one (or with `{ type: 'text' }`).
   */
  schema: string | undefined
}

/**
 * The call's own handles on the embeddings it uses, taken synchronously when it is made: the
 * caller may dispose its ImageEmbedding right after (even in the same tick) without taking the
 * image away from a call that has not started yet.
 */
export function retainImages(images: Array<NativeMediaInput | MediaEmbedding | NativeEmbedding>): Array<NativeMediaInput | NativeEmbedding> {
  const out: Array<NativeMediaInput | NativeEmbedding> = []
  try {
    for (const img of images) {
      if (!(img instanceof MediaEmbedding)) {
        out.push(img)
        continue
      }
      img.assertAlive()
      out.push(img.native.retain())
    }
  } catch (err) {
    releaseImages(out)
    throw fromNative(err)
  }
  return out
}

/** Drops the handles retainImages() took. */
export function releaseImages(images: Array<NativeMediaInput | NativeEmbedding>): void {
  for (const img of images) {
    if ('retain' in img) img.dispose()
  }
}

function countOccurrences(s: string, marker: string): number {
  let n = 0
  for (let i = s.indexOf(marker); i !== -1; i = s.indexOf(marker, i + marker.length)) n++
  return n
}

/** What the answer must match: a GBNF grammar or a response format's schema (as JSON), never both. */
function answerRules(o: { grammar?: unknown; responseFormat?: unknown }): { grammar: string | undefined; schema: string | undefined } {
  if (o.grammar !== undefined && typeof o.grammar !== 'string') throw v.invalid('grammar', 'a GBNF grammar string', o.grammar)
  const schema = checkResponseFormat(o.responseFormat)
  if (schema !== undefined && o.grammar !== undefined) {
    throw new LlavaError('ERR_INVALID_ARGUMENT', 'Give either `grammar` or `responseFormat`: the schema is turned into a grammar of its own.')
  }
  return { grammar: o.grammar, schema }
}

function prepare(options: CompleteOptions, model: Model): Prepared {
  const o = v.optionsObject('generate options', options)
  v.checkKeys('generate()', o, GENERATE_KEYS)
  if (typeof o.prompt !== 'string') throw v.invalid('prompt', 'a string', o.prompt)
  if (o.images !== undefined && o.media !== undefined) throw new LlavaError('ERR_INVALID_ARGUMENT', 'Give either `images` or `media`, not both.')
  const list = o.media !== undefined ? 'media' : 'images'
  const images: unknown[] = (o.media ?? o.images ?? []) as unknown[]
  if (!Array.isArray(images)) throw v.invalid(list, list === 'media' ? 'an array of images and sounds' : 'an array of images', images)
  const marker = o.imageMarker === undefined ? (list === 'media' ? '<media>' : '<image>') : v.str('imageMarker', o.imageMarker)
  const stop = o.stop === undefined ? [] : o.stop
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw v.invalid('stop', 'an array of non-empty strings', stop)
  }
  const { schema } = answerRules(o)
  const seed = o.seed === undefined ? undefined : v.int('seed', o.seed, 0, 0xfffffffe, 0)

  let prompt = o.prompt
  let nativeImages: Array<NativeMediaInput | MediaEmbedding | NativeEmbedding> = []
  if (images.length > 0) {
    const vision = model.info.vision
    nativeImages = images.map((img, i) => {
      if (img instanceof model.binding.Embedding) return img as NativeEmbedding // a handle chat() already took for this call
      if (img instanceof MediaEmbedding) {
        if (img.owner !== model) throw new LlavaError('ERR_INVALID_ARGUMENT', `${list}[${i}] was encoded by another model; encode it with this model`)
        img.assertAlive()
        return img
      }
      const input = toNativeMedia(img, `${list}[${i}]`, model.defaults.imageReading)
      refuseUnheard(vision, input, `${list}[${i}]`)
      return input
    })
    refuseUnseen(vision, nativeImages)
    const markers = countOccurrences(prompt, marker)
    if (markers === 0) prompt = marker.repeat(images.length) + prompt
    else if (markers !== images.length) {
      throw new LlavaError(
        'ERR_INVALID_ARGUMENT',
        `The prompt has ${markers} ${marker} marker(s) but ${images.length} ${list === 'media' ? 'image(s) and sound(s)' : 'image(s)'} were given: put one marker where each goes, in order.`,
      )
    }
    prompt = prompt.split(marker).join(vision?.marker ?? '<__media__>')
  } else if (model.info.vision && prompt.includes(model.info.vision.marker)) {
    throw new LlavaError('ERR_INVALID_ARGUMENT', `The prompt contains the media marker ${model.info.vision.marker} but no images were given.`)
  }

  const signal = v.signal('signal', o.signal)
  const request: Prepared['request'] = {
      prompt,
      addSpecial: v.bool('addSpecial', o.addSpecial, true),
      parseSpecial: v.bool('parseSpecial', o.parseSpecial, true),
      reuseCache: v.bool('reuseCache', o.reuseCache, true),
      maxTokens: v.int('maxTokens', o.maxTokens, 0, 1 << 24, 512),
      stop,
      temperature: v.num('temperature', o.temperature, 0, 100, 0.8),
      topK: v.int('topK', o.topK, 0, 1 << 24, 40),
      topP: v.num('topP', o.topP, 0, 1, 0.95),
      minP: v.num('minP', o.minP, 0, 1, 0.05),
      repeatPenalty: v.num('repeatPenalty', o.repeatPenalty, 0, 100, 1),
      repeatLastN: v.int('repeatLastN', o.repeatLastN, -1, 1 << 24, 64),
      frequencyPenalty: v.num('frequencyPenalty', o.frequencyPenalty, -100, 100, 0),
      presencePenalty: v.num('presencePenalty', o.presencePenalty, -100, 100, 0),
      seed,
      grammar: o.grammar,
      ...(o.logprobs === undefined ? {} : { logprobs: v.int('logprobs', o.logprobs, 0, 100, 0) }),
  }
  // Last, once nothing else can throw: handles taken here are released when the call ends.
  return { images: retainImages(nativeImages), signal, request, schema }
}
