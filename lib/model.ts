import * as path from 'node:path'
import { abortError, linkSignal, throwIfAborted } from './abort'
import { LlavaError, fromNative } from './errors'
import { type AsAudio, AudioEmbedding, type AudioInput, DEFAULT_MAX_AUDIO_SECONDS, MAX_AUDIO_SECONDS, toNativeAudio } from './audio'
import { backgroundOption, DEFAULT_MAX_PIXELS, type ImageBackground, ImageEmbedding, type ImageInput, MAX_FRAME, WHITE, type ImageReading, type NativeBytesImage, ownImageBytes, ownImages, toNativeMedia } from './image'
import { MediaEmbedding } from './media/embedding'
import { refuseUnheard, refuseUnseen } from './media/encoders'
import type { MediaInput } from './media/input'
import { CHAT_RENDER_KEYS, type ChatMessage, type ChatRenderOptions, DEFAULT_TEMPLATE_TIMEOUT_MS, type PreparedChat, prepareChat, renderChat } from './chat'
import { defaultThreads, usableCpus } from './cpu'
import { isRemoteSpec, resolveModel, type ResolveModelOptions } from './hub'
import { parseModelSpec } from './hub/spec'
import { Lifetime } from './lifetime'
import { WeakObjectSet } from './weak-set'
import { binding } from './native'
import type { ModelBinding, NativeAudioInput, NativeEmbedding, NativeLoadParams, NativeMediaInput, NativeModel, NativeModelInfo } from './native-types'
import { type Isolation, isolationOption, loadIsolated, remoteBinding } from './isolation'
import { Session, type SessionOptions, SESSION_OPTION_KEYS, releaseImages, resolveSessionOptions, retainImages } from './session'
import { SessionGroup, type SessionGroupOptions } from './session-group'
import * as v from './validate'
import { rpcServersOption, rpcTimeoutsOption, tensorSplitOption, type RpcTimeouts } from './rpc/options'

/** What {@link Model.renderChat} gives. */
export interface RenderedChatInfo {
  /** The prompt exactly as generation would tokenize it (special tokens as text). */
  prompt: string
  /** The media marker standing for each image in `prompt`. */
  marker: string
  /** How many images the prompt holds. */
  images: number
  /** llama.cpp's name of the answer format the template implies (how the answer will be parsed). */
  format: string
  /** Whether the template can think, and whether this rendering asked it to. */
  supportsThinking: boolean
  thinking: boolean
  /** The grammar the answer is constrained with (tool calls, response format), or ''. */
  grammar: string
  /** Whether that grammar waits for a trigger (a tool call's opening) before it applies. */
  grammarLazy: boolean
  /** Stop strings the format adds. */
  stops: string[]
  /** The part of the prompt that opens the assistant's turn. */
  generationPrompt: string
}

