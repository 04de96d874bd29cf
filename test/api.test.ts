// The core API on the tiny synthetic pair: loading, images, generation, abort, lifetimes.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { ImageEmbedding, LlavaError, type Model, loadModel, setLogger } from '../lib'
import { bmpFile, greedy, tempDir, tinyPair } from './helpers/fixtures'
import { pattern, toBgra, toBmp, toPng, toRgba } from './helpers/images'

const PROMPT = 'USER: <image>\ndescribe the picture\nASSISTANT:'

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<LlavaError> {
  let err: unknown
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    err = e
  }
  expect(err).toBeInstanceOf(LlavaError)
  expect((err as LlavaError).code).toBe(code)
  return err as LlavaError
}

describe('loadModel', () => {
  const pair = tinyPair()

  test('loads text model and projector, reports info and progress', async () => {
    const progress: number[] = []
    const model = await loadModel({ ...pair, threads: 1, onProgress: (f) => progress.push(f) })
    try {
      expect(model.info.architecture).toBe('llama')
      expect(model.info.embeddingLength).toBe(64)
      expect(model.info.layers).toBe(2)
      expect(model.info.chatTemplate).toContain('USER: ')
      expect(model.info.vision).toMatchObject({ projector: 'mlp', supportsVision: true, imageTokens: 16 })
      expect(progress.length).toBeGreaterThan(1)
      expect(progress[progress.length - 1]).toBe(1)
      for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1])
    } finally {
      await model.dispose()
    }
  })

  test('refuses bad options with typed errors', async () => {
    await expectCode(loadModel({ model: '/nonexistent/model.gguf' }), 'ERR_FILE_NOT_FOUND')
    await expectCode(loadModel({ ...pair, mmproj: '/nonexistent/mmproj.gguf' }), 'ERR_FILE_NOT_FOUND')
    await expectCode(loadModel({ model: path.dirname(pair.model) }), 'ERR_FILE_NOT_FOUND')
    const typo = await expectCode(loadModel({ ...pair, thread: 2 } as never), 'ERR_INVALID_ARGUMENT')
    expect(typo.message).toContain("Did you mean 'threads'?")
    await expectCode(loadModel({ ...pair, threads: 0 }), 'ERR_INVALID_ARGUMENT')
    await expectCode(loadModel({ ...pair, threads: Number.NaN }), 'ERR_INVALID_ARGUMENT')
    await expectCode(loadModel({ model: 42 } as never), 'ERR_INVALID_ARGUMENT')
    await expectCode(loadModel(null as never), 'ERR_INVALID_ARGUMENT')
  })

  test('a file that is not a model is refused, and the next load works', async () => {
    const dir = tempDir()
    const notModel = path.join(dir, 'not-a-model.gguf')
    fs.writeFileSync(notModel, 'this is not a gguf file at all')
    await expectCode(loadModel({ model: notModel }), 'ERR_MODEL_LOAD')
    await expectCode(loadModel({ model: pair.model, mmproj: notModel }), 'ERR_MMPROJ_LOAD')
    const model = await loadModel(pair)
    await model.dispose()
  })

  test('abort: an aborted signal rejects with its reason, before and during loading', async () => {
    const before = new AbortController()
    before.abort(new Error('stop before'))
    await expect(loadModel({ ...pair, signal: before.signal })).rejects.toThrow('stop before')

    const during = new AbortController()
    const reason = new Error('stop during')
    await expect(loadModel({ ...pair, signal: during.signal, onProgress: () => during.abort(reason) })).rejects.toBe(reason)
  })

  test('a throwing onProgress rejects the load with that error', async () => {
    const boom = new Error('progress callback failed')
    await expect(
      loadModel({
        ...pair,
        onProgress: () => {
          throw boom
        },
      }),
    ).rejects.toBe(boom)
  })

  test('text-only use without a projector', async () => {
    const model = await loadModel({ model: pair.model, threads: 1 })
    try {
      expect(model.info.vision).toBeNull()
      const s = model.createSession()
      const r = await s.complete({ prompt: 'USER: hello\nASSISTANT:', maxTokens: 6, ...greedy })
      expect(r.tokens).toHaveLength(6)
      expect(r.text.length).toBeGreaterThan(0)
      await expectCode(model.encodeImage(pattern(8, 8).rgb), 'ERR_NO_VISION')
      await expectCode(s.complete({ prompt: PROMPT, images: ['/tmp/x.bmp'] }), 'ERR_NO_VISION')
    } finally {
      await model.dispose()
    }
  })
})

