// Sound as a first-class medium, on tiny Ultravox (stack factor 8, as v0.5 files carry), Voxtral
// and Qwen2.5-Omni pairs written as llama.cpp's converter writes them: greedy parity with llama-mtmd-cli --audio built from the same
// tree (WAV, stereo at another rate, FLAC, llama.cpp's own test-2.mp3, two sounds, a sound longer
// than one 30 s window), raw PCM equal to the same samples in a file, header-only counting, reuse,
// groups, save/load, abort, chat parts, and hostile files refused with typed errors.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { AudioEmbedding, type Model, loadModel } from '../lib'
import { ensurePair, writeTinyUltravoxPair } from '../lib/fixtures'
import { flac16, tones, wav16, wavFloat } from './helpers/audio'
import { codeOf } from './helpers/errors'
import { bmpFile, greedy, root, tempDir, tinyPair } from './helpers/fixtures'
import { haveReference, runMtmdCli as reference, LLAMA_CPP_KERNELS } from './helpers/reference'

const pair = ensurePair('tiny-ultravox')
const N = 16
const dir = tempDir('llava-audio-')
const testMp3 = path.join(root, 'deps', 'llama.cpp', 'tools', 'mtmd', 'test-2.mp3')

// the vicuna template llama-mtmd-cli applies to `-p TEXT`, with one marker per sound
const vicuna = (markers: number, text: string): string => `USER: ${'<media>'.repeat(markers)}${text}\nASSISTANT:`

function file(name: string, bytes: Buffer): string {
  const f = path.join(dir, name)
  fs.writeFileSync(f, bytes)
  return f
}

const mono20 = tones(20, 16000, 1, 1)
const wavA = file('a.wav', wav16(mono20, 16000))
const wavB = file('b.wav', wav16(tones(12, 16000, 1, 2), 16000))
const stereo = tones(9, 22050, 2, 3)
const wavStereo = file('stereo-22050.wav', wav16(stereo, 22050, 2))
const flacStereo = file('stereo-22050.flac', flac16(stereo, 22050, 2))
const wavLong = file('long.wav', wav16(tones(45, 16000, 1, 4), 16000))

let model: Model
beforeAll(async () => {
  model = await loadModel({ ...pair, ...LLAMA_CPP_KERNELS })
})
afterAll(async () => {
  await model.dispose()
})

async function answer(prompt: string, media: unknown[], opts: { maxTokens?: number } = {}) {
  const s = model.createSession()
  try {
    return await s.complete({ prompt, media: media as never, maxTokens: opts.maxTokens ?? N, ...greedy })
  } finally {
    await s.dispose()
  }
}

test('the model hears, and says at what rate', () => {
  expect(model.info.vision).toMatchObject({ projector: 'ultravox', supportsAudio: true, supportsVision: false, audioSampleRate: 16000 })
})

