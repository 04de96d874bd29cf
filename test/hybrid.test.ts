// Models whose memory is more than one KV cache: LFM2-VL (hybrid: short-convolution layers with a
// recurrent state between attention layers) and Gemma 3 (a sliding-window cache beside the full
// one). Greedy parity with llama-mtmd-cli for the LFM2-VL pair, and session files that move
// between plain sessions and session groups of any size, continuing exactly.
import * as path from 'node:path'
import { type Model, type Session, loadModel } from '../lib'
import { ensurePair, writeTinyLfm2VLPair } from '../lib/fixtures'
import { codeOf } from './helpers/errors'
import { bmpFile, greedy, tempDir, tinyGemma3Pair } from './helpers/fixtures'
import { haveReference, runMtmdCli as reference, LLAMA_CPP_KERNELS } from './helpers/reference'

const lfm2 = ensurePair('tiny-lfm2vl')
const N = 16
const dir = tempDir('llava-hybrid-')

const chatml = (markers: number, text: string): string => `<|im_start|>user\n${'<image>'.repeat(markers)}${text}<|im_end|>\n<|im_start|>assistant\n`

;(haveReference ? describe : describe.skip)('LFM2-VL parity with llama-mtmd-cli (greedy, token for token)', () => {
  let model: Model
  beforeAll(async () => {
    model = await loadModel({ ...lfm2, ...LLAMA_CPP_KERNELS })
  })
  afterAll(async () => {
    await model.dispose()
  })

  const runMtmdCli = (images: readonly string[], prompt: string): string => reference(lfm2, images.map((image) => ({ image })), prompt, N)

  test.each([
    ['one image', [[72, 48, 1]], 'describe the image'],
    ['a small image scaled up to the minimum budget', [[24, 40, 2]], 'what is this'],
    ['two images', [[64, 64, 3], [96, 48, 4]], 'compare them'],
  ] as const)('%s', async (_name, sizes, text) => {
    const files = sizes.map(([w, h, seed]) => bmpFile(dir, `lfm2-${w}x${h}-${seed}.bmp`, w, h, seed).file)
    const s = model.createSession()
    const got = await s.complete({ prompt: chatml(files.length, text), images: files, maxTokens: N, ...greedy })
    await s.dispose()
    expect(got.tokens).toHaveLength(N)
    expect(got.text).toBe(runMtmdCli(files, text))
  })
})

test('a projector whose resized position embedding is not F32 is refused before llama.cpp aborts on it', async () => {
  const bad = writeTinyLfm2VLPair(tempDir('llava-lfm2-f16-'), { positionType: 'f16' })
  expect(await codeOf(loadModel(bad))).toBe('ERR_MMPROJ_LOAD')
  const err = await loadModel(bad).catch((e: Error) => e)
  expect(String(err)).toContain("'v.position_embd.weight' is f16")
})

// A session answers, is saved, and goes on with a second turn; the file restored elsewhere must
// go on with exactly the same tokens.
describe.each([
  ['LFM2-VL (hybrid: KV cache + recurrent state)', () => lfm2, chatml, (prompt: string, answer: string) => `${prompt}${answer}<|im_end|>\n${chatml(0, 'more please')}`],
  [
    'Gemma 3 (two KV caches: full and sliding-window)',
    tinyGemma3Pair,
    (markers: number, text: string) => `<start_of_turn>user\n${'<image>'.repeat(markers)}${text}<end_of_turn>\n<start_of_turn>model\n`,
    (prompt: string, answer: string) => `${prompt}${answer}<end_of_turn>\n<start_of_turn>user\nmore please<end_of_turn>\n<start_of_turn>model\n`,
  ],
] as const)('%s: session files move between plain sessions and groups of any size', (_name, pairOf, turn, followUp) => {
  let model: Model
  let image: string
  let prompt: string
  let next: string
  let want: number[]
  const files: Record<string, string> = {}

  beforeAll(async () => {
    model = await loadModel({ ...pairOf(), threads: 1, ...LLAMA_CPP_KERNELS })
    image = bmpFile(dir, `${model.info.architecture}.bmp`, 64, 64, 9).file
    prompt = turn(1, 'describe the image')
    // The reference: one plain session that never stops.
    const s = model.createSession({ contextSize: 512 })
    const first = await s.complete({ prompt, images: [image], maxTokens: 8, ...greedy })
    files.plain = path.join(dir, `${model.info.architecture}-plain.bin`)
    await s.save(files.plain)
    next = followUp(prompt, first.text)
    want = (await s.complete({ prompt: next, images: [image], maxTokens: 12, ...greedy })).tokens
    await s.dispose()
    // The same first turn saved from the second seat of a group of 3.
    const g = model.createSessionGroup({ sessions: 3, contextSize: 512 })
    const [, seat] = [g.createSession(), g.createSession()]
    await seat.complete({ prompt, images: [image], maxTokens: 8, ...greedy })
    files.group3 = path.join(dir, `${model.info.architecture}-group3.bin`)
    await seat.save(files.group3)
    await g.dispose()
  })
  afterAll(async () => {
    await model.dispose()
  })

  async function continues(s: Session, file: string): Promise<void> {
    await s.load(file)
    const got = await s.complete({ prompt: next, images: [image], maxTokens: 12, ...greedy })
    expect(got.tokens).toEqual(want)
    expect(got.timings.reusedTokens).toBeGreaterThan(0)
    expect(got.timings.imageEncodes).toBe(0)
  }

  test('plain → plain, and group of 3 → plain', async () => {
    for (const f of [files.plain, files.group3]) {
      const s = model.createSession({ contextSize: 512 })
      await continues(s, f)
      await s.dispose()
    }
  })

  test.each([1, 2, 4])('plain → group of %i (last seat, while another seat holds its own conversation)', async (n) => {
    const g = model.createSessionGroup({ sessions: n, contextSize: 512 })
    try {
      const seats = Array.from({ length: n }, () => g.createSession())
      if (n > 1) await seats[0].complete({ prompt: turn(0, 'hello there'), maxTokens: 4, ...greedy })
      await continues(seats[n - 1], files.plain)
    } finally {
      await g.dispose()
    }
  })

  test('group of 3 → group of 2', async () => {
    const g = model.createSessionGroup({ sessions: 2, contextSize: 512 })
    try {
      await continues(g.createSession(), files.group3)
    } finally {
      await g.dispose()
    }
  })
})
