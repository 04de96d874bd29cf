// M-RoPE models (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) on a tiny Qwen2.5-VL pair written the way
// llama.cpp's converter writes real ones: greedy parity with llama-mtmd-cli built from the same
// tree, and a context counted in KV cells (an image takes one cell per token but only
// max(width, height) positions), both before evaluation and during generation.
import * as path from 'node:path'
import { type Model, loadModel } from '../lib'
import { ensurePair } from '../lib/fixtures'
import { codeOf } from './helpers/errors'
import { bmpFile, greedy, tempDir } from './helpers/fixtures'
import { haveReference, runMtmdCli as reference, LLAMA_CPP_KERNELS } from './helpers/reference'

const pair = ensurePair('tiny-qwen25vl')
const N = 16

// What llama-mtmd-cli renders from `-p TEXT` with the ChatML template (no system turn: it uses
// llama.cpp's built-in chatml format, not the Jinja template): mtmd wraps each image in
// <|vision_start|> … <|vision_end|>.
const chatml = (markers: number, text: string): string => `<|im_start|>user\n${'<image>'.repeat(markers)}${text}<|im_end|>\n<|im_start|>assistant\n`

const runMtmdCli = (images: string[], prompt: string, extra: string[] = []): string =>
  reference(pair, images.map((image) => ({ image })), prompt, N, extra)

let model: Model
let dir: string

beforeAll(async () => {
  model = await loadModel({ ...pair, ...LLAMA_CPP_KERNELS })
  dir = tempDir('llava-mrope-')
})
afterAll(async () => {
  await model.dispose()
})

async function complete(prompt: string, images: string[], opts: { contextSize?: number; maxTokens?: number } = {}) {
  const s = model.createSession({ contextSize: opts.contextSize })
  try {
    return await s.complete({ prompt, images, maxTokens: opts.maxTokens ?? N, ...greedy })
  } finally {
    await s.dispose()
  }
}

test('the model reports M-RoPE, and countTokens counts cells and positions apart', async () => {
  expect(model.info.architecture).toBe('qwen2vl')
  expect(model.info.vision).toMatchObject({ projector: 'qwen2.5vl_merger', mrope: true })
  const { file } = bmpFile(dir, 'count.bmp', 72, 48, 3)
  // 72x48 px, patch 4, merge 2: 9x6 merged patches = 54 tokens over max(9, 6) = 9 positions
  const c = await model.countTokens(chatml(1, 'describe the image'), { images: [file] })
  expect(c.imageTokens).toBe(54)
  expect(c.tokens).toBe(c.textTokens + 54)
  expect(c.positions).toBe(c.textTokens + 9)
  // a model without M-RoPE: positions and cells agree
  const llava = await loadModel({ ...ensurePair('tiny'), ...LLAMA_CPP_KERNELS })
  try {
    expect(llava.info.vision?.mrope).toBe(false)
    const l = await llava.countTokens('USER: <image>describe\nASSISTANT:', { images: [file] })
    expect(l.positions).toBe(l.tokens)
  } finally {
    await llava.dispose()
  }
})

