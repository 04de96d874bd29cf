// Vision families whose images are not one plain block of tokens, on tiny pairs written as
// llama.cpp's converter writes them: SmolVLM (idefics3: an image cut into tiles plus a global
// view, several media chunks between text markers) and Pixtral (2-D rotary ViT, an [IMG_BREAK]
// embedding after every row). Greedy parity with llama-mtmd-cli built from the same tree, counts
// from headers, and reuse of a cached prefix that ends after a multi-chunk image.
import { type Model, loadModel } from '../lib'
import { ensurePair } from '../lib/fixtures'
import { bmpFile, greedy, tempDir } from './helpers/fixtures'
import { haveReference, runMtmdCli as reference, LLAMA_CPP_KERNELS } from './helpers/reference'

const N = 16
const dir = tempDir('llava-families-')
const vicuna = (markers: number, text: string): string => `USER: ${'<image>'.repeat(markers)}${text}\nASSISTANT:`

describe.each([
  // SmolVLM: an image scaled to a 64 px longest edge, cut into 2x2 tiles of 32 px, 16 tokens each,
  // plus the global view
  ['SmolVLM (idefics3: tiles + global image)', 'tiny-smolvlm', 'idefics3', { wide: 5 * 16, small: 5 * 16 }],
  // Pixtral: one token per 4x4 px, a break after each row but the last
  ['Pixtral (row breaks)', 'tiny-pixtral', 'pixtral', { wide: 20 * 14 + 13, small: 6 * 10 + 9 }],
] as const)('%s', (_name, kind, projector, tokens) => {
  const pair = ensurePair(kind)
  let model: Model
  beforeAll(async () => {
    model = await loadModel({ ...pair, ...LLAMA_CPP_KERNELS })
  })
  afterAll(() => model.dispose())

  const runMtmdCli = (images: string[], prompt: string): string => reference(pair, images.map((image) => ({ image })), prompt, N)

  const wide = bmpFile(dir, `${kind}-wide.bmp`, 80, 56, 1).file
  const small = bmpFile(dir, `${kind}-small.bmp`, 24, 40, 2).file

  test('the projector, and image tokens counted from headers as evaluation takes them', async () => {
    expect(model.info.vision?.projector).toBe(projector)
    for (const [file, n] of [[wide, tokens.wide], [small, tokens.small]] as const) {
      const c = await model.countTokens(vicuna(1, 'describe'), { images: [file] })
      expect(c.imageTokens).toBe(n)
      const e = await model.encodeImage(file)
      expect(e.nTokens).toBe(n)
      await e.dispose()
    }
  })

  ;(haveReference ? test : test.skip)('greedy parity with llama-mtmd-cli: a wide image, a small one, two images', async () => {
    const texts = new Set<string>()
    for (const images of [[wide], [small], [small, wide]]) {
      const s = model.createSession()
      const got = await s.complete({ prompt: vicuna(images.length, 'describe'), images, maxTokens: N, ...greedy })
      await s.dispose()
      expect(got.tokens).toHaveLength(N)
      expect(got.text).toBe(runMtmdCli(images, 'describe'))
      texts.add(got.text)
    }
    expect(texts.size).toBeGreaterThan(1) // the answers depend on the pictures
  })

  test('a follow-up reuses the cached image (all its chunks) and answers as a fresh session does', async () => {
    const s = model.createSession()
    try {
      await s.complete({ prompt: vicuna(1, 'hello'), images: [wide], maxTokens: 3, ...greedy })
      const second = await s.complete({ prompt: vicuna(1, 'describe'), images: [wide], maxTokens: N, ...greedy })
      expect(second.timings.reusedTokens).toBeGreaterThanOrEqual(tokens.wide)
      expect(second.timings.imageEncodes).toBe(0)
      const fresh = model.createSession()
      const want = await fresh.complete({ prompt: vicuna(1, 'describe'), images: [wide], maxTokens: N, ...greedy })
      await fresh.dispose()
      expect(second.tokens).toEqual(want.tokens)
    } finally {
      await s.dispose()
    }
  })
})