;(haveReference ? describe : describe.skip)('parity with llama-mtmd-cli --audio (greedy, token for token)', () => {
  const runMtmdCli = (sounds: string[], prompt: string, pairFiles = pair): string => reference(pairFiles, sounds.map((audio) => ({ audio })), prompt, N)

  test.each([
    ['a 16 kHz mono WAV', () => wavA],
    ['a 22.05 kHz stereo WAV (resampled, mixed down)', () => wavStereo],
    ['the same sound as FLAC', () => flacStereo],
    ["llama.cpp's own test clip (MP3)", () => testMp3],
    ['45 s: two 30 s windows', () => wavLong],
  ])('%s', async (_name, which) => {
    const got = await answer(vicuna(1, 'what is this'), [which()])
    expect(got.tokens).toHaveLength(N)
    expect(got.text).toBe(runMtmdCli([which()], 'what is this'))
  })

  test('two sounds in one prompt', async () => {
    const got = await answer(vicuna(2, 'compare them'), [wavA, wavB])
    expect(got.text).toBe(runMtmdCli([wavA, wavB], 'compare them'))
  })

  test('answers depend on the sound, so equal answers say something', async () => {
    const [a, b] = [await answer(vicuna(1, 'what is this'), [wavA]), await answer(vicuna(1, 'what is this'), [wavB])]
    expect(a.text).not.toBe(b.text)
  })

  test('Voxtral (pooling, then frames stacked by 4): 188 tokens a window, not an abort, and the same tokens', async () => {
    const voxtral = ensurePair('tiny-voxtral')
    const m = await loadModel({ ...voxtral, ...LLAMA_CPP_KERNELS })
    try {
      expect(m.info.vision).toMatchObject({ projector: 'voxtral', supportsAudio: true })
      const e = await m.encodeAudio(wavA)
      expect(e.nTokens).toBe(188)
      await e.dispose()
      const s = m.createSession()
      const r = await s.complete({ prompt: vicuna(1, 'what is this'), media: [wavA], maxTokens: N, ...greedy })
      expect(r.text).toBe(runMtmdCli([wavA], 'what is this', voxtral))
    } finally {
      await m.dispose()
    }
  })

  test('a stack factor of 4 (older Ultravox files) gives its own token count, the same as llama.cpp', async () => {
    const four = writeTinyUltravoxPair(tempDir('llava-ultravox4-'), { stackFactor: 4 })
    const m = await loadModel({ ...four, ...LLAMA_CPP_KERNELS })
    try {
      const e = await m.encodeAudio(wavA)
      expect(e.nTokens).toBe(375) // 1500 frames / 4
      await e.dispose()
      const s = m.createSession()
      const r = await s.complete({ prompt: vicuna(1, 'what is this'), media: [wavA], maxTokens: N, ...greedy })
      expect(r.text).toBe(runMtmdCli([wavA], 'what is this', four))
    } finally {
      await m.dispose()
    }
  })
})