const describeParity = haveReference ? describe : describe.skip
describeParity('parity with llama-mtmd-cli (greedy, token for token)', () => {
  test('one image', async () => {
    const { file } = bmpFile(dir, 'one.bmp', 72, 48, 11)
    const got = await complete(chatml(1, 'describe the image'), [file])
    expect(got.tokens).toHaveLength(N)
    expect(got.text).toBe(runMtmdCli([file], 'describe the image'))
  })

  test('an image larger than one attention window (several windows in the ViT), and a portrait one', async () => {
    // 14 merged patches (112 px) per window side: 200x136 px spans 2x2 windows, ragged
    const wide = bmpFile(dir, 'wide.bmp', 200, 136, 12).file
    const wideText = (await complete(chatml(1, 'what is this'), [wide])).text
    expect(wideText).toBe(runMtmdCli([wide], 'what is this'))
    const tall = bmpFile(dir, 'tall.bmp', 40, 96, 13).file
    const tallText = (await complete(chatml(1, 'what is this'), [tall])).text
    expect(tallText).toBe(runMtmdCli([tall], 'what is this'))
    // the answer depends on the picture, so equal answers say something
    expect(tallText).not.toBe(wideText)
  })

  test('two images in one prompt: positions run on from each image', async () => {
    const a = bmpFile(dir, 'a.bmp', 64, 64, 21).file
    const b = bmpFile(dir, 'b.bmp', 48, 80, 22).file
    const got = await complete(chatml(2, 'compare them'), [a, b])
    expect(got.text).toBe(runMtmdCli([a, b], 'compare them'))
  })

  test('imageMinTokens / imageMaxTokens: the same budget as --image-min-tokens / --image-max-tokens', async () => {
    const { file } = bmpFile(dir, 'budget.bmp', 72, 48, 14)
    const m = await loadModel({ ...pair, imageMinTokens: 256, imageMaxTokens: 1024, ...LLAMA_CPP_KERNELS })
    try {
      const c = await m.countTokens(chatml(1, 'describe'), { images: [file] })
      expect(c.imageTokens).toBeGreaterThanOrEqual(256)
      const s = m.createSession()
      const got = await s.complete({ prompt: chatml(1, 'describe'), images: [file], maxTokens: N, ...greedy })
      expect(got.timings.promptTokens).toBe(c.tokens)
      expect(got.text).toBe(runMtmdCli([file], 'describe', ['--image-min-tokens', '256', '--image-max-tokens', '1024']))
    } finally {
      await m.dispose()
    }
    const small = await loadModel({ ...pair, imageMaxTokens: 16, ...LLAMA_CPP_KERNELS })
    try {
      const big = bmpFile(dir, 'big.bmp', 256, 256, 15).file
      const c = await small.countTokens(chatml(1, 'describe'), { images: [big] })
      expect(c.imageTokens).toBeLessThanOrEqual(16)
      expect(small.info.vision?.imageTokens).toBeLessThanOrEqual(16)
    } finally {
      await small.dispose()
    }
  })
})

test('imageMinTokens / imageMaxTokens are validated', async () => {
  for (const bad of [{ imageMinTokens: 0 }, { imageMaxTokens: 65537 }, { imageMinTokens: 1.5 }, { imageMinTokens: 512, imageMaxTokens: 256 }]) {
    expect(await codeOf(loadModel({ ...pair, ...bad }))).toBe('ERR_INVALID_ARGUMENT')
  }
})

test('a cached prefix that ends inside an image turn is reused, and the answer is that of a fresh session', async () => {
  const { file } = bmpFile(dir, 'prefix.bmp', 72, 48, 31)
  const s = model.createSession()
  try {
    await s.complete({ prompt: chatml(1, 'hello'), images: [file], maxTokens: 4, ...greedy })
    const second = await s.complete({ prompt: chatml(1, 'describe the image'), images: [file], maxTokens: N, ...greedy })
    // <|im_start|> user \n <|vision_start|> [54 image tokens] <|vision_end|>: kept
    expect(second.timings.reusedTokens).toBe(4 + 54 + 1)
    expect(second.timings.imageEncodes).toBe(0)
    const fresh = await complete(chatml(1, 'describe the image'), [file])
    expect(second.tokens).toEqual(fresh.tokens)
  } finally {
    await s.dispose()
  }
})