/** Options for {@link loadModel}. */
export interface LoadModelOptions {
  /**
   * The text model: a GGUF path, or a name resolved first with {@link resolveModel}:
   * `hf:owner/repo[:QUANT]` (llama.cpp's `-hf` choice, its projector included),
   * `hf:owner/repo/path/file.gguf` or an `https://…/file.gguf` URL.
   */
  model: string
  /**
   * The projector (mmproj) GGUF: a path or a name like `model`. Optional for text-only use. With an
   * `hf:owner/repo[:QUANT]` model it defaults to the repository's projector; `false` loads none.
   */
  mmproj?: string | false
  /**
   * How `hf:` and URL names are fetched: cache directory, endpoint, token, offline, timeouts and
   * download progress (see {@link ResolveModelOptions}). Loading progress (`onProgress`) follows the
   * download.
   */
  download?: Omit<ResolveModelOptions, 'mmproj' | 'signal' | 'dryRun'>
  /**
   * CPU threads for prompt processing, generation and image encoding. Default: the number of
   * physical cores, capped by the container's CPU quota.
   */
  threads?: number
  /**
   * Let generation steps use fewer than `threads` when they measure faster, as on a machine busy
   * with other work (the choice is re-measured as conditions change; results do not depend on it).
   * Default true; false always uses `threads`. Sessions inherit it.
   */
  adaptiveThreads?: boolean
  /** Default context size (tokens) of sessions. Default: the model's training context, at most 4096. */
  contextSize?: number
  /** Default logical batch size of sessions. Default 2048. */
  batchSize?: number
  /**
   * Layers to offload to a GPU or to `rpcServers`' devices: a number, 'max' (all; the default) or
   * 'auto' (as many as fit in 90% of those devices' free memory). Ignored by CPU-only builds
   * without `rpcServers`.
   */
  gpuLayers?: number | 'max' | 'auto'
  /** Which GPU (an index among the GPU devices of listDevices()) holds the model and the projector. Default: all GPUs share the layers. */
  mainGpu?: number
  /** Memory-map the weights (default true). */
  useMmap?: boolean
  /** Run the projector on the GPU when one is available (default true). */
  mmprojUseGpu?: boolean
  /**
   * The device the projector runs on, overriding `mmprojUseGpu`: a device name from listDevices()
   * ('CPU', 'CUDA0', …) or one of `rpcServers` ('host:port', its first device). Default: a local
   * GPU when there is one and `mmprojUseGpu` allows, else the CPU; never a remote device unless
   * named here.
   */
  mmprojDevice?: string
  /**
   * RPC servers ('host:port', started with `llava-native rpc-server` or startRpcServer()) whose
   * devices take the model's layers, as llama.cpp's `--rpc`: their devices come first, then the
   * local GPUs; the CPU keeps the layers beyond `gpuLayers`. Token for token the same results as
   * local. When a server fails, the model's calls reject with ERR_RPC and the model stays
   * unusable until disposed and loaded again; the process lives on. Not with `isolation: 'process'`
   * unless the servers are reachable from the child too (they are: it is the same machine).
   */
  rpcServers?: string[]
  /** Connect and per-call timeouts for `rpcServers` (defaults 10 s and 120 s). */
  rpcTimeouts?: RpcTimeouts
  /**
   * How the offloaded layers are shared among the model's devices (RPC servers' devices first,
   * then the GPUs), as proportions, e.g. [1, 1] or [3, 1]. Default: by each device's free memory.
   */
  tensorSplit?: number[]
  /** Flash attention: 'auto' (default), true or false. */
  flashAttention?: boolean | 'auto'
  /**
   * Sessions' default for {@link SessionOptions.deterministic}: batch-invariant decoding, on by
   * default wherever the backends can (CPU). `false` gives llama.cpp's default kernels, whose
   * last bits depend on the batch: what llama.cpp's own tools compute, token for token.
   */
  deterministic?: boolean
  /** Largest decoded image accepted, in pixels. Default 64 Mi pixels. */
  maxImagePixels?: number
  /** Longest sound accepted, in seconds (checked from its header before decoding). Default 600, at most 14400. */
  maxAudioSeconds?: number
  /**
   * The token budget of one image, for projectors with dynamic resolution (Qwen2-VL, Qwen2.5-VL,
   * Qwen3-VL, Gemma 4, GLM-4V, Kimi-VL and others that size images by pixel count): an image is
   * scaled up to at least `imageMinTokens` tokens and down to at most `imageMaxTokens`. Default:
   * the projector file's own limits (Qwen2.5-VL: 8 to 4096). Qwen-VL models answer grounding
   * questions (coordinates) well only from about 1024 tokens up. Projectors with a fixed input
   * size (LLaVA, Gemma 3) ignore both. 1 to 65536; `countTokens` and `info.vision.imageTokens`
   * follow them.
   */
  imageMinTokens?: number
  imageMaxTokens?: number
  /**
   * 'exif' (default): a JPEG's or PNG's EXIF orientation tag turns the picture before it is
   * encoded, as every viewer shows it (phones store portrait photos sideways with such a tag);
   * 'ignore': the stored pixels as they are.
   */
  imageOrientation?: 'exif' | 'ignore'
  /**
   * What shows through transparent pixels of an encoded image (PNG, GIF, … with alpha): '#rrggbb',
   * '#rgb' or [r, g, b]. Default white, as a viewer on a white page shows them. Raw pixels are
   * taken as given.
   */
  imageBackground?: ImageBackground
  /** Called with the loading progress, 0..1. Throwing from it aborts the load. */
  onProgress?: (fraction: number) => void
  /**
   * Time budget, in milliseconds, for rendering a chat template (templates come from model files:
   * untrusted code, rendered off the JS thread): one that takes longer is stopped and the call
   * rejects with ERR_CHAT_TEMPLATE. Default 10000.
   */
  chatTemplateTimeoutMs?: number
  /**
   * Load only the vocabulary and chat template (llama.cpp's `vocab_only`), for tokenize(),
   * detokenize(), countTokens() of text and chats, and renderChat(), from a full model or a
   * vocabulary-only GGUF, in milliseconds and without the weights' memory. Such a model cannot
   * create sessions; `mmproj` is refused with it. Default false.
   */
  vocabOnly?: boolean
  /** Aborts loading; the promise then rejects with `signal.reason`. */
  signal?: AbortSignal
  /**
   * Where llama.cpp runs: 'none' (the default) in this process; 'process' in a child process of
   * its own, so that an abort, a segmentation fault or an out-of-memory kill in llama.cpp or a GPU
   * driver ends that process and not this one: the model's pending calls then reject with
   * `ERR_PROCESS_EXITED`, and `model.reload()` brings it back. The API is the same either way.
   * The environment variable LLAVA_NATIVE_ISOLATION ('none' or 'process') sets the default.
   */
  isolation?: Isolation
  /**
   * With `isolation: 'process'`: called when the model's process ends other than through
   * dispose() or reload() (a crash, a kill), with the `ERR_PROCESS_EXITED` error its pending calls
   * reject with (`details`: exit code, signal, last lines of its stderr).
   */
  onCrash?: (error: LlavaError) => void
  /**
   * With `isolation: 'process'` on Linux: the most private memory, in bytes, the model's process
   * may allocate (RLIMIT_DATA: the KV cache, compute buffers, and the weights unless
   * memory-mapped; not GPU memory, not memory-mapped model files). An allocation beyond it fails
   * in that process only: a typed error (a context too large for it, say) or, where llama.cpp
   * aborts on it, `ERR_PROCESS_EXITED`. At least 64 MiB.
   */
  memoryLimit?: number
}