describe('encodeAudio and AudioEmbedding', () => {
  test('a 30 s window with stack factor 8 is 188 tokens (1500 frames padded to 1504), not an abort', async () => {
    const e = await model.encodeAudio(wavA)
    try {
      expect(e).toBeInstanceOf(AudioEmbedding)
      expect(e.nTokens).toBe(188)
      expect(e.sampleRate).toBe(16000)
      expect(e.samples).toBe(20 * 16000)
      expect(e.durationMs).toBe(20000)
      expect(e.toFloat32Array()).toHaveLength(188 * e.nEmbd)
      const long = await model.encodeAudio(wavLong)
      expect(long.nTokens).toBe(2 * 188)
      await long.dispose()
    } finally {
      await e.dispose()
    }
  })

  test('the same sound as a 16-bit WAV, its FLAC and its buffer is one embedding; raw PCM is its float WAV', async () => {
    // 16-bit samples reach the encoder through the decoder's int-to-float step, float samples as
    // they are: each group is one content id, encoded once while the first is alive
    const groups = [
      [wavA, fs.readFileSync(wavA), file('a.flac', flac16(mono20, 16000))],
      [file('a-float.wav', wavFloat(mono20, 16000)), { samples: mono20, sampleRate: 16000 }, { samples: mono20, sampleRate: 16000, channels: 1 }],
    ]
    const ids: string[] = []
    for (const inputs of groups) {
      const es: AudioEmbedding[] = []
      for (const input of inputs) es.push(await model.encodeAudio(input))
      try {
        expect(new Set(es.map((e) => e.id)).size).toBe(1)
        expect(es.slice(1).every((e) => e.reused)).toBe(true)
        ids.push(es[0].id)
      } finally {
        await Promise.all(es.map((e) => e.dispose()))
      }
    }
    expect(ids[0]).not.toBe(ids[1])
    // stereo raw PCM at another rate is the stereo float file's sound: resampled and mixed alike
    const a = await model.encodeAudio({ samples: stereo, sampleRate: 22050, channels: 2 })
    const b = await model.encodeAudio(file('stereo-22050-float.wav', wavFloat(stereo, 22050, 2)))
    try {
      expect(b.id).toBe(a.id)
      expect(b.samples).toBe(Math.round(9 * 16000))
    } finally {
      await Promise.all([a.dispose(), b.dispose()])
    }
  })

  test('countTokens counts from the header alone, exactly what evaluation takes', async () => {
    for (const input of [wavA, wavStereo, flacStereo, testMp3, wavLong, { samples: mono20, sampleRate: 16000 }]) {
      const c = await model.countTokens(vicuna(1, 'what is this'), { media: [input] })
      expect(c.imageTokens).toBe(0)
      expect(c.audioTokens).toBeGreaterThan(0)
      const before = model.imageEncodeCount
      const r = await answer(vicuna(1, 'what is this'), [input], { maxTokens: 1 })
      expect(r.timings.promptTokens).toBe(c.tokens)
      expect(model.imageEncodeCount).toBe(before + 1)
    }
  })

  test('an embedding is reused in prompts without encoding again, and a cached prefix ending after the sound is kept', async () => {
    const e = await model.encodeAudio(wavB)
    const s = model.createSession()
    try {
      const before = model.imageEncodeCount
      const first = await s.complete({ prompt: vicuna(1, 'hello'), media: [e], maxTokens: 4, ...greedy })
      expect(first.timings.imageEncodes).toBe(0)
      const second = await s.complete({ prompt: vicuna(1, 'what is this'), media: [wavB], maxTokens: N, ...greedy })
      // BOS, "USER:", " " then the sound: kept; the text after it differs
      expect(second.timings.reusedTokens).toBeGreaterThanOrEqual(188)
      expect(second.timings.imageEncodes).toBe(0)
      expect(model.imageEncodeCount).toBe(before)
      const fresh = await answer(vicuna(1, 'what is this'), [wavB])
      expect(second.tokens).toEqual(fresh.tokens)
    } finally {
      await s.dispose()
      await e.dispose()
    }
  })

  test('images and sounds are told apart: an image to a hearing-only projector, sound to a seeing-only one', async () => {
    const img = bmpFile(dir, 'x.bmp', 32, 32, 1).file
    expect(await codeOf(answer(vicuna(1, 'x'), [img]))).toBe('ERR_NO_VISION')
    expect(await codeOf(model.encodeImage(img))).toBe('ERR_NO_VISION')
    const llava = await loadModel({ ...tinyPair(), ...LLAMA_CPP_KERNELS })
    try {
      expect(await codeOf(llava.encodeAudio(wavA))).toBe('ERR_NO_AUDIO')
      const s = llava.createSession()
      expect(await codeOf(s.complete({ prompt: 'USER: <media>x\nASSISTANT:', media: [wavA] }))).toBe('ERR_NO_AUDIO')
      expect(await codeOf(s.complete({ prompt: 'USER: <media>x\nASSISTANT:', media: [{ samples: mono20, sampleRate: 16000 }] }))).toBe('ERR_NO_AUDIO')
      await s.dispose()
      // encodeImage of a sound says what it is
      const err = await llava.encodeImage(wavA).catch((e: Error) => e)
      expect(err).toMatchObject({ code: 'ERR_IMAGE_DECODE' })
      expect(String(err)).toContain('encodeAudio')
    } finally {
      await llava.dispose()
    }
    // and encodeAudio of an image
    expect(await codeOf(model.encodeAudio(img))).toBe('ERR_AUDIO_DECODE')
  })

  test('an abort signal stops encoding; a disposed embedding is refused', async () => {
    const c = new AbortController()
    c.abort(new Error('stop'))
    await expect(model.encodeAudio(wavA, { signal: c.signal })).rejects.toThrow('stop')
    const late = new AbortController()
    const p = model.encodeAudio(wavLong, { signal: late.signal })
    late.abort(new Error('late'))
    await expect(p).rejects.toThrow('late')
    const e = await model.encodeAudio(wavB)
    await e.dispose()
    expect(await codeOf(answer(vicuna(1, 'x'), [e]))).toBe('ERR_DISPOSED')
  })
})