describe('the context counts KV cells', () => {
  test('generation into the end of the context ends with contextFull and keeps the text', async () => {
    const { file } = bmpFile(dir, 'full.bmp', 72, 48, 41)
    const s = model.createSession({ contextSize: 256 })
    try {
      const pieces: string[] = []
      const r = await s.complete({ prompt: chatml(1, 'describe the image'), images: [file], maxTokens: 1000, ...greedy, onToken: (p) => pieces.push(p.text) })
      expect(r.stopReason).toBe('contextFull')
      const info = s.cacheInfo()
      expect(info.cells).toBe(info.contextSize)
      // the positions lag the cells by the image's 54 - 9
      expect(info.positions).toBe(info.cells - 45)
      expect(r.timings.promptTokens + r.tokens.length).toBe(info.contextSize) // each token shown took its cell
      expect(r.text.length).toBeGreaterThan(0)
      expect(pieces.join('')).toBe(r.text)
      // the session stays usable: a shorter follow-up reuses what fits
      const again = await s.complete({ prompt: chatml(1, 'describe the image'), images: [file], maxTokens: 4, ...greedy })
      expect(again.tokens).toEqual(r.tokens.slice(0, 4))
    } finally {
      await s.dispose()
    }
  })

  test('a prompt one cell too large is refused before evaluation, with the cell count; one cell less runs', async () => {
    const { file } = bmpFile(dir, 'edge.bmp', 128, 96, 42) // 16x12 = 192 image tokens, 16 positions
    const s = model.createSession({ contextSize: 256 })
    try {
      const limit = s.cacheInfo().contextSize - 1 // one cell stays free for the answer
      const base = await model.countTokens(chatml(1, 'describe'), { images: [file] })
      const prompt = (n: number) => chatml(1, `describe${' yes'.repeat(n)}`)
      const pad = limit - base.tokens
      expect((await model.countTokens(prompt(pad), { images: [file] })).tokens).toBe(limit)
      // positions alone would fit many times over
      expect((await model.countTokens(prompt(pad + 1), { images: [file] })).positions).toBeLessThan(limit / 2)
      const err = await s.complete({ prompt: prompt(pad + 1), images: [file], maxTokens: 4, ...greedy }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'ERR_CONTEXT_OVERFLOW' })
      expect((err as Error).message).toContain(`needs ${limit + 1} KV cells`)
      expect(s.cacheInfo().cachedItems).toBe(0) // nothing was evaluated
      const ok = await s.complete({ prompt: prompt(pad), images: [file], maxTokens: 4, ...greedy })
      expect(ok.stopReason).toBe('contextFull')
      expect(ok.tokens).toHaveLength(1)
    } finally {
      await s.dispose()
    }
  })

  test('in a session group, each session has its own cells', async () => {
    const { file } = bmpFile(dir, 'group.bmp', 72, 48, 43)
    const group = model.createSessionGroup({ sessions: 2, contextSize: 512 })
    try {
      const [a, b] = [group.createSession(), group.createSession()]
      const [ra, rb] = await Promise.all([
        a.complete({ prompt: chatml(1, 'describe the image'), images: [file], maxTokens: 1000, ...greedy }),
        b.complete({ prompt: chatml(0, 'hello there'), maxTokens: 8, ...greedy }),
      ])
      expect(ra.stopReason).toBe('contextFull')
      expect(a.cacheInfo().cells).toBe(a.cacheInfo().contextSize)
      expect(rb.stopReason).toBe('maxTokens')
    } finally {
      await group.dispose()
    }
  })

  test('save and load: cells come back from the state, and a too-small session is told how many it needs', async () => {
    const { file } = bmpFile(dir, 'save.bmp', 72, 48, 44)
    const a = model.createSession({ contextSize: 512 })
    const b = model.createSession({ contextSize: 512 })
    const small = model.createSession({ contextSize: 256 })
    try {
      const first = await a.complete({ prompt: chatml(1, 'describe the image'), images: [file], maxTokens: 200, ...greedy })
      const saved = path.join(dir, 'mrope.bin')
      await a.save(saved)
      const before = a.cacheInfo()
      await b.load(saved)
      expect(b.cacheInfo()).toEqual(before)
      expect(before.positions).toBeLessThan(before.cells)
      const next = `${chatml(1, 'describe the image')}${first.text}<|im_end|>\n<|im_start|>user\nmore<|im_end|>\n<|im_start|>assistant\n`
      const want = await a.complete({ prompt: next, images: [file], maxTokens: 1000, ...greedy })
      const got = await b.complete({ prompt: next, images: [file], maxTokens: 1000, ...greedy })
      expect(got.tokens).toEqual(want.tokens)
      expect(got.stopReason).toBe('contextFull')
      // 266 cells do not fit 256, though the 221 positions would
      expect(before.cells).toBeGreaterThan(256)
      expect(before.positions).toBeLessThanOrEqual(256)
      const err = await small.load(saved).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'ERR_CONTEXT_OVERFLOW' })
      expect((err as Error).message).toContain(`holds ${before.cells} KV cells`)
    } finally {
      await Promise.all([a.dispose(), b.dispose(), small.dispose()])
    }
  })
})
