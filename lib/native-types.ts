// The raw addon's surface, typed once. Values are exactly what binding/*.cpp produce; only lib/
// calls these, after validating every argument.

export interface NativeDeviceInfo {
  name: string
  description: string
  type: 'cpu' | 'gpu' | 'igpu' | 'accel' | 'rpc'
  /** 'host:port' of an RPC server's device */
  endpoint?: string
  memoryFree: number
  memoryTotal: number
}

export interface NativeSystemInfo {
  llamaCppCommit: string
  backends: string[]
  devices: NativeDeviceInfo[]
  cpuFeatures: string
  supportsMmap: boolean
  supportsGpuOffload: boolean
  maxDevices: number
}

export interface NativeAbortHandle {
  abort(): void
  aborted(): boolean
}

export interface NativeLoadParams {
  model: string
  mmproj?: string
  gpuLayers: number
  mainGpu: number
  useMmap: boolean
  mmprojUseGpu: boolean
  threads: number
  vocabOnly: boolean
  /** -1: the projector file's own limit */
  imageMinTokens: number
  imageMaxTokens: number
  rpcServers?: string[]
  rpcTimeouts?: { connectMs: number; callMs: number }
  tensorSplit?: number[]
  mmprojDevice?: string
}

export interface NativePlacement {
  device: string
  endpoint: string | null
  layers: number
  output: boolean
}

export interface NativeVisionInfo {
  projector: string
  supportsVision: boolean
  supportsAudio: boolean
  imageTokens: number
  nonCausal: boolean
  mrope: boolean
  /** Hz; 0 without an audio encoder */
  audioSampleRate: number
  marker: string
  /** the device the projector runs on */
  device: string
}

export interface NativeModelInfo {
  architecture: string
  name: string
  description: string
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
  chatTemplate: string | null
  placement: NativePlacement[]
  vision: NativeVisionInfo | null
}

/** Native memory holding a copy of a large image buffer, filled in slices. */
export interface NativeImageBytes {
  copyFrom(source: Uint8Array, offset: number, length: number): void
  /** The bytes copied so far are all there is. */
  seal(): void
}

export type NativeImageInput =
  /** `maxAudioSeconds`: the limit should the file turn out to hold a sound */
  | { kind: 'path'; path: string; maxPixels: number; orient: boolean; background: [number, number, number]; maxAudioSeconds?: number; frame?: number }
  | { kind: 'bytes'; data: Uint8Array | NativeImageBytes; maxPixels: number; orient: boolean; background: [number, number, number]; frame?: number }
  | {
      kind: 'pixels'
      data: Uint8Array | NativeImageBytes
      width: number
      height: number
      format: 'rgb' | 'rgba' | 'bgra'
      maxPixels: number
      /** rgba decoded from a file: laid over `background` with the built-in decoder's blend. */
      composite?: boolean
      background?: [number, number, number]
    }
  /** countTokens of a format decoded in JS (lib/media/other-formats.ts): the size from its header, no pixels. */
  | { kind: 'size'; width: number; height: number; maxPixels: number }

/** Sound for the audio encoder: a file, encoded bytes (WAV, MP3, FLAC), or interleaved float32 PCM. */
export type NativeAudioInput =
  | { kind: 'audio'; source: 'path'; path: string; maxSeconds: number }
  | { kind: 'audio'; source: 'bytes'; data: Uint8Array | NativeImageBytes; maxSeconds: number }
  | { kind: 'audio'; source: 'pcm'; data: Uint8Array | NativeImageBytes; sampleRate: number; channels: number; maxSeconds: number }

export type NativeMediaInput = NativeImageInput | NativeAudioInput

export interface NativeEmbedding {
  readonly encodeMs: number
  readonly encoderMs: number
  /** true when an alive embedding of the same content was returned instead of encoding again */
  readonly reused: boolean
  info(): { kind: 'image' | 'audio'; nTokens: number; nEmbd: number; width: number; height: number; samples: number; sampleRate: number; id: string }
  toFloat32Array(): Float32Array
  /** A second handle on the same embedding. */
  retain(): NativeEmbedding
  dispose(): void
}

export interface NativeModel {
  /** Layers offloaded to a GPU (0 on CPU-only builds). */
  readonly gpuLayers: number
  info(): NativeModelInfo
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array
  detokenize(tokens: Int32Array, renderSpecial: boolean): string
  encodeImage(input: NativeImageInput, abort?: NativeAbortHandle): Promise<NativeEmbedding>
  encodeAudio(input: NativeAudioInput, abort?: NativeAbortHandle): Promise<NativeEmbedding>
  encodeCount(): number
  countTokens(
    prompt: string,
    media: Array<NativeEmbedding | NativeMediaInput>,
    addSpecial: boolean,
    parseSpecial: boolean,
  ): Promise<{ tokens: number; textTokens: number; imageTokens: number; audioTokens: number; positions: number }>
  dispose(): void | Promise<void>
  // Isolated models only (lib/isolation/remote.ts):
  /** The child process's id. */
  readonly pid?: number
  /** Why the child process is gone, once it is. */
  readonly exitError?: import('./errors').LlavaError
  /** Disposal has begun: a child that has not ended within the grace period is killed. */
  disposing?(): void
}

export interface NativeSessionParams {
  contextSize: number
  batchSize: number
  ubatchSize: number
  threads: number
  threadsBatch: number
  adaptiveThreads: boolean
  flashAttention: number
  /** -1 wherever every backend can, 0 off, 1 on (refused where a backend cannot) */
  deterministic: number
}