describe('sessions', () => {
  test('a group session with a sound gives what a plain session gives', async () => {
    const alone = await answer(vicuna(1, 'what is this'), [wavA])
    const group = model.createSessionGroup({ sessions: 2, contextSize: 1024 })
    try {
      const [a, b] = [group.createSession(), group.createSession()]
      const [ra] = await Promise.all([
        a.complete({ prompt: vicuna(1, 'what is this'), media: [wavA], maxTokens: N, ...greedy }),
        b.complete({ prompt: vicuna(1, 'compare'), media: [wavB], maxTokens: N, ...greedy }),
      ])
      expect(ra.tokens).toEqual(alone.tokens)
    } finally {
      await group.dispose()
    }
  })

  test('save and load a conversation with a sound: it goes on exactly, without encoding again', async () => {
    const a = model.createSession({ contextSize: 1024 })
    const b = model.createSession({ contextSize: 1024 })
    try {
      const first = await a.complete({ prompt: vicuna(1, 'what is this'), media: [wavB], maxTokens: 6, ...greedy })
      const saved = path.join(dir, 'audio-session.bin')
      await a.save(saved)
      const next = `${vicuna(1, 'what is this')}${first.text}</s>USER: more\nASSISTANT:`
      const want = await a.complete({ prompt: next, media: [wavB], maxTokens: N, ...greedy })
      await b.load(saved)
      const got = await b.complete({ prompt: next, media: [wavB], maxTokens: N, ...greedy })
      expect(got.tokens).toEqual(want.tokens)
      expect(got.timings.reusedTokens).toBeGreaterThan(188)
      expect(got.timings.imageEncodes).toBe(0)
    } finally {
      await Promise.all([a.dispose(), b.dispose()])
    }
  })

  test('chat: OpenAI input_audio (base64) and audio parts (path, embedding) render one marker each and answer alike', async () => {
    const s = model.createSession()
    try {
      const e = await model.encodeAudio(wavA)
      const parts = [
        { type: 'input_audio', input_audio: { data: fs.readFileSync(wavA).toString('base64'), format: 'wav' } },
        { type: 'audio', audio: wavA },
        { type: 'audio', audio: e },
        { type: 'audio', audio: { samples: mono20, sampleRate: 16000 } },
      ] as const
      const texts = new Set<string>()
      for (const part of parts) {
        const r = await s.chat([{ role: 'user', content: [part, { type: 'text', text: 'what is this' }] }], { maxTokens: 8, ...greedy })
        texts.add(r.text)
      }
      expect(texts.size).toBe(1)
      const rendered = await model.renderChat([{ role: 'user', content: [parts[1], { type: 'text', text: 'what is this' }] }])
      expect(rendered.images).toBe(1)
      expect(rendered.prompt).toContain(rendered.marker)
      const count = await model.countTokens([{ role: 'user', content: [parts[0], { type: 'text', text: 'what is this' }] }])
      expect(count.audioTokens).toBe(188)
      await e.dispose()
      // an audio part that is not sound is refused as sound
      expect(await codeOf(s.chat([{ role: 'user', content: [{ type: 'audio', audio: bmpFile(dir, 'y.bmp', 8, 8, 2).file }] }]))).toBe('ERR_AUDIO_DECODE')
      expect(
        await codeOf(s.chat([{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: '!!!', format: 'wav' } }] }])),
      ).toBe('ERR_INVALID_ARGUMENT')
    } finally {
      await s.dispose()
    }
  })

  test('a sound as a large data: URL (decoded into native memory) and a large input_audio stay sound', async () => {
    const big = wav16(tones(40, 16000, 1, 8), 16000) // 1.28 MB: over the size decoded into native memory
    const s = model.createSession()
    try {
      for (const part of [
        { type: 'image_url', image_url: { url: `data:audio/wav;base64,${big.toString('base64')}` } },
        { type: 'image_url', image_url: { url: `data:application/octet-stream;base64,${big.toString('base64')}` } },
        { type: 'input_audio', input_audio: { data: big.toString('base64'), format: 'wav' } },
      ] as const) {
        const c = await model.countTokens([{ role: 'user', content: [part, { type: 'text', text: 'what is this' }] }])
        expect(c.audioTokens).toBe(2 * 188)
        const r = await s.chat([{ role: 'user', content: [part, { type: 'text', text: 'what is this' }] }], { maxTokens: 2, ...greedy })
        expect(r.tokens).toHaveLength(2)
      }
    } finally {
      await s.dispose()
    }
  })

  test('sound to a model loaded without a projector is ERR_NO_AUDIO, as encodeAudio says', async () => {
    const textOnly = await loadModel({ model: pair.model, ...LLAMA_CPP_KERNELS })
    try {
      const s = textOnly.createSession()
      for (const input of [wavA, fs.readFileSync(wavA), { samples: mono20, sampleRate: 16000 }]) {
        expect(await codeOf(s.complete({ prompt: 'x <media>', media: [input] }))).toBe('ERR_NO_AUDIO')
        expect(await codeOf(textOnly.countTokens('x <media>', { media: [input] }))).toBe('ERR_NO_AUDIO')
      }
      expect(await codeOf(textOnly.encodeAudio(wavA))).toBe('ERR_NO_AUDIO')
      await s.dispose()
    } finally {
      await textOnly.dispose()
    }
  })

  test('media and images are not given together; markers must match', async () => {
    const s = model.createSession()
    try {
      expect(await codeOf(s.complete({ prompt: 'x', media: [wavA], images: [wavA] } as never))).toBe('ERR_INVALID_ARGUMENT')
      expect(await codeOf(s.complete({ prompt: vicuna(2, 'x'), media: [wavA] }))).toBe('ERR_INVALID_ARGUMENT')
    } finally {
      await s.dispose()
    }
  })
})