describe('with a loaded model', () => {
  const pair = tinyPair()
  let model: Model
  let dir: string

  beforeAll(async () => {
    model = await loadModel({ ...pair, threads: 1 })
    dir = tempDir()
  })
  afterAll(async () => {
    await model.dispose()
  })

  test('tokenize and detokenize round-trip; invalid ids are refused', () => {
    const ids = model.tokenize('the cat is on the tree', { addSpecial: true })
    expect(ids[0]).toBe(model.info.bosToken)
    expect(model.detokenize(ids.slice(1))).toBe('the cat is on the tree')
    expect(() => model.detokenize([model.info.vocabSize])).toThrow(LlavaError)
    expect(() => model.detokenize([-1])).toThrow(/token id/)
    expect(() => model.tokenize(5 as never)).toThrow(LlavaError)
  })

  test('the same pixels as a file, a BMP buffer, a PNG buffer and raw RGB/RGBA/BGRA encode identically', async () => {
    const { file, img } = bmpFile(dir, 'same.bmp', 40, 24, 3)
    const inputs = [
      file,
      toBmp(img),
      toPng(img),
      new Uint8Array(toPng(img)).buffer,
      { data: img.rgb, width: img.width, height: img.height, format: 'rgb' as const },
      { data: toRgba(img), width: img.width, height: img.height, format: 'rgba' as const },
      { data: toBgra(img), width: img.width, height: img.height, format: 'bgra' as const },
    ]
    const embeddings = []
    for (const input of inputs) embeddings.push(await model.encodeImage(input))
    const first = embeddings[0].toFloat32Array()
    expect(first.length).toBe(16 * 64)
    const session = model.createSession()
    const answers = []
    for (const e of embeddings) {
      expect(e.id).toBe(embeddings[0].id)
      expect(e.width).toBe(40)
      expect(e.height).toBe(24)
      expect(Buffer.from(e.toFloat32Array().buffer).equals(Buffer.from(first.buffer))).toBe(true)
      answers.push((await session.complete({ prompt: PROMPT, images: [e], maxTokens: 10, ...greedy })).tokens)
    }
    for (const a of answers) expect(a).toEqual(answers[0])
    expect(embeddings[0].reused).toBe(false)
    for (const e of embeddings.slice(1)) expect(e.reused).toBe(true)
    await Promise.all(embeddings.map((e) => e.dispose()))
  })

  test('an ImageEmbedding reused in two prompts and two sessions costs one encode', async () => {
    const { file } = bmpFile(dir, 'reuse.bmp', 32, 32, 5)
    const before = model.imageEncodeCount
    const image = await model.encodeImage(file)
    expect(model.imageEncodeCount).toBe(before + 1)
    const a = model.createSession()
    const b = model.createSession()
    const r1 = await a.complete({ prompt: PROMPT, images: [image], maxTokens: 8, ...greedy })
    const r2 = await b.complete({ prompt: 'USER: <image>\nwhat is this?\nASSISTANT:', images: [image], maxTokens: 8, ...greedy })
    expect(model.imageEncodeCount).toBe(before + 1)
    expect(r1.timings.imageEncodes).toBe(0)
    expect(r2.timings.imageEncodes).toBe(0)
    // The same pixels given as a file find the alive embedding: still one encode.
    const r3 = await a.complete({ prompt: PROMPT, images: [file], maxTokens: 8, ...greedy })
    expect(r3.timings.imageEncodes).toBe(0)
    expect(r3.tokens).toEqual(r1.tokens)
    const again = await model.encodeImage(file)
    expect(again.reused).toBe(true)
    // The encoder's own time is part of the call's, and nothing ran for the reused one.
    expect(image.encoderMs).toBeGreaterThan(0)
    expect(image.encoderMs).toBeLessThanOrEqual(image.encodeMs)
    expect(again.encoderMs).toBe(0)
    expect(model.imageEncodeCount).toBe(before + 1)
    await Promise.all([a.dispose(), b.dispose(), image.dispose(), again.dispose()])
    // Once nothing holds it, the image is encoded again when next given.
    const c = model.createSession()
    const r4 = await c.complete({ prompt: PROMPT, images: [file], maxTokens: 8, ...greedy })
    expect(r4.timings.imageEncodes).toBe(1)
    expect(model.imageEncodeCount).toBe(before + 2)
    expect(r4.tokens).toEqual(r1.tokens)
    await c.dispose()
  })

  test('several images in one prompt, placed by their markers', async () => {
    const one = await model.encodeImage(bmpFile(dir, 'one.bmp', 32, 32, 1).file)
    const two = await model.encodeImage(bmpFile(dir, 'two.bmp', 32, 32, 2).file)
    const s = model.createSession()
    const ab = await s.complete({ prompt: 'USER: <image> and <image>\ncompare\nASSISTANT:', images: [one, two], maxTokens: 8, ...greedy })
    const ba = await s.complete({ prompt: 'USER: <image> and <image>\ncompare\nASSISTANT:', images: [two, one], maxTokens: 8, ...greedy })
    expect(ab.timings.promptTokens).toBe(ba.timings.promptTokens)
    expect(ab.timings.promptTokens).toBeGreaterThan(32)
    expect(ab.tokens).not.toEqual(ba.tokens)
    await expectCode(s.complete({ prompt: 'USER: <image>\nASSISTANT:', images: [one, two] }), 'ERR_INVALID_ARGUMENT')
    await expectCode(s.complete({ prompt: 'USER: <__media__>\nASSISTANT:' }), 'ERR_INVALID_ARGUMENT')
    await s.dispose()
  })

  test('streaming: pieces arrive in order and add up to the result', async () => {
    const s = model.createSession()
    const stream = s.generate({ prompt: PROMPT, images: [bmpFile(dir, 'stream.bmp').file], maxTokens: 12, ...greedy })
    const pieces: string[] = []
    const tokens: number[] = []
    for await (const piece of stream) {
      pieces.push(piece.text)
      tokens.push(...piece.tokens)
    }
    const result = await stream.result
    expect(pieces.length).toBeGreaterThan(1)
    expect(pieces.join('')).toBe(result.text)
    expect(tokens).toEqual(result.tokens)
    expect(result.stopReason).toBe('maxTokens')
    await s.dispose()
  })

  test('breaking out of a stream stops generation and leaves the session usable', async () => {
    const s = model.createSession()
    let n = 0
    const stream = s.generate({ prompt: 'USER: tell me a story\nASSISTANT:', maxTokens: 400, ...greedy })
    for await (const piece of stream) {
      expect(piece.text.length).toBeGreaterThan(0)
      if (++n === 2) break
    }
    const result = await stream.result
    expect(result.stopReason).toBe('aborted')
    expect(result.tokens.length).toBeLessThan(400)
    const again = await s.complete({ prompt: 'USER: hello\nASSISTANT:', maxTokens: 4, ...greedy })
    expect(again.tokens).toHaveLength(4)
    await s.dispose()
  })

  test('stop strings end generation and are left out of the text', async () => {
    const s = model.createSession()
    const full = await s.complete({ prompt: PROMPT, images: [bmpFile(dir, 'stop.bmp').file], maxTokens: 16, ...greedy })
    expect(full.text.length).toBeGreaterThan(6)
    const stopAt = full.text.slice(3, 6)
    const expected = full.text.slice(0, full.text.indexOf(stopAt))
    const streamed: string[] = []
    const cut = await s.complete({
      prompt: PROMPT,
      images: [bmpFile(dir, 'stop.bmp').file],
      maxTokens: 16,
      stop: [stopAt],
      onToken: (p) => streamed.push(p.text),
      ...greedy,
    })
    expect(cut.stopReason).toBe('stop')
    expect(cut.text).toBe(expected)
    expect(streamed.join('')).toBe(expected)
    await s.dispose()
  })

  test('sampling options: seeded sampling is reproducible, greedy ignores the seed', async () => {
    const s = model.createSession()
    const opts = { prompt: 'USER: hello\nASSISTANT:', maxTokens: 12, temperature: 1.5, topK: 0, topP: 1, minP: 0 }
    const a = await s.complete({ ...opts, seed: 7 })
    const b = await s.complete({ ...opts, seed: 7 })
    const c = await s.complete({ ...opts, seed: 8 })
    expect(a.tokens).toEqual(b.tokens)
    expect(c.tokens).not.toEqual(a.tokens)
    const g1 = await s.complete({ ...opts, temperature: 0, seed: 1 })
    const g2 = await s.complete({ ...opts, temperature: 0, seed: 2 })
    expect(g1.tokens).toEqual(g2.tokens)
    const penalized = await s.complete({ ...opts, temperature: 0, repeatPenalty: 1.5, frequencyPenalty: 0.5, presencePenalty: 0.5 })
    expect(penalized.tokens).toHaveLength(12)
    await expectCode(s.complete({ ...opts, temperature: -1 }), 'ERR_INVALID_ARGUMENT')
    await expectCode(s.complete({ ...opts, topP: 2 }), 'ERR_INVALID_ARGUMENT')
    await expectCode(s.complete({ ...opts, maxTokens: 1.5 }), 'ERR_INVALID_ARGUMENT')
    const typo = await expectCode(s.complete({ ...opts, temprature: 0 } as never), 'ERR_INVALID_ARGUMENT')
    expect(typo.message).toContain("Did you mean 'temperature'?")
    await s.dispose()
  })

  test('a GBNF grammar constrains the output; a bad one is refused', async () => {
    const s = model.createSession()
    const r = await s.complete({ prompt: 'USER: yes or no?\nASSISTANT:', grammar: 'root ::= ("yes" | "no") " " ("cat" | "dog")', maxTokens: 20, ...greedy })
    expect(r.text).toMatch(/^(yes|no) (cat|dog)$/)
    expect(r.stopReason).toBe('eos')
    await expectCode(s.complete({ prompt: 'x', grammar: 'root ::= (' }), 'ERR_GRAMMAR')
    await s.dispose()
  })

  test('a prompt that cannot fit the context is refused before evaluation', async () => {
    // llama.cpp rounds context sizes up to a multiple of 256.
    const s = model.createSession({ contextSize: 256 })
    const words = 'the cat is on the tree '.repeat(40)
    const e = await expectCode(
      s.complete({ prompt: `USER: <image>\n${words}\nASSISTANT:`, images: [bmpFile(dir, 'big.bmp').file], maxTokens: 4 }),
      'ERR_CONTEXT_OVERFLOW',
    )
    expect(e.message).toMatch(/contextSize/)
    expect(s.cacheInfo().positions).toBe(0)
    const fits = await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 400, ...greedy })
    expect(fits.stopReason).toBe('contextFull')
    expect(s.cacheInfo().positions).toBe(256)
    await s.dispose()
  })

  test('abort during encoding and generation rejects with the reason; the session stays usable', async () => {
    const encodeAbort = new AbortController()
    encodeAbort.abort(new Error('no encode'))
    await expect(model.encodeImage(bmpFile(dir, 'ab.bmp').file, { signal: encodeAbort.signal })).rejects.toThrow('no encode')

    const s = model.createSession()
    const ctrl = new AbortController()
    const reason = new Error('user stopped')
    let seen = 0
    await expect(
      s.complete({
        prompt: 'USER: tell me a long story\nASSISTANT:',
        maxTokens: 500,
        signal: ctrl.signal,
        onToken: () => {
          if (++seen === 3) ctrl.abort(reason)
        },
        ...greedy,
      }),
    ).rejects.toBe(reason)
    expect(seen).toBeLessThan(500)
    const after = await s.complete({ prompt: 'USER: hello\nASSISTANT:', maxTokens: 5, ...greedy })
    expect(after.tokens).toHaveLength(5)
    await s.dispose()
  })

  test('a throwing onToken rejects with that error and stops generation', async () => {
    const s = model.createSession()
    const boom = new Error('consumer failed')
    let calls = 0
    await expect(
      s.complete({
        prompt: 'USER: tell me a long story\nASSISTANT:',
        maxTokens: 500,
        onToken: () => {
          calls++
          throw boom
        },
        ...greedy,
      }),
    ).rejects.toBe(boom)
    expect(calls).toBe(1)
    expect((await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 3, ...greedy })).tokens).toHaveLength(3)
    await s.dispose()
  })

  test('calls on one session run in order; two sessions generate concurrently with the same tokens as alone', async () => {
    const opts = { prompt: PROMPT, images: [bmpFile(dir, 'conc.bmp').file], maxTokens: 24, ...greedy }
    const alone = await (async () => {
      const s = model.createSession()
      const r = await s.complete(opts)
      await s.dispose()
      return r.tokens
    })()
    const a = model.createSession()
    const b = model.createSession()
    const [ra, rb] = await Promise.all([a.complete(opts), b.complete(opts)])
    expect(ra.tokens).toEqual(alone)
    expect(rb.tokens).toEqual(alone)
    const order: number[] = []
    await Promise.all([1, 2, 3].map((i) => a.complete({ ...opts, maxTokens: 3 }).then(() => order.push(i))))
    expect(order).toEqual([1, 2, 3])
    await Promise.all([a.dispose(), b.dispose()])
  })

  test('dispose during generation stops it with ERR_DISPOSED; dispose is idempotent; use after dispose is refused', async () => {
    const s = model.createSession()
    let disposing: Promise<void> | undefined
    const run = s.complete({
      prompt: 'USER: tell me a long story\nASSISTANT:',
      maxTokens: 500,
      onToken: () => {
        disposing ??= s.dispose()
      },
      ...greedy,
    })
    await expectCode(run, 'ERR_DISPOSED')
    await disposing
    await s.dispose()
    expect(s.disposed).toBe(true)
    await expectCode(s.complete({ prompt: 'x' }), 'ERR_DISPOSED')
    expect(() => s.cacheInfo()).toThrow(LlavaError)
  })

  test('Symbol.asyncDispose releases sessions and embeddings', async () => {
    let session
    let image: ImageEmbedding | undefined
    {
      await using s = model.createSession()
      await using e = await model.encodeImage(bmpFile(dir, 'using.bmp').file)
      session = s
      image = e
      await s.complete({ prompt: PROMPT, images: [e], maxTokens: 2 })
    }
    expect(session.disposed).toBe(true)
    expect(image!.disposed).toBe(true)
    expect(() => image!.toFloat32Array()).toThrow(LlavaError)
    await expectCode(model.createSession().complete({ prompt: PROMPT, images: [image!] }), 'ERR_DISPOSED')
  })

  test('image input errors are typed', async () => {
    await expectCode(model.encodeImage(path.join(dir, 'missing.png')), 'ERR_FILE_NOT_FOUND')
    await expectCode(model.encodeImage(dir), 'ERR_FILE_NOT_FOUND')
    await expectCode(model.encodeImage(Buffer.from('not an image')), 'ERR_IMAGE_DECODE')
    await expectCode(model.encodeImage(Buffer.alloc(0)), 'ERR_IMAGE_DECODE')
    await expectCode(model.encodeImage({ data: new Uint8Array(10), width: 4, height: 4, format: 'rgb' }), 'ERR_INVALID_ARGUMENT')
    await expectCode(model.encodeImage({ data: new Uint8Array(48), width: 4, height: 4, format: 'xyz' } as never), 'ERR_INVALID_ARGUMENT')
    await expectCode(model.encodeImage(42 as never), 'ERR_INVALID_ARGUMENT')
    await expectCode(model.encodeImage(toBmp(pattern(64, 64)), { maxPixels: 1000 }), 'ERR_IMAGE_DECODE')
  })

  test('llama.cpp log messages can be routed to a callback, and are silent by default', async () => {
    const messages: string[] = []
    setLogger((level, message) => messages.push(`${level}: ${message}`), { level: 'info' })
    const m = await loadModel({ model: tinyPair().model, threads: 1 })
    await m.dispose()
    await new Promise((r) => setTimeout(r, 20))
    setLogger(null)
    expect(messages.some((m) => m.includes('llama'))).toBe(true)
  })
})

describe('model dispose', () => {
  test('cascades to sessions and embeddings, waits for running work, and is idempotent', async () => {
    const model = await loadModel({ ...tinyPair(), threads: 1 })
    const dir = tempDir()
    const image = await model.encodeImage(bmpFile(dir, 'cascade.bmp').file)
    const session = model.createSession()
    const running = session.complete({ prompt: PROMPT, images: [image], maxTokens: 5, ...greedy })
    await Promise.all([model.dispose(), model.dispose()])
    expect(model.disposed).toBe(true)
    expect(session.disposed).toBe(true)
    expect(image.disposed).toBe(true)
    await running.then(
      (r) => expect(r.tokens.length).toBeLessThanOrEqual(5),
      (e) => expect((e as LlavaError).code).toBe('ERR_DISPOSED'),
    )
    expect(() => model.createSession()).toThrow(LlavaError)
    await expectCode(model.encodeImage(image.id), 'ERR_DISPOSED')
    expect(() => model.tokenize('x')).toThrow(/disposed/)
  })
})