export interface NativeGenerateRequest {
  prompt: string
  /** images and sounds, in marker order */
  images: Array<NativeEmbedding | NativeMediaInput>
  addSpecial: boolean
  parseSpecial: boolean
  reuseCache: boolean
  maxTokens: number
  stop: string[]
  temperature: number
  topK: number
  topP: number
  minP: number
  repeatPenalty: number
  repeatLastN: number
  frequencyPenalty: number
  presencePenalty: number
  seed?: number
  grammar?: string
  /** Read each generated token's log-probability and this many alternatives. */
  logprobs?: number
  /** A chat rendered by llama.cpp's chat layer: how to constrain and parse its answer. */
  chat?: import('./chat').NativeChatSpec
}

export interface NativeChatDelta {
  kind: 'text' | 'reasoning' | 'toolCall'
  text: string
  index?: number
  id?: string
  name?: string
}

export interface NativePiece {
  text: string
  tokens: number[]
  logprobs?: import('./session').TokenLogprob[]
  /** Chat only: what the parsed answer gained with this piece. */
  deltas?: NativeChatDelta[]
}

export interface NativeChatMessage {
  content: string
  reasoning: string
  toolCalls: Array<{ id: string; name: string; arguments: string }>
  parseError?: string
}

export interface NativeGenerateResult {
  text: string
  tokens: Int32Array
  logprobs?: import('./session').TokenLogprob[]
  stopReason: 'eos' | 'maxTokens' | 'stop' | 'aborted' | 'contextFull'
  promptTokens: number
  reusedTokens: number
  sharedDecodes: number
  imageEncodes: number
  imageEncodeMs: number
  promptMs: number
  imagePrefillMs: number
  generatedTokens: number
  generateMs: number
  message?: NativeChatMessage
}

export interface NativeSession {
  generate(req: NativeGenerateRequest, abort: NativeAbortHandle, onPieces?: (pieces: NativePiece[]) => void): Promise<NativeGenerateResult>
  reset(): void
  cacheInfo(): { cachedItems: number; positions: number; cells: number; contextSize: number }
  save(path: string): Promise<void>
  load(path: string): Promise<void>
  dispose(): void
}

export interface NativeSessionGroup {
  freeSessions(): number
  dispose(): void
}

export interface NativeBinding {
  AbortHandle: new () => NativeAbortHandle
  ImageBytes: new (size: number) => NativeImageBytes
  Embedding: new () => NativeEmbedding
  Session: new (model: NativeModel, params: NativeSessionParams, group?: NativeSessionGroup) => NativeSession
  SessionGroup: new (model: NativeModel, params: NativeSessionParams, sessions: number) => NativeSessionGroup
  loadModel(params: NativeLoadParams, abort?: NativeAbortHandle, onProgress?: (fraction: number) => void): Promise<NativeModel>
  systemInfo(): NativeSystemInfo
  rpcDevices(endpoints: string[], timeouts: { connectMs: number; callMs: number }): Promise<NativeDeviceInfo[]>
  rpcServe(options: { host: string; port: number; devices?: string[]; threads: number; cacheDir?: string; parentPid?: number }): never
  /** llama.cpp's chat layer: resolves with the rendering as JSON (binding/chat_render.cpp). */
  renderChat(model: NativeModel, requestJson: string, timeoutMs: number): Promise<string>
  /** Test hook: whether generation's sampler for this chat takes `text` token by token. */
  chatGrammarAccepts(model: NativeModel, spec: import('./chat').NativeChatSpec, grammar: string, text: string): { accepted: boolean; roundTrip: boolean; tokens: number; error?: string }
  /** Test hook: an answer parsed as generation parses it, fed one character at a time. */
  chatParseStreamed(
    spec: import('./chat').NativeChatSpec,
    text: string,
  ): NativeChatMessage & { streamed: { content: string; reasoning: string; toolCalls: NativeChatMessage['toolCalls'] } }
  /** Test hook: the thread governor's choice for each step against a cost model (seconds per step). */
  traceThreadGovernor(
    maxThreads: number,
    steps: number,
    cost: (step: number, threads: number) => number,
    tokens?: number,
    hintThreads?: number,
    hintAgeSeconds?: number,
  ): Int32Array
  /** llama.cpp's JSON-schema-to-GBNF converter (common/json-schema-to-grammar), on a thread of its own. */
  jsonSchemaToGrammar(schemaJson: string): Promise<{ grammar: string; warnings: string[] }>
  /** llama.cpp's `-hf` file choice (common/download.cpp) applied to a repository listing. */
  hubPlan(
    files: string[],
    repoWithTag: string,
    file: string,
    mmproj: boolean,
  ): Promise<{ primary: string | null; modelFiles: string[]; mmproj: string | null; preset: string | null }>
  /** Test hook: one single-query flash-attention operation on seeded data, computed with `threads` CPU threads. */
  flashAttentionDecode(
    nKv: number,
    threads: number,
    seed: number,
    kvHeads: number,
  ): { q: Float32Array; k: Float32Array; v: Float32Array; mask: Float32Array; out: Float32Array }
  /** Caps this process's private writable memory (RLIMIT_DATA); false where the platform cannot. */
  setMemoryLimit(bytes: number): boolean
  /** Aborts every running operation of this thread's environment and waits for them to stop. */
  shutdown(): void
  setLogCallback(fn: ((level: string, message: string) => void) | null, minLevel?: string): void
}

/**
 * What a model's objects are made with: the addon itself in-process, or proxies of a child
 * process's addon for `isolation: 'process'` (lib/isolation/remote.ts).
 */
export type ModelBinding = Pick<NativeBinding, 'AbortHandle' | 'ImageBytes' | 'Embedding' | 'Session' | 'SessionGroup' | 'renderChat'>

/** Makes the memory large media bytes are gathered in before a call (ModelBinding['ImageBytes']). */
export type BytesMaker = new (size: number) => NativeImageBytes
