// The same choice of files as llama.cpp, and one cache shared with it: llama.cpp's own `-hf` path
// (build/bin/llama-hf-plan: common/download.cpp and common/hf-cache.cpp from the pinned tree) and
// llava-native are pointed at the same mock hub listings, and each reuses what the other downloaded.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { LlavaError, loadModel, resolveModel } from '../lib'
import { root, tempDir, tinyPair } from './helpers/fixtures'
import { MockHub } from './helpers/mock-hub'

const reference = path.join(root, 'build', 'bin', 'llama-hf-plan')
const haveReference = fs.existsSync(reference)
if (!haveReference) console.warn('hub parity suite SKIPPED: build/bin/llama-hf-plan not built (LLAVA_NATIVE_REFERENCE=1 npm run build:native)')
const suite = haveReference ? describe : describe.skip

// Repository layouts as they are published (ggml-org, unsloth, bartowski, lmstudio-community style).
const LISTINGS: Record<string, { files: string[]; specs: string[] }> = {
  'ggml-org/SmolVLM-500M-Instruct-GGUF': {
    files: ['.gitattributes', 'README.md', 'SmolVLM-500M-Instruct-Q8_0.gguf', 'SmolVLM-500M-Instruct-f16.gguf', 'mmproj-SmolVLM-500M-Instruct-Q8_0.gguf', 'mmproj-SmolVLM-500M-Instruct-f16.gguf'],
    specs: ['', ':Q8_0', ':f16', ':F16', ':q8_0', ':Q4_K_M', ':Q8.0', '/SmolVLM-500M-Instruct-f16.gguf'],
  },
  'unsloth/Qwen2.5-VL-7B-Instruct-GGUF': {
    files: [
      'BF16/Qwen2.5-VL-7B-Instruct-BF16-00001-of-00002.gguf',
      'BF16/Qwen2.5-VL-7B-Instruct-BF16-00002-of-00002.gguf',
      'Qwen2.5-VL-7B-Instruct-IQ2_XXS.gguf',
      'Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf',
      'Qwen2.5-VL-7B-Instruct-Q4_K_S.gguf',
      'Qwen2.5-VL-7B-Instruct-Q8_0.gguf',
      'Qwen2.5-VL-7B-Instruct-UD-Q4_K_XL.gguf',
      'mmproj-BF16.gguf',
      'mmproj-F16.gguf',
      'mmproj-F32.gguf',
    ],
    specs: ['', ':Q4_K_M', ':UD-Q4_K_XL', ':bf16', ':BF16', ':IQ2_XXS', ':q4_k_s', ':Q4_K', ':Q5_K_M', '/BF16/Qwen2.5-VL-7B-Instruct-BF16-00001-of-00002.gguf', '/Qwen2.5-VL-7B-Instruct-Q8_0.gguf'],
  },
  'bartowski/split-vlm-GGUF': {
    files: ['split-vlm-Q8_0-00001-of-00003.gguf', 'split-vlm-Q8_0-00002-of-00003.gguf', 'split-vlm-Q8_0-00003-of-00003.gguf', 'split-vlm-Q4_0.gguf', 'mmproj-split-vlm-f16.gguf'],
    specs: ['', ':Q8_0', ':q4_0', ':Q4_K_M'],
  },
  'someone/dirs-GGUF': {
    files: ['Q4_K_M/m-Q4_K_M.gguf', 'Q8_0/m-Q8_0.gguf', 'Q8_0/mmproj-m-Q8_0.gguf', 'mmproj/mmproj-m-f16.gguf', 'mmproj-m-f32.gguf'],
    specs: ['', ':Q4_K_M', ':Q8_0'],
  },
  'someone/sidecars-GGUF': {
    files: ['m-imatrix-Q8_0.gguf', 'mtp-m-Q8_0.gguf', 'm-Q8_0.gguf', 'm-Q4_K_M.gguf', 'mmproj-m-bf16.gguf', 'eagle3-m-Q4_K_M.gguf'],
    specs: ['', ':Q8_0', ':Q4_K_M'],
  },
  'someone/order-GGUF': {
    files: ['z-Q8_0.gguf', 'a-Q4_K_M.gguf', 'x-Q4_K_M.gguf'],
    specs: ['', ':Q4_K_M', ':Q8_0'],
  },
  'someone/odd-quants-GGUF': {
    files: ['m-IQ3_M.gguf', 'm-Q5_K_S.gguf', 'mmproj-model-Q6_K.gguf', 'mmproj-model-f16.gguf'],
    specs: ['', ':iq3_m', ':Q5_K_S'],
  },
  'someone/no-gguf': { files: ['README.md', 'model.safetensors'], specs: [''] },
  'someone/preset-GGUF': { files: ['preset.ini', 'm-Q4_K_M.gguf'], specs: ['', ':Q4_K_M'] },
}

interface Choice {
  primary: string | null
  modelFiles: string[]
  mmproj: string | null
}

function runReference(args: string[], env: Record<string, string>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const c = spawn(reference, args, { env: { ...process.env, ...env } })
    let out = ''
    let err = ''
    c.stdout.on('data', (d: Buffer) => (out += d))
    c.stderr.on('data', (d: Buffer) => (err += d))
    const timer = setTimeout(() => c.kill('SIGKILL'), 30_000)
    c.on('exit', () => {
      clearTimeout(timer)
      try {
        resolve(JSON.parse(out) as Record<string, unknown>)
      } catch {
        reject(new Error(`llama-hf-plan ${args.join(' ')} printed no JSON: ${out}\n${err}`))
      }
    })
  })
}