/** The largest imageMinTokens / imageMaxTokens: clip.cpp multiplies the budget by the patch area in 32 bits. */
const MAX_IMAGE_TOKENS_OPTION = 65536

const LOAD_KEYS = [
  'model', 'mmproj', 'threads', 'adaptiveThreads', 'contextSize', 'batchSize', 'gpuLayers', 'mainGpu', 'useMmap', 'mmprojUseGpu', 'mmprojDevice', 'rpcServers', 'rpcTimeouts', 'tensorSplit', 'flashAttention', 'deterministic',
  'maxImagePixels', 'maxAudioSeconds', 'imageMinTokens', 'imageMaxTokens', 'imageOrientation', 'imageBackground', 'chatTemplateTimeoutMs', 'vocabOnly', 'onProgress', 'signal', 'download', 'isolation', 'onCrash', 'memoryLimit',
] as const

/** What a loaded model is. */
export interface ModelInfo {
  architecture: string
  name: string
  description: string
  /** The context length the model was trained with. */
  contextLength: number
  embeddingLength: number
  layers: number
  heads: number
  headsKv: number
  parameters: number
  sizeBytes: number
  vocabSize: number
  bosToken: number
  eosToken: number
  /** The chat template stored in the GGUF, if any. */
  chatTemplate: string | null
  /** The projector, when one was loaded. */
  vision: {
    /** The projector type, e.g. 'mlp' (LLaVA-1.5), 'gemma3'. */
    projector: string
    supportsVision: boolean
    supportsAudio: boolean
    /** Tokens an image at the projector's native resolution takes. */
    imageTokens: number
    /**
     * Whether the text model uses M-RoPE (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): an image then takes
     * one KV cell per token but only max(width, height) positions (in merged patches). The
     * context's size limits cells; `countTokens` reports both.
     */
    mrope: boolean
    /** The rate sound is resampled to for the audio encoder, Hz (16000 for Whisper-based ones); 0 when it hears nothing. */
    audioSampleRate: number
    /** mtmd's own media marker, which `<image>` in prompts is mapped to. */
    marker: string
    /** The device the projector runs on: 'CPU', a GPU's name, or an RPC device's (see `mmprojDevice`). */
    device: string
  } | null
  /**
   * Where llama.cpp put the text model's layers: each device holding repeating layers or the
   * output layer, in llama.cpp's order (RPC servers' devices first, then GPUs, the CPU for the
   * rest). The input embeddings always stay on the CPU.
   */
  placement: Array<{
    /** The device's name, as listDevices() gives it. */
    device: string
    /** The RPC server ('host:port') of a remote device, null for a local one. */
    endpoint: string | null
    /** Repeating layers (blocks) it holds. */
    layers: number
    /** Whether it holds the output layer. */
    output: boolean
  }>
}

/** What {@link Model.countTokens} counts. */
export interface TokenCount {
  /** Text, image and audio tokens: the KV cells the prompt takes, which is what the context size limits. */
  tokens: number
  textTokens: number
  imageTokens: number
  audioTokens: number
  /**
   * Positions the prompt advances: the same as `tokens`, except for M-RoPE models
   * (`info.vision.mrope`), where an image takes max(width, height) positions.
   */
  positions: number
}

/** Options for {@link Model.encodeImage}. */
export interface EncodeImageOptions {
  signal?: AbortSignal
  /** Largest decoded image accepted, in pixels. Default: the model's maxImagePixels. */
  maxPixels?: number
  /** Whether a photo's EXIF orientation turns it before encoding. Default: the model's imageOrientation ('exif'). */
  orientation?: 'exif' | 'ignore'
  /** What shows through a transparent image: '#rrggbb', '#rgb' or [r, g, b]. Default: the model's imageBackground (white). */
  background?: ImageBackground
  /**
   * Which frame of an animated image (GIF, WebP), page of a TIFF or top-level image of a HEIF to
   * read, from 0. Default: the first frame or page; a HEIF's primary image.
   */
  frame?: number
}

/** Options for {@link Model.encodeAudio}. */
export interface EncodeAudioOptions {
  signal?: AbortSignal
  /** Longest sound accepted, in seconds. Default: the model's maxAudioSeconds. */
  maxSeconds?: number
}

/** @internal */
export interface ModelDefaults {
  threads: number
  adaptiveThreads: boolean
  /** -1: wherever the backends can; 0 off; 1 on */
  deterministic: number
  contextSize: number
  batchSize: number
  flashAttention: number
  maxImagePixels: number
  /** How encoded images are read (maxImagePixels and the EXIF orientation policy). */
  imageReading: ImageReading
  templateTimeoutMs: number
}

/**
 * A loaded text model and, optionally, its projector. Create sessions from it to generate text;
 * encode images once and use them in any session.
 */
