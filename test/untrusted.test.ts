// Untrusted input never takes the process down: every malformed model file, hostile image, hostile
// sound or audio projector, and misused argument is refused with the right code, in this process,
// and the next valid call works.
import * as fs from 'node:fs'
import { LlavaError, type Model, type Session, loadModel } from '../lib'
import { bmpFile, greedy, tempDir, tinyPair } from './helpers/fixtures'
import { codeOf } from './helpers/errors'
import { GGUFValueType } from '../lib/gguf/types'
import { MODEL_CASES } from './malformed/corpus'
import { rewrite } from './malformed/rewrite'
import { IMAGE_CASES, JPEG_SAMPLE } from './malformed/images'
import { AUDIO_PROJECTOR_CASES, SOUND_CASES, writeEdited } from './malformed/audio'
import { ensurePair } from '../lib/fixtures'

const pair = tinyPair()
const dir = tempDir('llava-untrusted-')

describe('malformed model files', () => {
  test.each(MODEL_CASES.map((c) => [c.name, c] as const))('%s is refused', async (_name, c) => {
    const args = c.make(dir, pair)
    const err = await loadModel({ ...args, threads: 1 }).then(
      async (m) => {
        await m.dispose()
        return undefined
      },
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(LlavaError)
    expect((err as LlavaError).code).toBe(c.code)
    // The message names the file.
    expect((err as LlavaError).message).toContain(args.mmproj && c.code !== 'ERR_MODEL_LOAD' ? args.mmproj : args.model)
  })

  test('keys real projector files carry that the loader does not read are accepted', async () => {
    // e.g. LLaVA-1.5's mmproj from llama.cpp's converter: has_text_encoder, has_minicpmv_projector, …
    const mmproj = rewrite(pair.mmproj, `${dir}/extra-keys.gguf`, {
      kv: (kv) => {
        kv.set('clip.has_text_encoder', { type: GGUFValueType.BOOL, value: false })
        kv.set('clip.has_minicpmv_projector', { type: GGUFValueType.BOOL, value: false })
        kv.set('clip.vision.some_future_scale', { type: GGUFValueType.FLOAT32, value: 0.5 })
        kv.set('clip.some_future_name', { type: GGUFValueType.STRING, value: 'x' })
      },
    })
    const model = await loadModel({ model: pair.model, mmproj, threads: 1 })
    expect(model.info.vision?.projector).toBe('mlp')
    await model.dispose()
  })

  test('the corpus is large and the next valid load works', async () => {
    expect(MODEL_CASES.length).toBeGreaterThanOrEqual(40)
    const model = await loadModel({ ...pair, threads: 1 })
    const s = model.createSession()
    const r = await s.complete({ prompt: 'USER: <image>\nok?\nASSISTANT:', images: [bmpFile(dir, 'after.bmp').file], maxTokens: 4, ...greedy })
    expect(r.tokens).toHaveLength(4)
    await model.dispose()
  })
})

describe('hostile images and misuse', () => {
  let model: Model
  let session: Session

  beforeAll(async () => {
    model = await loadModel({ ...pair, threads: 1 })
    session = model.createSession()
  })
  afterAll(async () => {
    await model.dispose()
  })

  test.each(IMAGE_CASES.map((c) => [c.name, c] as const))('image %s', async (_name, c) => {
    const input = c.make(dir)
    if (c.code === 'deterministic') {
      // Decodes to the same pixels every time, or is refused every time.
      const a = await model.encodeImage(input as Buffer).then((e) => e.id, (e: LlavaError) => e.code)
      const b = await model.encodeImage(input as Buffer).then((e) => e.id, (e: LlavaError) => e.code)
      expect(a).toBe(b)
      return
    }
    expect(await codeOf(model.encodeImage(input as never))).toBe(c.code)
    // The same input inside a prompt is refused the same way (or as the sound it is).
    expect(await codeOf(session.complete({ prompt: 'USER: <image>\nx\nASSISTANT:', images: [input as never], maxTokens: 2 }))).toBe(c.promptCode ?? c.code)
  })

  test('a real JPEG decodes (the sample shipped with llama.cpp)', async () => {
    const e = await model.encodeImage(fs.readFileSync(JPEG_SAMPLE))
    expect(e.width).toBeGreaterThan(0)
    await e.dispose()
  })

  const MISUSE: Array<[string, () => unknown, string]> = [
    ['temperature NaN', () => session.complete({ prompt: 'x', temperature: Number.NaN }), 'ERR_INVALID_ARGUMENT'],
    ['temperature Infinity', () => session.complete({ prompt: 'x', temperature: Infinity }), 'ERR_INVALID_ARGUMENT'],
    ['negative maxTokens', () => session.complete({ prompt: 'x', maxTokens: -1 }), 'ERR_INVALID_ARGUMENT'],
    ['fractional topK', () => session.complete({ prompt: 'x', topK: 1.5 }), 'ERR_INVALID_ARGUMENT'],
    ['seed too large', () => session.complete({ prompt: 'x', seed: 2 ** 40 }), 'ERR_INVALID_ARGUMENT'],
    ['prompt not a string', () => session.complete({ prompt: 42 as never }), 'ERR_INVALID_ARGUMENT'],
    ['stop not an array', () => session.complete({ prompt: 'x', stop: 'USER:' as never }), 'ERR_INVALID_ARGUMENT'],
    ['empty stop string', () => session.complete({ prompt: 'x', stop: [''] }), 'ERR_INVALID_ARGUMENT'],
    ['images not an array', () => session.complete({ prompt: 'x', images: 'a.png' as never }), 'ERR_INVALID_ARGUMENT'],
    ['unknown option', () => session.complete({ prompt: 'x', maxToken: 3 } as never), 'ERR_INVALID_ARGUMENT'],
    ['options not an object', () => session.complete('x' as never), 'ERR_INVALID_ARGUMENT'],
    ['signal not a signal', () => session.complete({ prompt: 'x', signal: {} as never }), 'ERR_INVALID_ARGUMENT'],
    ['onToken not a function', () => session.complete({ prompt: 'x', onToken: 'f' as never }), 'ERR_INVALID_ARGUMENT'],
    ['grammar not a string', () => session.complete({ prompt: 'x', grammar: 5 as never }), 'ERR_INVALID_ARGUMENT'],
    ['bad grammar', () => session.complete({ prompt: 'x', grammar: 'root ::= [' }), 'ERR_GRAMMAR'],
    ['empty prompt', () => session.complete({ prompt: '', addSpecial: false }), 'ERR_INVALID_ARGUMENT'],
    ['prompt ending in an image', () => session.complete({ prompt: 'USER: <image>', images: [bmpFile(dir, 'end.bmp').file] }), 'ERR_INVALID_ARGUMENT'],
    ['contextSize 0', () => model.createSession({ contextSize: 0 }), 'ERR_INVALID_ARGUMENT'],
    ['contextSize string', () => model.createSession({ contextSize: '4096' as never }), 'ERR_INVALID_ARGUMENT'],
    ['threads negative', () => model.createSession({ threads: -2 }), 'ERR_INVALID_ARGUMENT'],
    ['detokenize NaN', () => model.detokenize([Number.NaN]), 'ERR_INVALID_ARGUMENT'],
    ['detokenize string', () => model.detokenize('1,2' as never), 'ERR_INVALID_ARGUMENT'],
    ['tokenize object', () => model.tokenize({} as never), 'ERR_INVALID_ARGUMENT'],
    ['maxPixels zero', () => model.encodeImage(bmpFile(dir, 'mp.bmp').file, { maxPixels: 0 }), 'ERR_INVALID_ARGUMENT'],
    ['loadModel gpuLayers negative', () => loadModel({ ...pair, gpuLayers: -5 }), 'ERR_INVALID_ARGUMENT'],
    ['loadModel model path with NUL', () => loadModel({ model: 'a\0b.gguf' }), 'ERR_INVALID_ARGUMENT'],
    ['loadModel onProgress not a function', () => loadModel({ ...pair, onProgress: 1 as never }), 'ERR_INVALID_ARGUMENT'],
    ['chat with a non-array', () => session.chat('hello' as never), 'ERR_INVALID_ARGUMENT'],
    ['chat with a bad part', () => session.chat([{ role: 'user', content: [{ type: 'video' } as never] }]), 'ERR_INVALID_ARGUMENT'],
    ['session load of a missing file', () => session.load(`${dir}/none.bin`), 'ERR_FILE_NOT_FOUND'],
  ]

  test.each(MISUSE)('misuse: %s', async (_name, call, code) => {
    expect(await codeOf(call)).toBe(code)
  })

  test('after all of that, the model and session still work', async () => {
    const r = await session.complete({ prompt: 'USER: <image>\nstill ok?\nASSISTANT:', images: [bmpFile(dir, 'final.bmp').file], maxTokens: 5, ...greedy })
    expect(r.tokens).toHaveLength(5)
    expect(IMAGE_CASES.length + MISUSE.length + MODEL_CASES.length).toBeGreaterThanOrEqual(100)
  })
})

describe('hostile sound and audio projectors', () => {
  const ultravox = ensurePair('tiny-ultravox')
  let model: Model
  beforeAll(async () => {
    model = await loadModel({ ...ultravox, threads: 1 })
  })
  afterAll(() => model.dispose())

  test.each(SOUND_CASES.map((c) => [c.name, c] as const))('sound: %s is ERR_AUDIO_DECODE', async (_name, c) => {
    const bytes = c.make()
    const t0 = Date.now()
    const err = await model.encodeAudio(bytes).catch((e: Error) => e)
    expect(err).toMatchObject({ code: 'ERR_AUDIO_DECODE' })
    if (c.says) expect(String(err)).toContain(c.says)
    expect(Date.now() - t0).toBeLessThan(5000) // refused from the header, not after decoding hours
    // in a prompt a buffer is told by its first bytes: those that still start like a sound are
    // refused as sound, the others as images (which this projector does not take)
    const count = await model.countTokens('USER: <media>x\nASSISTANT:', { media: [bytes] }).catch((e: Error) => e)
    if (c.headerOnly) expect(count).toMatchObject({ audioTokens: 188 })
    else expect(count).toMatchObject({ code: expect.stringMatching(/^(ERR_AUDIO_DECODE|ERR_NO_VISION)$/) })
  })

  test.each(AUDIO_PROJECTOR_CASES.map((c) => [c.name, c] as const))('audio projector: %s, refused before llama.cpp builds a graph', async (_name, c) => {
    const bad = writeEdited(ultravox.mmproj, `${dir}/bad-audio-mmproj.gguf`, c)
    const err = await loadModel({ model: ultravox.model, mmproj: bad, threads: 1 }).catch((e: Error) => e)
    expect(err).toMatchObject({ code: c.code })
    expect(String(err)).toContain(c.says)
  })

  test('the next sound works', async () => {
    const e = await model.encodeAudio({ samples: new Float32Array(16000).fill(0.1), sampleRate: 16000 })
    expect(e.nTokens).toBe(188)
    await e.dispose()
  })
})
