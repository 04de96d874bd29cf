// Typical user code, type-checked (not run) by test/types.test.ts against the published .d.ts.
import {
  AudioEmbedding,
  type ChatMessage,
  type ChatPiece,
  type ChatResult,
  type ChatTool,
  type CompletionResult,
  type GeneratedPiece,
  ImageEmbedding,
  MediaEmbedding,
  type TokenCount,
  type TokenLogprob,
  LlavaError,
  type Model,
  SessionGroup,
  type DownloadProgress,
  listCachedModels,
  loadModel,
  resolveModel,
  setCpuWait,
  setLogger,
  systemInfo,
} from 'llava-native'

export async function describeImage(modelPath: string, mmprojPath: string, image: string | Buffer): Promise<string> {
  const controller = new AbortController()
  await using model = await loadModel({
    model: modelPath,
    mmproj: mmprojPath,
    threads: 4,
    contextSize: 4096,
    gpuLayers: 'max',
    onProgress: (f: number) => void f,
    signal: controller.signal,
  })
  const info: string = model.info.architecture
  const tokens: number | undefined = model.info.vision?.imageTokens
  void info
  void tokens
  const embedding: ImageEmbedding = await model.encodeImage(image, { signal: controller.signal })
  const floats: Float32Array = embedding.toFloat32Array()
  void floats
  await using session = model.createSession({ contextSize: 2048 })
  let text = ''
  for await (const piece of session.generate({ prompt: 'USER: <image>\nWhat is this?\nASSISTANT:', images: [embedding], maxTokens: 64 })) {
    const p: GeneratedPiece = piece
    text += p.text
  }
  const result: CompletionResult = await session.complete({
    prompt: 'USER: <image>\nAnd the colours?\nASSISTANT:',
    images: [{ data: new Uint8Array(12), width: 2, height: 2, format: 'rgb' }],
    temperature: 0,
    stop: ['USER:'],
    onToken: (p) => void p.text,
  })
  const reason: 'eos' | 'maxTokens' | 'stop' | 'aborted' | 'contextFull' = result.stopReason
  void reason
  const extracted = await session.complete({
    prompt: 'USER: <image>\nExtract the total.\nASSISTANT:',
    images: [embedding],
    responseFormat: { type: 'json_schema', json_schema: { name: 'receipt', schema: { type: 'object', properties: { total: { type: 'string' } } } } },
  })
  const json: unknown = extracted.json
  void json
  setCpuWait('auto')
  const ids: number[] = model.tokenize('hello')
  const back: string = model.detokenize(ids)
  void back
  setLogger((level, message) => console.log(level, message), { level: 'info' })
  void systemInfo().llamaCppCommit
  return text + result.text
}

export async function serve(model: Model, questions: string[]): Promise<string[]> {
  await using group: SessionGroup = model.createSessionGroup({ sessions: questions.length, contextSize: 2048, threads: 2 })
  const left: number = group.available
  void left
  const results = await Promise.all(questions.map((q) => group.createSession().chat([{ role: 'user', content: q }], { maxTokens: 32 })))
  const shared: number = results[0].timings.sharedDecodes
  void shared
  return results.map((r) => r.text)
}

// Reproducible answers under load, with the model's confidence in each token.
export async function confidence(model: Model, prompt: string): Promise<number[]> {
  await using group = model.createSessionGroup({ sessions: 2, deterministic: true })
  const r = await group.createSession().complete({ prompt, temperature: 0, logprobs: 3 })
  const first: TokenLogprob | undefined = r.logprobs?.[0]
  const alternatives: number[] = first ? first.top.map((t) => t.token) : []
  void alternatives
  return (r.logprobs ?? []).map((lp) => Math.exp(lp.logprob))
}