async function llamaChoice(hub: MockHub, spec: string): Promise<Choice> {
  const m = /^([^/:]+\/[^/:]+)(?::(.+)|\/(.+))?$/.exec(spec)!
  const args = m[3] ? [m[1], '--file', m[3]] : [m[2] ? `${m[1]}:${m[2]}` : m[1]]
  const r = await runReference(args, { MODEL_ENDPOINT: hub.url, LLAMA_CACHE: tempDir() })
  return { primary: r.primary as string | null, modelFiles: r.modelFiles as string[], mmproj: r.mmproj as string | null }
}

async function ourChoice(hub: MockHub, spec: string): Promise<Choice> {
  const cacheDir = tempDir()
  try {
    const r = await resolveModel(`hf:${spec}`, { cacheDir, endpoint: hub.url, dryRun: true })
    const snap = path.join(cacheDir, `models--${r.repo!.replace('/', '--')}`, 'snapshots', r.commit!)
    const rel = (p: string): string => path.relative(snap, p).split(path.sep).join('/')
    return { primary: rel(r.model), modelFiles: r.files.filter((f) => f.path !== r.mmproj).map((f) => f.name), mmproj: r.mmproj ? rel(r.mmproj) : null }
  } catch (e) {
    if (e instanceof LlavaError && e.code === 'ERR_NOT_FOUND_REMOTE') return { primary: null, modelFiles: [], mmproj: null }
    throw e
  }
}

suite('the files llama.cpp -hf picks, for the same listing', () => {
  const hub = new MockHub()
  for (const [id, l] of Object.entries(LISTINGS)) hub.add({ id, files: l.files.map((p) => ({ path: p, data: Buffer.from(`${id}/${p}`) })) })
  beforeAll(() => hub.start())
  afterAll(() => hub.close())

  const cases = Object.entries(LISTINGS).flatMap(([id, l]) => l.specs.map((s) => `${id}${s}`))
  test.each(cases)('%s', async (spec) => {
    const [theirs, ours] = await Promise.all([llamaChoice(hub, spec), ourChoice(hub, spec)])
    expect(ours).toEqual(theirs)
  })

  test('the cases cover every kind of answer', async () => {
    // not a tautology: the listings were chosen to reach split sets, nested projectors, no projector and no model
    const all: Choice[] = []
    for (const c of cases) all.push(await llamaChoice(hub, c))
    expect(all.some((c) => c.modelFiles.length === 3)).toBe(true)
    expect(all.some((c) => c.mmproj?.includes('/'))).toBe(true)
    expect(all.some((c) => c.primary && !c.mmproj)).toBe(true)
    expect(all.some((c) => !c.primary)).toBe(true)
  })
})

suite('one cache with llama.cpp', () => {
  const pair = tinyPair()
  const hub = new MockHub().add({
    id: 'ggml-org/tiny-vlm-GGUF',
    files: [
      { path: 'tiny-vlm-Q8_0.gguf', data: fs.readFileSync(pair.model) },
      { path: 'mmproj-tiny-vlm-f16.gguf', data: fs.readFileSync(pair.mmproj) },
      { path: 'README.md', data: Buffer.from('# tiny\n') },
    ],
  })
  beforeAll(() => hub.start())
  afterAll(() => hub.close())

  test('what llama.cpp downloaded is used as it is, without a single request', async () => {
    const cache = tempDir()
    const theirs = await runReference(['ggml-org/tiny-vlm-GGUF:Q8_0', '--download'], { MODEL_ENDPOINT: hub.url, LLAMA_CACHE: cache })
    expect(theirs.modelPath).toBeTruthy()
    hub.resetLog()
    const ours = await resolveModel('hf:ggml-org/tiny-vlm-GGUF:Q8_0', { cacheDir: cache, endpoint: hub.url })
    expect(hub.requests).toEqual([])
    expect(ours).toMatchObject({ source: 'cache', model: theirs.modelPath, mmproj: theirs.mmprojPath })
    const model = await loadModel({ model: ours.model, mmproj: ours.mmproj, threads: 1 })
    expect(model.info.vision).toBeTruthy()
    await model.dispose()
  })

  test('what llava-native downloaded, llama.cpp finds offline at the same paths', async () => {
    const cache = tempDir()
    const ours = await resolveModel('hf:ggml-org/tiny-vlm-GGUF:Q8_0', { cacheDir: cache, endpoint: hub.url })
    hub.resetLog()
    const theirs = await runReference(['ggml-org/tiny-vlm-GGUF:Q8_0', '--offline', '--download'], { MODEL_ENDPOINT: hub.url, LLAMA_CACHE: cache })
    expect(hub.requests).toEqual([])
    expect(theirs).toMatchObject({ modelPath: ours.model, mmprojPath: ours.mmproj })
    // and online, llama.cpp sees the files as present and transfers nothing
    const online = await runReference(['ggml-org/tiny-vlm-GGUF:Q8_0', '--download'], { MODEL_ENDPOINT: hub.url, LLAMA_CACHE: cache })
    expect(online).toMatchObject({ modelPath: ours.model })
    expect(hub.requests.filter((q) => q.host === 'cdn' || q.url.includes('/resolve/'))).toEqual([])
  })
})