export class Model {
  /** Where llama.cpp runs for this model: 'none' (this process) or 'process' (a child process). */
  readonly isolation: Isolation
  /** @internal */
  readonly defaults: ModelDefaults
  /** @internal What the model's native objects are made with (the addon, or a child process's proxies). */
  readonly binding: ModelBinding
  #native: NativeModel
  #info: ModelInfo
  readonly #recipe: LoadRecipe
  #reloading = false
  readonly #lifetime = new Lifetime('model')
  readonly #sessions = new WeakObjectSet<Session>()
  readonly #embeddings = new WeakObjectSet<MediaEmbedding>()
  readonly #groups = new WeakObjectSet<SessionGroup>()

  /** @internal */
  constructor(native: NativeModel, defaults: ModelDefaults, recipe: LoadRecipe) {
    this.#native = native
    this.defaults = defaults
    this.#recipe = recipe
    this.isolation = recipe.isolation
    this.binding = recipe.isolation === 'process' ? remoteBinding : binding()
    this.#info = toModelInfo(native.info())
  }

  /** What the model is: architecture, sizes, chat template, vision capabilities. */
  get info(): ModelInfo {
    return this.#info
  }

  /** Layers offloaded to a GPU (0 on CPU-only builds or without a GPU). */
  get gpuLayers(): number {
    return this.#native.gpuLayers
  }

  /** @internal */
  get native(): NativeModel {
    return this.#native
  }

  /** The id of the process llama.cpp runs in for this model: this one, or its child process with `isolation: 'process'`. */
  get pid(): number | undefined {
    return this.isolation === 'process' ? this.#native.pid : process.pid
  }

  get disposed(): boolean {
    return this.#lifetime.disposed
  }

