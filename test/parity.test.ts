// Greedy generation through the binding gives exactly what llama.cpp's own programs give, built
// from the same tree (LLAVA_NATIVE_REFERENCE=1 npm run build:native builds them into build/bin).
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { type Model, loadModel, systemInfo } from '../lib'
import { ensurePair } from '../lib/fixtures'
import { bmpFile, greedy, root, tempDir, tinyGemma3Pair, tinyPair } from './helpers/fixtures'
import { LLAMA_CPP_KERNELS } from './helpers/reference'

const bin = path.join(root, 'build', 'bin')
const mtmdCli = path.join(bin, 'llama-mtmd-cli')
const simple = path.join(bin, 'llama-simple')
const haveReference = fs.existsSync(mtmdCli) && fs.existsSync(simple)
const N = 16
// The parity suite runs llava-native with its defaults (thread count, CPU wait policy) and gives
// llama-mtmd-cli the same thread count: a result depends on how work is split between threads.
const THREADS = systemInfo().cpu.defaultThreads

if (!haveReference && process.env.CI) {
  throw new Error('CI must build the reference programs: LLAVA_NATIVE_REFERENCE=1 npm install')
}
const describeParity = haveReference ? describe : describe.skip
if (!haveReference) {
  console.warn(`parity suite SKIPPED: ${mtmdCli} not built (run LLAVA_NATIVE_REFERENCE=1 npm run build:native)`)
}

// llama-mtmd-cli prints a newline, the answer, then blank lines. (Its logger thread is joined at
// exit by scripts/reference/flush_log_at_exit.cpp, linked into the reference build, so stdout is
// complete; without it the answer is now and then lost on a busy machine.)
function runMtmdCli(pair: { model: string; mmproj: string }, images: string[], prompt: string): string {
  const args = ['-m', pair.model, '--mmproj', pair.mmproj, '-p', prompt, '-n', String(N), '--temp', '0', '-t', String(THREADS), '--no-warmup']
  for (const img of images) args.push('--image', img)
  const out = execFileSync(mtmdCli, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  return out.replace(/^\n/, '').replace(/\n+$/, '')
}

describeParity('parity with llama.cpp (greedy, token for token)', () => {
  const pair = tinyPair()
  let model: Model
  let dir: string

  beforeAll(async () => {
    model = await loadModel({ ...pair, ...LLAMA_CPP_KERNELS })
    expect(model.defaults.threads).toBe(THREADS)
    dir = tempDir('llava-parity-')
  })
  afterAll(async () => {
    await model.dispose()
  })

  async function ours(prompt: string, images: Parameters<Model['encodeImage']>[0][]): Promise<{ text: string; tokens: number[] }> {
    const s = model.createSession()
    try {
      return await s.complete({ prompt, images, maxTokens: N, ...greedy })
    } finally {
      await s.dispose()
    }
  }

  // What llama-mtmd-cli builds from `-p describe` with the model's vicuna template.
  const chatPrompt = (markers: number, text: string): string => `USER: ${'<image>'.repeat(markers)}${text}\nASSISTANT:`

  test('one image', async () => {
    const { file } = bmpFile(dir, 'one.bmp', 32, 32, 11)
    const got = await ours(chatPrompt(1, 'describe the image'), [file])
    const expected = runMtmdCli(pair, [file], 'describe the image')
    expect(got.tokens).toHaveLength(N)
    expect(got.text).toBe(expected)
  })

  test('two images', async () => {
    const a = bmpFile(dir, 'a.bmp', 32, 32, 21).file
    const b = bmpFile(dir, 'b.bmp', 48, 40, 22).file
    const got = await ours(chatPrompt(2, 'compare them'), [a, b])
    const expected = runMtmdCli(pair, [a, b], 'compare them')
    expect(got.text).toBe(expected)
  })

  test('raw RGB pixels through the binding vs the same pixels as a BMP file through the CLI', async () => {
    const { file, img } = bmpFile(dir, 'raw.bmp', 36, 28, 31)
    const got = await ours(chatPrompt(1, 'what is this'), [{ data: img.rgb, width: img.width, height: img.height, format: 'rgb' }])
    const expected = runMtmdCli(pair, [file], 'what is this')
    expect(got.text).toBe(expected)
  })

  test('text only (llama.cpp examples/simple, same prompt)', async () => {
    const prompt = 'USER: hello, what do you see in the sky?\nASSISTANT:'
    const out = execFileSync(simple, ['-m', pair.model, '-n', String(N), prompt], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    // simple prints the prompt's pieces (BOS included), then the answer, then a newline.
    const got = await ours(prompt, [])
    expect(got.tokens).toHaveLength(N)
    const promptEcho = model.detokenize(model.tokenize(prompt, { addSpecial: true }), { renderSpecial: true })
    expect(out).toBe(`${promptEcho}${got.text}\n`)
  })

  // Q4_0 matrices take ggml's repacked CPU kernels, and AMX tile kernels where the CPU has them: an
  // AMX tile configuration lost to GCC 12's optimiser once made this a SIGILL on Sapphire Rapids
  // (deps/patches/0003). The prompt and the image are evaluated as batches: the tile path. A GPU
  // build's quantized matrix products round differently from the CPU reference's, so this runs
  // on CPU builds (the main suite), not on the GPU variants.
  // (every build has the RPC backend too, which has no local device)
  const cpuBuild = systemInfo().backends.every((b) => b === 'CPU' || b === 'RPC')
  ;(cpuBuild ? test : test.skip)('quantized text model (Q4_0), one image', async () => {
    const q = ensurePair('tiny', { textType: 'q4_0' })
    const qm = await loadModel({ ...q, ...LLAMA_CPP_KERNELS })
    try {
      const { file } = bmpFile(dir, 'q4.bmp', 32, 32, 23)
      const s = qm.createSession()
      const prompt = chatPrompt(1, 'describe the image in a few words, please')
      const r = await s.complete({ prompt, images: [file], maxTokens: N, ...greedy })
      expect(r.text).toBe(runMtmdCli(q, [file], 'describe the image in a few words, please'))
      await s.dispose()
    } finally {
      await qm.dispose()
    }
  })

  test('a second projector family (Gemma 3), one image', async () => {
    const g = tinyGemma3Pair()
    const gm = await loadModel({ ...g, ...LLAMA_CPP_KERNELS })
    try {
      const { file } = bmpFile(dir, 'gemma.bmp', 32, 32, 41)
      expect(gm.info.chatTemplate).toBeTruthy()
      const s = gm.createSession()
      // Gemma 3's template: <start_of_turn>user\n…<end_of_turn>\n<start_of_turn>model\n
      const r = await s.complete({ prompt: '<start_of_turn>user\n<image>describe<end_of_turn>\n<start_of_turn>model\n', images: [file], maxTokens: N, ...greedy })
      const expected = runMtmdCli(g, [file], 'describe')
      expect(r.text).toBe(expected)
      await s.dispose()
    } finally {
      await gm.dispose()
    }
  })
})