// Qwen2.5-Omni: one projector with both encoders, an M-RoPE thinker
;(haveReference ? describe : describe.skip)('images and sound in one prompt (Qwen2.5-Omni)', () => {
  const omni = ensurePair('tiny-qwen25omni')
  const chatml = (markers: number, text: string): string => `<|im_start|>user\n${'<media>'.repeat(markers)}${text}<|im_end|>\n<|im_start|>assistant\n`
  let m: Model
  beforeAll(async () => {
    m = await loadModel({ ...omni, ...LLAMA_CPP_KERNELS })
  })
  afterAll(() => m.dispose())

  test('an image then a sound, and a sound then an image: the same tokens as llama-mtmd-cli', async () => {
    const img = bmpFile(dir, 'omni.bmp', 72, 48, 5).file
    expect(m.info.vision).toMatchObject({ supportsVision: true, supportsAudio: true, mrope: true })
    for (const order of [[img, wavB], [wavB, img]]) {
      const s = m.createSession()
      const got = await s.complete({ prompt: chatml(2, 'what is this'), media: order, maxTokens: N, ...greedy })
      await s.dispose()
      const want = reference(omni, order.map((f) => (f === img ? { image: f } : { audio: f })), 'what is this', N)
      expect(got.text).toBe(want)
      const c = await m.countTokens(chatml(2, 'what is this'), { media: order })
      expect(c).toMatchObject({ imageTokens: 54, audioTokens: 750 })
      expect(got.timings.promptTokens).toBe(c.tokens)
      // M-RoPE: the image takes max(9, 6) positions; sound takes one a token
      expect(c.positions).toBe(c.textTokens + 9 + 750)
    }
  })

  test('in chat, image and audio parts together', async () => {
    const img = bmpFile(dir, 'omni-chat.bmp', 32, 32, 6).file
    const s = m.createSession()
    try {
      const r = await s.chat(
        [{ role: 'user', content: [{ type: 'image', image: img }, { type: 'audio', audio: wavB }, { type: 'text', text: 'what is this' }] }],
        { maxTokens: 4, ...greedy },
      )
      expect(r.timings.imageEncodes).toBe(2)
    } finally {
      await s.dispose()
    }
  })
})