  /** @internal */
  assertAlive(): void {
    this.#lifetime.assertAlive('load it again with loadModel()')
    if (this.#reloading) throw new LlavaError('ERR_BUSY', 'This model is being reloaded: wait for reload() to finish')
    if (this.#native.exitError) throw this.#native.exitError
  }

  /**
   * Loads the model again with the options it was loaded with, after disposing its sessions,
   * groups and embeddings: with `isolation: 'process'`, the way back after its process has died
   * (a new process is started). Resolves when the model is usable again.
   */
  async reload(options?: { signal?: AbortSignal; onProgress?: (fraction: number) => void }): Promise<void> {
    this.#lifetime.assertAlive('load it again with loadModel()')
    const o = v.optionsObject('reload options', options)
    v.checkKeys('reload()', o, ['signal', 'onProgress'])
    const signal = v.signal('signal', o.signal)
    const onProgress = v.fn<(f: number) => void>('onProgress', o.onProgress)
    throwIfAborted(signal)
    if (this.#reloading) throw new LlavaError('ERR_BUSY', 'This model is being reloaded already: wait for that reload() to finish')
    this.#reloading = true
    try {
      await this.track(this.#reload(signal, onProgress))
    } finally {
      this.#reloading = false
    }
  }

  async #reload(signal: AbortSignal | undefined, onProgress: ((f: number) => void) | undefined): Promise<void> {
    this.#native.disposing?.()
    await this.#disposeChildren()
    await this.#native.dispose()
    const native = await loadNative(this.#recipe, signal, onProgress)
    if (this.#lifetime.disposed) {
      await native.dispose()
      this.#lifetime.assertAlive('load it again with loadModel()')
    }
    this.#native = native
    this.#info = toModelInfo(native.info())
  }

  /** @internal */
  track<T>(op: Promise<T>): Promise<T> {
    return this.#lifetime.track(op)
  }

  /**
   * Decodes and encodes an image with the projector. The result can be used in any number of
   * prompts and sessions of this model without encoding again.
   */
  async encodeImage(input: ImageInput, options?: EncodeImageOptions): Promise<ImageEmbedding> {
    this.assertAlive()
    const o = v.optionsObject('encodeImage options', options)
    v.checkKeys('encodeImage()', o, ['signal', 'maxPixels', 'orientation', 'background', 'frame'])
    const signal = v.signal('signal', o.signal)
    const maxPixels = v.int('maxPixels', o.maxPixels, 1, Number.MAX_SAFE_INTEGER, this.defaults.maxImagePixels)
    const orientation = o.orientation === undefined ? this.defaults.imageReading.orientation : orientationOption('orientation', o.orientation)
    if (!this.info.vision) {
      throw new LlavaError('ERR_NO_VISION', 'This model was loaded without a projector: pass `mmproj` to loadModel() to use images.')
    }
    const background = o.background === undefined ? this.defaults.imageReading.background : backgroundOption('background', o.background)
    const frame = o.frame === undefined ? undefined : v.int('frame', o.frame, 0, MAX_FRAME, 0)
    return this.#encode(toNativeMedia(input, 'image', { ...this.defaults.imageReading, maxPixels, orientation, background, frame }), signal, 'Image encoding', (nativeInput, handle) => {
      if (nativeInput.kind === 'audio') {
        throw new LlavaError('ERR_IMAGE_DECODE', 'This is a sound (WAV, MP3 or FLAC), not an image: encode it with model.encodeAudio().')
      }
      return this.native.encodeImage(nativeInput, handle).then((native) => new ImageEmbedding(native, this, (e) => this.#embeddings.delete(e)))
    })
  }

  /**
   * One encode: the input's bytes owned natively (large buffers copied in slices), the encoder
   * run under the signal, and the embedding registered with the model unless the signal fired
   * meanwhile.
   */
  async #encode<E extends MediaEmbedding>(
    input: NativeMediaInput,
    signal: AbortSignal | undefined,
    what: string,
    run: (input: NativeMediaInput, handle: ReturnType<typeof linkSignal>['handle']) => Promise<E>,
  ): Promise<E> {
    const owning = ownImageBytes(input, this.binding.ImageBytes, { signal })
    owning.catch(() => undefined) // awaited below; left behind only when the signal had already fired
    throwIfAborted(signal)
    const link = linkSignal(signal, this.binding)
    try {
      const nativeInput = await this.track(owning)
      throwIfAborted(signal)
      const embedding = await this.track(run(nativeInput, link.handle))
      if (signal?.aborted) {
        await embedding.dispose()
        throw signal.reason
      }
      this.#embeddings.add(embedding)
      return embedding
    } catch (err) {
      throw abortError(signal, err, what)
    } finally {
      link.release()
    }
  }

  /**
   * Decodes a sound (WAV, MP3, FLAC or raw PCM, resampled to the model's rate and mixed to mono)
   * and encodes it with the projector's audio encoder. The result can be used in any number of
   * prompts and sessions of this model without encoding again.
   */
  async encodeAudio(input: AudioInput, options?: EncodeAudioOptions): Promise<AudioEmbedding> {
    this.assertAlive()
    const o = v.optionsObject('encodeAudio options', options)
    v.checkKeys('encodeAudio()', o, ['signal', 'maxSeconds'])
    const signal = v.signal('signal', o.signal)
    const maxSeconds = v.num('maxSeconds', o.maxSeconds, 0.001, MAX_AUDIO_SECONDS, this.defaults.imageReading.maxAudioSeconds)
    if (!this.info.vision?.supportsAudio) {
      throw new LlavaError(
        'ERR_NO_AUDIO',
        this.info.vision
          ? 'This projector has no audio encoder (it takes images only): load the mmproj of an audio model (Ultravox, Qwen2-Audio, Qwen2.5-Omni, Voxtral, …).'
          : 'This model was loaded without a projector: pass the `mmproj` of an audio model to loadModel() to use sound.',
      )
    }
    const nativeInput = toNativeAudio(typeof input === 'string' ? path.resolve(input) : input, 'audio', maxSeconds)
    return this.#encode(nativeInput, signal, 'Audio encoding', (owned, handle) =>
      this.native
        .encodeAudio(owned as NativeAudioInput, handle)
        .then((native) => new AudioEmbedding(native, this, (e) => this.#embeddings.delete(e))),
    )
  }

  /** Creates a conversation (its own context and KV cache) over this model's weights. */
  createSession(options?: SessionOptions): Session {
    this.assertAlive()
    const o = v.optionsObject('createSession options', options)
    v.checkKeys('createSession()', o, SESSION_OPTION_KEYS)
    const session = new Session(this, resolveSessionOptions(o, this), (s) => this.#sessions.delete(s))
    this.#sessions.add(session)
    return session
  }

  /**
   * Creates a group of up to `sessions` conversations that share one context, so that their
   * tokens are decoded together when they run at the same time (see {@link SessionGroup}).
   * `contextSize` is per session.
   */
  createSessionGroup(options: SessionGroupOptions): SessionGroup {
    this.assertAlive()
    if (options === null || typeof options !== 'object') throw v.invalid('createSessionGroup options', 'an options object with `sessions`', options)
    v.checkKeys('createSessionGroup()', options, [...SESSION_OPTION_KEYS, 'sessions'])
    if (options.sessions === undefined) throw v.invalid('sessions', 'an integer between 1 and 256', undefined)
    const size = v.int('sessions', options.sessions, 1, 256, 0)
    const params = resolveSessionOptions(options, this, size)
    const group = new SessionGroup(this, params, size, (g) => this.#groups.delete(g))
    this.#groups.add(group)
    return group
  }

  /** Token ids of `text`. `addSpecial` adds BOS as the model wants (default false); `parseSpecial` reads special-token text such as `</s>` as the token (default false). */
  tokenize(text: string, options?: { addSpecial?: boolean; parseSpecial?: boolean }): number[] {
    this.assertAlive()
    if (typeof text !== 'string') throw v.invalid('text', 'a string', text)
    const o = v.optionsObject('tokenize options', options)
    v.checkKeys('tokenize()', o, ['addSpecial', 'parseSpecial'])
    const add = v.bool('addSpecial', o.addSpecial, false)
    const parse = v.bool('parseSpecial', o.parseSpecial, false)
    try {
      return Array.from(this.native.tokenize(text, add, parse))
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** Text of token ids. `renderSpecial` writes special tokens as their text (default false). */
  detokenize(tokens: readonly number[] | Int32Array, options?: { renderSpecial?: boolean }): string {
    this.assertAlive()
    if (!Array.isArray(tokens) && !(tokens instanceof Int32Array)) throw v.invalid('tokens', 'an array of token ids', tokens)
    const o = v.optionsObject('detokenize options', options)
    v.checkKeys('detokenize()', o, ['renderSpecial'])
    const ids = new Int32Array(tokens.length)
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]
      if (!Number.isInteger(t) || t < 0 || t >= this.info.vocabSize) {
        throw v.invalid(`tokens[${i}]`, `a token id between 0 and ${this.info.vocabSize - 1}`, t)
      }
      ids[i] = t
    }
    try {
      return this.native.detokenize(ids, v.bool('renderSpecial', o.renderSpecial, false))
    } catch (err) {
      throw fromNative(err)
    }
  }

  /**
   * Counts the tokens a prompt (with `<image>` markers) or a chat takes, image tokens included,
   * reading only the images' headers: nothing is encoded. A chat is rendered as chat() renders it
   * (the same options).
   */
  async countTokens(
    input: string | ChatMessage[],
    options?: { images?: Array<ImageInput | ImageEmbedding>; media?: Array<MediaInput>; addSpecial?: boolean } & ChatRenderOptions,
  ): Promise<TokenCount> {
    this.assertAlive()
    const o = v.optionsObject('countTokens options', options) as Record<string, unknown>
    v.checkKeys('countTokens()', o, ['images', 'media', 'addSpecial', ...CHAT_RENDER_KEYS])
    let prompt: string
    let images: Array<MediaInput | NativeEmbedding | NativeBytesImage | AsAudio>
    let addSpecial = v.bool('addSpecial', o.addSpecial, true)
    let chat: PreparedChat | undefined
    const marker = this.info.vision?.marker ?? '<__media__>'
    try {
      if (typeof input === 'string') {
        if (o.images !== undefined && o.media !== undefined) throw new LlavaError('ERR_INVALID_ARGUMENT', 'Give either `images` or `media`, not both.')
        const ours = o.media !== undefined ? '<media>' : '<image>'
        images = ((o.media ?? o.images) as typeof images | undefined) ?? []
        if (!Array.isArray(images)) throw v.invalid(o.media !== undefined ? 'media' : 'images', 'an array of images and sounds', images)
        const n = input.split(ours).length - 1
        prompt = images.length > 0 && n === 0 ? marker.repeat(images.length) + input : input.split(ours).join(marker)
      } else {
        const { images: _i, media: _m, addSpecial: _a, ...render } = o
        chat = prepareChat(this, input, render)
        const r = await renderChat(this, chat)
        prompt = r.prompt
        images = r.images
        addSpecial = true
      }
      const inputs = images.map((img, i) => {
        if (img instanceof MediaEmbedding || img instanceof this.binding.Embedding) return img as MediaEmbedding | NativeEmbedding
        const input = toNativeMedia(img, `media[${i}]`, this.defaults.imageReading)
        refuseUnheard(this.info.vision, input, `media[${i}]`)
        return input
      })
      refuseUnseen(this.info.vision, inputs)
      const native = retainImages(inputs)
      try {
        const owned = await ownImages(native, this.binding.ImageBytes, { measure: true })
        const r = await this.track(this.native.countTokens(prompt, owned, addSpecial, true))
        return { tokens: r.tokens, textTokens: r.textTokens, imageTokens: r.imageTokens, audioTokens: r.audioTokens, positions: r.positions }
      } catch (err) {
        throw fromNative(err)
      } finally {
        releaseImages(native)
      }
    } finally {
      chat?.release()
    }
  }

  /**
   * Renders a conversation as chat() would, without generating: the exact prompt (with the media
   * marker where each image goes), for debugging templates. Rendering is llama.cpp's chat layer,
   * the one llama-server uses.
   */
  async renderChat(messages: ChatMessage[], options?: ChatRenderOptions): Promise<RenderedChatInfo> {
    this.assertAlive()
    const o = v.optionsObject('renderChat options', options) as ChatRenderOptions & Record<string, unknown>
    v.checkKeys('renderChat()', o, CHAT_RENDER_KEYS)
    const chat = prepareChat(this, messages, o)
    try {
      const r = await this.track(renderChat(this, chat))
      return {
        prompt: r.prompt,
        marker: r.marker,
        images: r.images.length,
        format: r.format,
        supportsThinking: r.supportsThinking,
        thinking: r.thinking,
        grammar: r.grammar,
        grammarLazy: r.spec.grammarLazy,
        stops: r.stops,
        generationPrompt: r.spec.generationPrompt,
      }
    } finally {
      chat.release()
    }
  }

  /** How many images and sounds this model has encoded so far (reused embeddings do not count). */
  get imageEncodeCount(): number {
    this.assertAlive()
    return this.native.encodeCount()
  }

  /**
   * Disposes every session and image embedding of this model, waits for running work, then frees
   * the weights. Idempotent.
   */
  dispose(): Promise<void> {
    return this.#lifetime.dispose(
      () => this.#native.disposing?.(),
      async () => {
        await this.#disposeChildren()
        await this.#native.dispose()
      },
    )
  }

  async #disposeChildren(): Promise<void> {
    await Promise.all(this.#sessions.values().map((s) => s.dispose()))
    await Promise.all(this.#groups.values().map((g) => g.dispose()))
    await Promise.all(this.#embeddings.values().map((e) => e.dispose()))
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}

function toModelInfo(n: NativeModelInfo): ModelInfo {
  return {
    architecture: n.architecture,
    name: n.name,
    description: n.description,
    contextLength: n.contextLength,
    embeddingLength: n.embeddingLength,
    layers: n.layers,
    heads: n.heads,
    headsKv: n.headsKv,
    parameters: n.parameters,
    sizeBytes: n.sizeBytes,
    vocabSize: n.vocabSize,
    bosToken: n.bosToken,
    eosToken: n.eosToken,
    chatTemplate: n.chatTemplate,
    placement: n.placement.map((p) => ({ ...p })),
    vision: n.vision
      ? {
          projector: n.vision.projector,
          supportsVision: n.vision.supportsVision,
          supportsAudio: n.vision.supportsAudio,
          imageTokens: n.vision.imageTokens,
          mrope: n.vision.mrope,
          audioSampleRate: n.vision.audioSampleRate,
          marker: n.vision.marker,
          device: n.vision.device,
        }
      : null,
  }
}

/**
 * Loads a text model GGUF and, optionally, its projector (mmproj). Loading runs on a native
 * thread; the event loop stays free.
 */
export async function loadModel(options: LoadModelOptions): Promise<Model> {
  if (options === null || typeof options !== 'object') throw v.invalid('loadModel options', 'an options object', options)
  v.checkKeys('loadModel()', options, LOAD_KEYS)
  let model = v.str('model', options.model)
  const noMmproj = options.mmproj === false
  let mmproj = options.mmproj === undefined || noMmproj ? undefined : v.str('mmproj', options.mmproj)
  const threads = v.int('threads', options.threads, 1, usableCpus(), defaultThreads())
  const adaptiveThreads = v.bool('adaptiveThreads', options.adaptiveThreads, true)
  const deterministic = options.deterministic === undefined ? -1 : v.bool('deterministic', options.deterministic, true) ? 1 : 0
  const contextSize = v.int('contextSize', options.contextSize, 0, 1 << 24, 0)
  const batchSize = v.int('batchSize', options.batchSize, 1, 1 << 20, 2048)
  const gl = options.gpuLayers
  let gpuLayers: number
  if (gl === undefined || gl === 'max') gpuLayers = -1
  else if (gl === 'auto') gpuLayers = -2
  else gpuLayers = v.int('gpuLayers', gl, 0, 100000, 0)
  const mainGpu = v.int('mainGpu', options.mainGpu, 0, 64, -1)
  const useMmap = v.bool('useMmap', options.useMmap, true)
  const vocabOnly = v.bool('vocabOnly', options.vocabOnly, false)
  if (vocabOnly && mmproj !== undefined) {
    throw new LlavaError('ERR_INVALID_ARGUMENT', 'vocabOnly loads no weights, so no projector either: leave mmproj out', { details: { option: 'mmproj' } })
  }
  const mmprojUseGpu = v.bool('mmprojUseGpu', options.mmprojUseGpu, true)
  const mmprojDevice = options.mmprojDevice === undefined ? undefined : v.str('mmprojDevice', options.mmprojDevice)
  const rpcServers = rpcServersOption(options.rpcServers)
  const rpcTimeouts = rpcTimeoutsOption(options.rpcTimeouts)
  const tensorSplit = tensorSplitOption(options.tensorSplit)
  const fa = options.flashAttention
  if (fa !== undefined && fa !== 'auto' && typeof fa !== 'boolean') throw v.invalid('flashAttention', "true, false or 'auto'", fa)
  const maxImagePixels = v.int('maxImagePixels', options.maxImagePixels, 1, Number.MAX_SAFE_INTEGER, DEFAULT_MAX_PIXELS)
  const maxAudioSeconds = v.num('maxAudioSeconds', options.maxAudioSeconds, 0.001, MAX_AUDIO_SECONDS, DEFAULT_MAX_AUDIO_SECONDS)
  const imageMinTokens = v.int('imageMinTokens', options.imageMinTokens, 1, MAX_IMAGE_TOKENS_OPTION, -1)
  const imageMaxTokens = v.int('imageMaxTokens', options.imageMaxTokens, 1, MAX_IMAGE_TOKENS_OPTION, -1)
  if (imageMinTokens > 0 && imageMaxTokens > 0 && imageMinTokens > imageMaxTokens) {
    throw new LlavaError('ERR_INVALID_ARGUMENT', `imageMinTokens (${imageMinTokens}) is above imageMaxTokens (${imageMaxTokens}): give a minimum not above the maximum`)
  }
  const imageOrientation = options.imageOrientation === undefined ? 'exif' : orientationOption('imageOrientation', options.imageOrientation)
  const imageBackground = options.imageBackground === undefined ? WHITE : backgroundOption('imageBackground', options.imageBackground)
  const templateTimeoutMs = v.int('chatTemplateTimeoutMs', options.chatTemplateTimeoutMs, 1, 3_600_000, DEFAULT_TEMPLATE_TIMEOUT_MS)
  const onProgress = v.fn<(f: number) => void>('onProgress', options.onProgress)
  const signal = v.signal('signal', options.signal)
  const isolation = isolationOption(options.isolation)
  const onCrash = v.fn<(e: LlavaError) => void>('onCrash', options.onCrash)
  const memoryLimit = options.memoryLimit === undefined ? undefined : v.int('memoryLimit', options.memoryLimit, 64 * 2 ** 20, Number.MAX_SAFE_INTEGER, 0)
  if (memoryLimit !== undefined && isolation !== 'process') {
    throw new LlavaError('ERR_INVALID_ARGUMENT', "memoryLimit limits a model's own process: use it with isolation: 'process'", { details: { option: 'memoryLimit' } })
  }
  if (memoryLimit !== undefined && process.platform !== 'linux') {
    throw new LlavaError('ERR_INVALID_ARGUMENT', `memoryLimit is enforced on Linux only (RLIMIT_DATA); this is ${process.platform}`, { details: { option: 'memoryLimit' } })
  }
  const download = options.download
  if (download !== undefined && (download === null || typeof download !== 'object')) throw v.invalid('download', 'an options object', download)
  for (const k of ['mmproj', 'signal', 'dryRun'] as const) {
    if (download && k in download) throw new LlavaError('ERR_INVALID_ARGUMENT', `download.${k} is not an option of loadModel's download; use loadModel's own ${k === 'dryRun' ? 'resolveModel()' : k}`, { details: { option: `download.${k}` } })
  }
  throwIfAborted(signal)
  if (isRemoteSpec(model)) {
    const r = await resolveModel(model, { ...download, mmproj: mmproj === undefined && !noMmproj && !vocabOnly, signal })
    model = r.model
    if (mmproj === undefined && !noMmproj) mmproj = r.mmproj
  }
  if (mmproj !== undefined && isRemoteSpec(mmproj)) {
    // llama.cpp's choice by tag picks text models only: a projector is named by its file
    const named = parseModelSpec(mmproj)
    if (named.kind === 'hf' && !named.file) {
      throw new LlavaError('ERR_INVALID_ARGUMENT', `mmproj ${JSON.stringify(mmproj)} names a repository, not a projector file: give hf:owner/repo/mmproj-….gguf, or leave mmproj out to take the model repository's own`, {
        details: { option: 'mmproj' },
      })
    }
    mmproj = (await resolveModel(mmproj, { ...download, mmproj: false, signal })).model
  }

  const recipe: LoadRecipe = {
    params: {
      model: path.resolve(model),
      mmproj: mmproj === undefined ? undefined : path.resolve(mmproj),
      gpuLayers,
      mainGpu,
      useMmap,
      mmprojUseGpu,
      threads,
      vocabOnly,
      imageMinTokens,
      imageMaxTokens,
      ...(rpcServers.length > 0 ? { rpcServers, rpcTimeouts } : {}),
      ...(tensorSplit ? { tensorSplit } : {}),
      ...(mmprojDevice !== undefined ? { mmprojDevice } : {}),
    },
    isolation,
    onCrash,
    memoryLimit,
  }
  const native = await loadNative(recipe, signal, onProgress)
  const trained = native.info().contextLength
  return new Model(native, {
    threads,
    adaptiveThreads,
    deterministic,
    contextSize: contextSize || Math.min(trained > 0 ? trained : 4096, 4096),
    batchSize,
    flashAttention: fa === undefined || fa === 'auto' ? -1 : fa ? 1 : 0,
    maxImagePixels,
    imageReading: { maxPixels: maxImagePixels, orientation: imageOrientation, background: imageBackground, maxAudioSeconds },
    templateTimeoutMs,
  }, recipe)
}

/** How a model was loaded, for reload(). */
interface LoadRecipe {
  params: NativeLoadParams
  isolation: Isolation
  onCrash: ((e: LlavaError) => void) | undefined
  memoryLimit: number | undefined
}

/** Loads the weights in this process or in a child process, under the signal. */
async function loadNative(recipe: LoadRecipe, signal: AbortSignal | undefined, onProgress: ((f: number) => void) | undefined): Promise<NativeModel> {
  const link = linkSignal(signal, recipe.isolation === 'process' ? remoteBinding : binding())
  let callbackError: { error: unknown } | undefined
  const progress = onProgress
    ? (f: number): void => {
        if (callbackError) return
        try {
          onProgress(f)
        } catch (error) {
          callbackError = { error }
          link.abort()
        }
      }
    : undefined
  let native: NativeModel
  try {
    native = recipe.isolation === 'process' ? await loadIsolated(recipe.params, link.handle, progress, recipe.onCrash, recipe.memoryLimit) : await binding().loadModel(recipe.params, link.handle, progress)
  } catch (err) {
    if (callbackError) throw callbackError.error
    throw abortError(signal, err, 'Model loading')
  } finally {
    link.release()
  }
  if (callbackError || signal?.aborted) {
    await native.dispose()
    throw callbackError ? callbackError.error : signal!.reason
  }
  return native
}

function orientationOption(option: string, value: unknown): 'exif' | 'ignore' {
  if (value !== 'exif' && value !== 'ignore') throw v.invalid(option, "'exif' or 'ignore'", value)
  return value
}

/** @internal */
export function assertOwnEmbedding(model: Model, e: MediaEmbedding, option: string): void {
  if (e.owner !== model) {
    throw new LlavaError('ERR_INVALID_ARGUMENT', `${option} was encoded by another model; encode it with this model`)
  }
  e.assertAlive()
}