// A tool loop with thinking, as an agent writes it.
export async function agent(model: Model, question: string, run: (name: string, args: unknown) => Promise<unknown>): Promise<ChatResult> {
  const tools: ChatTool[] = [{ type: 'function', function: { name: 'search', description: 'Search', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }]
  const history: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: question }]
  const session = model.createSession()
  let r: ChatResult = await session.chat(history, { tools, toolChoice: 'auto', reasoning: { budget: 256 }, chatTemplateKwargs: { foo: 1 } })
  while (r.toolCalls.length > 0) {
    history.push({ role: 'assistant', content: r.text, reasoning: r.reasoning, toolCalls: r.toolCalls })
    for (const call of r.toolCalls) {
      const id: string = call.id
      history.push({ role: 'tool', toolCallId: id, name: call.name, content: JSON.stringify(await run(call.name, call.parsedArguments)) })
    }
    r = await session.chat(history, { tools, enableThinking: false })
  }
  for await (const piece of session.chatStream(history)) {
    const p: ChatPiece = piece
    if (p.kind === 'reasoning') void p.text
    else if (p.kind === 'toolCall') void p.toolCall?.name
  }
  const rendered = await model.renderChat(history, { tools })
  const prompt: string = rendered.prompt
  void prompt
  const vocab = await loadModel({ model: 'm.gguf', vocabOnly: true })
  void (await vocab.countTokens(history)).tokens
  return r
}

// A model in a child process of its own: the same API, and a way back after a crash.
export async function isolated(): Promise<void> {
  await using model = await loadModel({
    model: 'm.gguf',
    isolation: 'process',
    memoryLimit: 8 * 2 ** 30,
    onCrash: (err: LlavaError) => {
      const signal = err.details?.signal
      void signal
    },
  })
  const where: 'none' | 'process' = model.isolation
  const pid: number | undefined = model.pid
  void where
  void pid
  try {
    await model.createSession().complete({ prompt: 'x' })
  } catch (err) {
    if (err instanceof LlavaError && err.code === 'ERR_PROCESS_EXITED') await model.reload({ onProgress: (f: number) => void f })
  }
}

// Structured answers: `json` is typed from a schema written `as const`.
export async function extract(model: Model): Promise<string | undefined> {
  const schema = {
    type: 'object',
    properties: {
      name: { type: 'string' },
      age: { type: 'integer' },
      tags: { type: 'array', items: { type: 'string' } },
      kind: { enum: ['cat', 'dog'] },
      owner: { type: ['string', 'null'] },
    },
    required: ['name', 'kind'],
    additionalProperties: false,
  } as const
  const session = model.createSession()
  const r = await session.complete({ prompt: 'x', responseFormat: { type: 'json_schema', schema } })
  if (r.json === undefined) return undefined
  const name: string = r.json.name
  const age: number | undefined = r.json.age
  const kind: 'cat' | 'dog' = r.json.kind
  const tags: string[] | undefined = r.json.tags
  const owner: string | null | undefined = r.json.owner
  // @ts-expect-error not a property of the schema
  void r.json.colour
  // @ts-expect-error age is optional
  const sure: number = r.json.age
  void [age, kind, tags, owner, sure]
  const wrapped = await session.chat([{ role: 'user', content: 'x' }], { responseFormat: { type: 'json_schema', json_schema: { name: 'pet', schema } } })
  const again: string | undefined = wrapped.json?.name
  const anyObject = await session.complete({ prompt: 'x', responseFormat: { type: 'json_object' } })
  const value: unknown = anyObject.json?.['whatever']
  const plain = await session.complete({ prompt: 'x' })
  const untyped: unknown = plain.json
  void [again, value, untyped]
  return name
}

export function handle(err: unknown): string | undefined {
  if (err instanceof LlavaError) {
    switch (err.code) {
      case 'ERR_GROUP_FULL':
      case 'ERR_CONTEXT_OVERFLOW':
      case 'ERR_IMAGE_DECODE':
        return err.message
      default:
        return err.code
    }
  }
  return undefined
}