// Hostile sound files and audio projectors are in the malformed corpus (test/malformed/audio.ts,
// run by test/untrusted.test.ts).
describe('untrusted sound', () => {
  test('maxAudioSeconds at load and maxSeconds per call, checked before decoding', async () => {
    expect(await codeOf(model.encodeAudio(wavA, { maxSeconds: 10 }))).toBe('ERR_AUDIO_DECODE')
    const short = await loadModel({ ...pair, maxAudioSeconds: 5 })
    try {
      const err = await short.encodeAudio(wavA).catch((e: Error) => e)
      expect(err).toMatchObject({ code: 'ERR_AUDIO_DECODE' })
      expect(String(err)).toContain('20.0 s, more than the limit of 5 s')
      expect(await codeOf(short.countTokens(vicuna(1, 'x'), { media: [wavA] }))).toBe('ERR_AUDIO_DECODE')
      expect(await codeOf(short.encodeAudio({ samples: mono20, sampleRate: 16000 }))).toBe('ERR_AUDIO_DECODE')
      const e = await short.encodeAudio(file('short.wav', wav16(tones(4, 16000, 1, 5), 16000)))
      await e.dispose()
    } finally {
      await short.dispose()
    }
    expect(await codeOf(loadModel({ ...pair, maxAudioSeconds: 0 }))).toBe('ERR_INVALID_ARGUMENT')
  })

  test('raw PCM is checked: rate, channels, frames, finite samples', async () => {
    const bad: unknown[] = [
      { samples: mono20, sampleRate: 0 },
      { samples: mono20, sampleRate: 999_999 },
      { samples: mono20, sampleRate: 16000, channels: 0 },
      { samples: mono20, sampleRate: 16000, channels: 33 },
      { samples: new Float32Array(3), sampleRate: 16000, channels: 2 },
      { samples: new Float32Array(0), sampleRate: 16000 },
      { samples: [0.1, 0.2], sampleRate: 16000 },
    ]
    for (const input of bad) expect(await codeOf(model.encodeAudio(input as never))).toBe('ERR_INVALID_ARGUMENT')
    const nan = new Float32Array(32000)
    nan[100] = Number.NaN
    expect(await codeOf(model.encodeAudio({ samples: nan, sampleRate: 16000 }))).toBe('ERR_AUDIO_DECODE')
  })

  test('300 mutations of a WAV, a FLAC and an MP3: typed errors or sound, never a crash', async () => {
    const seeds = [wav16(tones(2, 16000, 1, 9), 16000), flac16(tones(1, 16000, 1, 11), 16000), fs.readFileSync(testMp3).subarray(0, 65536)]
    let state = 12345
    const rand = (n: number): number => {
      state = (state * 1103515245 + 12345) & 0x7fffffff
      return state % n
    }
    const codes = new Set<string>()
    for (let i = 0; i < 300; i++) {
      const b = Buffer.from(seeds[i % seeds.length])
      const kind = rand(3)
      if (kind === 0) for (let k = 0; k < 1 + rand(8); k++) b[rand(b.length)] = rand(256)
      const m = kind === 1 ? b.subarray(0, rand(b.length)) : b
      if (kind === 2) m.writeUInt32LE(rand(0xffffffff), 4 + 4 * rand(Math.max(1, Math.floor(Math.min(64, m.length - 8) / 4))))
      try {
        const e = await model.encodeAudio(m, { maxSeconds: 60 })
        codes.add('ok')
        await e.dispose()
      } catch (err) {
        codes.add((err as { code: string }).code)
      }
    }
    for (const c of codes) expect(['ok', 'ERR_AUDIO_DECODE', 'ERR_AUDIO_ENCODE']).toContain(c)
    expect(codes.has('ERR_AUDIO_DECODE')).toBe(true)
  })
})