export async function byName(): Promise<string[]> {
  const seen: DownloadProgress[] = []
  const files = await resolveModel('hf:ggml-org/SmolVLM-500M-Instruct-GGUF:Q8_0', { onProgress: (p) => seen.push(p), offline: false })
  const mmproj: string | undefined = files.mmproj
  await using model = await loadModel({ model: 'hf:ggml-org/SmolVLM-500M-Instruct-GGUF', download: { token: 'hf_x', timeoutMs: 60_000 } })
  await using textOnly = await loadModel({ model: files.model, mmproj: false })
  void model
  void textOnly
  return [files.model, mmproj ?? '', ...listCachedModels().map((m) => `${m.name} ${m.size}`)]
}

export async function listen(modelPath: string, mmprojPath: string, pcm: Float32Array): Promise<string> {
  await using model = await loadModel({ model: modelPath, mmproj: mmprojPath, maxAudioSeconds: 120, imageMinTokens: 256, imageMaxTokens: 1024 })
  const rate: number = model.info.vision?.audioSampleRate ?? 0
  const mrope: boolean | undefined = model.info.vision?.mrope
  void mrope
  const sound: AudioEmbedding = await model.encodeAudio({ samples: pcm, sampleRate: 48000, channels: 2 }, { maxSeconds: 60 })
  const asMedia: MediaEmbedding = sound
  void asMedia
  const seconds: number = sound.durationMs / 1000 + rate
  void seconds
  const count: TokenCount = await model.countTokens('<media><media>Compare the photo and the sound.', { media: ['photo.jpg', sound] })
  const audioTokens: number = count.audioTokens + count.positions
  void audioTokens
  await using session = model.createSession()
  const heard = await session.complete({ prompt: 'USER: <media>What is said?\nASSISTANT:', media: ['question.mp3'] })
  await session.chat([
    {
      role: 'user',
      content: [
        { type: 'input_audio', input_audio: { data: 'UklGR…', format: 'wav' } },
        { type: 'audio', audio: sound },
        { type: 'text', text: 'Answer the question.' },
      ],
    },
  ])
  const cells: number = session.cacheInfo().cells
  void cells
  return heard.text
}

export async function misuse(): Promise<void> {
  // @ts-expect-error the model path is required
  await loadModel({ mmproj: 'x.gguf' })
  const model = await loadModel({ model: 'm.gguf' })
  // @ts-expect-error isolation is 'none' or 'process'
  await loadModel({ model: 'm.gguf', isolation: 'thread' })
  // @ts-expect-error the pixel format is one of rgb, rgba, bgra
  await model.encodeImage({ data: new Uint8Array(3), width: 1, height: 1, format: 'argb' })
  // @ts-expect-error temperature is a number
  await model.createSession().complete({ prompt: 'x', temperature: 'hot' })
  // @ts-expect-error logprobs is a count of alternatives
  await model.createSession().complete({ prompt: 'x', logprobs: true })
  // @ts-expect-error a response format has a known type
  await model.createSession().complete({ prompt: 'x', responseFormat: { type: 'yaml' } })
  // @ts-expect-error the wait policy is 'auto', 'spin', 'passive' or a spin count
  setCpuWait('fast')
  // @ts-expect-error a group needs its number of sessions
  model.createSessionGroup({ contextSize: 1024 })
  // @ts-expect-error tool choice is 'auto', 'required' or 'none'
  await model.createSession().chat([{ role: 'user', content: 'x' }], { toolChoice: 'always' })
  // @ts-expect-error the signal is loadModel's own, not the download's
  await loadModel({ model: 'hf:a/b', download: { signal: new AbortController().signal } })
  // @ts-expect-error the source says where the files came from; it is not an option
  await resolveModel('hf:a/b', { source: 'cache' })
  // @ts-expect-error raw PCM is a Float32Array
  await model.encodeAudio({ samples: [0.1, 0.2], sampleRate: 16000 })
  // @ts-expect-error OpenAI's input_audio format is wav, mp3 (or flac)
  await model.createSession().chat([{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'x', format: 'ogg' } }] }])
  // @ts-expect-error a role is one of the chat roles
  await model.renderChat([{ role: 'robot', content: 'x' }])
}
