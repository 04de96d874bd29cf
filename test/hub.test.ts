// Models by name (`hf:owner/repo[:QUANT]`), against a mock hub on 127.0.0.1: llama.cpp's choice
// of files, the hub cache shared with llama.cpp, and downloads that resume, verify, lock and fail
// with typed errors when the network, the server or the disk misbehaves.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { listCachedModels, LlavaError, loadModel, removeCachedModel, resolveModel, type DownloadProgress } from '../lib'
import { codeOf } from './helpers/errors'
import { bmpFile, greedy, root, tempDir, tinyPair } from './helpers/fixtures'
import { splitGguf } from './helpers/gguf-split'
import { MockHub, type MockFile } from './helpers/mock-hub'

const pair = tinyPair()
const modelBytes = fs.readFileSync(pair.model)
const mmprojBytes = fs.readFileSync(pair.mmproj)
// Each variant gets a trailer of its own, so that every file is a different blob (GGUF readers ignore trailing bytes).
const variant = (bytes: Buffer, name: string): Buffer => Buffer.concat([bytes, Buffer.from(name.padEnd(32, '.'))])
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
// (jest's toEqual walks buffers byte by byte: seconds for a model; checksums compare at once)
const sha256of = sha256

const VLM = 'ggml-org/tiny-vlm-GGUF'
const vlmFiles: MockFile[] = [
  { path: '.gitattributes', data: Buffer.from('*.gguf filter=lfs diff=lfs merge=lfs -text\n') },
  { path: 'README.md', data: Buffer.from('# tiny-vlm\n') },
  { path: 'mmproj-tiny-vlm-f16.gguf', data: variant(mmprojBytes, 'mmproj-f16') },
  { path: 'mmproj-tiny-vlm-Q8_0.gguf', data: variant(mmprojBytes, 'mmproj-q8') },
  { path: 'tiny-vlm-F16.gguf', data: variant(modelBytes, 'F16') },
  { path: 'tiny-vlm-Q4_K_M.gguf', data: variant(modelBytes, 'Q4_K_M') },
  { path: 'tiny-vlm-Q8_0.gguf', data: variant(modelBytes, 'Q8_0') },
]
const fileOf = (repo: MockFile[], p: string): Buffer => repo.find((f) => f.path === p)!.data

const splitDir = tempDir('llava-split-')
const splitParts = splitGguf(pair.model, splitDir, 'tiny-Q8_0', 2)
const TOKEN = 'hf_' + 'x'.repeat(34)

const hub = new MockHub()
  .add({ id: VLM, files: vlmFiles })
  .add({
    id: 'someone/split-GGUF',
    files: [
      ...splitParts.map((p) => ({ path: path.basename(p), data: fs.readFileSync(p) })),
      { path: 'mmproj-tiny-f16.gguf', data: mmprojBytes },
    ],
  })
  .add({ id: 'someone/text-only-GGUF', files: [{ path: 'text-Q4_K_M.gguf', data: modelBytes }] })
  .add({ id: 'gated/tiny-GGUF', gatedToken: TOKEN, files: [{ path: 'tiny-Q8_0.gguf', data: modelBytes }, { path: 'mmproj-f16.gguf', data: mmprojBytes }] })

beforeAll(() => hub.start())
afterAll(() => hub.close())
beforeEach(() => {
  hub.resetFaults()
  hub.resetLog()
})

const fast = { retryDelayMs: 5, retries: 2 } as const
function opts(cacheDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cacheDir, endpoint: hub.url, ...fast, ...extra }
}
const cdnGets = (): Array<{ url: string; range?: string; ifRange?: string; authorization?: string }> => hub.requests.filter((r) => r.host === 'cdn' && r.method === 'GET')

describe('hf: names resolve as llama.cpp resolves them', () => {
  test('the default quant (Q4_K_M) and its nearest projector, in the hub cache layout; a second call asks nothing', async () => {
    const cache = tempDir()
    const r = await resolveModel(`hf:${VLM}`, opts(cache))
    const commit = hub.repos.get(VLM)!.commit!
    const snap = path.join(cache, 'models--ggml-org--tiny-vlm-GGUF', 'snapshots', commit)
    expect(r).toMatchObject({ source: 'hub', repo: VLM, commit, model: path.join(snap, 'tiny-vlm-Q4_K_M.gguf'), mmproj: path.join(snap, 'mmproj-tiny-vlm-Q8_0.gguf') })
    expect(sha256(fs.readFileSync(r.model))).toBe(sha256of(fileOf(vlmFiles, 'tiny-vlm-Q4_K_M.gguf')))
    expect(sha256(fs.readFileSync(r.mmproj!))).toBe(sha256of(fileOf(vlmFiles, 'mmproj-tiny-vlm-Q8_0.gguf')))
    // blobs named by the LFS sha256, relative links from the snapshot, refs/main = the commit
    expect(fs.readlinkSync(r.model)).toBe(`../../blobs/${sha256(fileOf(vlmFiles, 'tiny-vlm-Q4_K_M.gguf'))}`)
    expect(fs.readFileSync(path.join(cache, 'models--ggml-org--tiny-vlm-GGUF', 'refs', 'main'), 'utf8')).toBe(commit)
    expect(r.files.map((f) => [f.name, f.downloaded])).toEqual([['tiny-vlm-Q4_K_M.gguf', true], ['mmproj-tiny-vlm-Q8_0.gguf', true]])
    // the token-less API calls llama.cpp makes, then one transfer per file through the CDN
    expect(hub.requests.filter((q) => q.host === 'hub').map((q) => q.url.split('?')[0])).toEqual([
      `/api/models/${VLM}/refs`,
      `/api/models/${VLM}/tree/${commit}`,
      `/${VLM}/resolve/${commit}/tiny-vlm-Q4_K_M.gguf`,
      `/${VLM}/resolve/${commit}/mmproj-tiny-vlm-Q8_0.gguf`,
    ])
    expect(cdnGets()).toHaveLength(2)

    hub.resetLog()
    const again = await resolveModel(`hf:${VLM}`, opts(cache))
    expect(again).toMatchObject({ source: 'cache', model: r.model, mmproj: r.mmproj })
    expect(hub.requests).toEqual([])
    // revalidate asks for the commit and listing, but downloads nothing already there
    const checked = await resolveModel(`hf:${VLM}`, opts(cache, { revalidate: true }))
    expect(checked).toMatchObject({ source: 'hub', model: r.model })
    expect(checked.files.every((f) => !f.downloaded)).toBe(true)
    expect(cdnGets()).toEqual([])
  })

  test('a tag matches case-insensitively and picks the projector of the same precision; a file path names one file', async () => {
    const cache = tempDir()
    const f16 = await resolveModel(`hf:${VLM}:f16`, opts(cache, { dryRun: true }))
    expect(f16.files.map((f) => f.name)).toEqual(['tiny-vlm-F16.gguf', 'mmproj-tiny-vlm-f16.gguf'])
    const q8 = await resolveModel(`hf:${VLM}:q8_0`, opts(cache, { dryRun: true }))
    expect(q8.files.map((f) => f.name)).toEqual(['tiny-vlm-Q8_0.gguf', 'mmproj-tiny-vlm-Q8_0.gguf'])
    const file = await resolveModel(`hf:${VLM}/tiny-vlm-F16.gguf`, opts(cache, { dryRun: true }))
    expect(file.files.map((f) => f.name)).toEqual(['tiny-vlm-F16.gguf', 'mmproj-tiny-vlm-f16.gguf'])
    const noProjector = await resolveModel(`hf:${VLM}:Q8_0`, opts(cache, { dryRun: true, mmproj: false }))
    expect(noProjector.mmproj).toBeUndefined()
    expect(fs.existsSync(path.join(cache, 'models--ggml-org--tiny-vlm-GGUF', 'blobs'))).toBe(false) // dry runs fetch nothing
  })

  test('a missing tag, file or repository is ERR_NOT_FOUND_REMOTE naming what exists', async () => {
    const cache = tempDir()
    let err: LlavaError | undefined
    await resolveModel(`hf:${VLM}:Q5_K_M`, opts(cache)).catch((e: LlavaError) => (err = e))
    expect(err?.code).toBe('ERR_NOT_FOUND_REMOTE')
    expect(err?.message).toMatch(/Available tags: F16, Q4_K_M, Q8_0/)
    expect(err?.details?.availableTags).toEqual(['F16', 'Q4_K_M', 'Q8_0'])
    expect(await codeOf(resolveModel(`hf:${VLM}/nope.gguf`, opts(cache)))).toBe('ERR_NOT_FOUND_REMOTE')
    expect(await codeOf(resolveModel('hf:nobody/missing-GGUF', opts(cache)))).toBe('ERR_NOT_FOUND_REMOTE')
    expect(await codeOf(resolveModel('hf:not a repo', opts(cache)))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(resolveModel(`hf:${VLM}:Q4(K`, opts(cache)))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(resolveModel(`hf:${VLM}/../../etc/passwd.gguf`, opts(cache)))).toBe('ERR_INVALID_ARGUMENT')
  })

  test('a gated repository is ERR_AUTH without a token; with one, the token reaches the hub and never the CDN', async () => {
    const cache = tempDir()
    let err: LlavaError | undefined
    await resolveModel('hf:gated/tiny-GGUF', opts(cache)).catch((e: LlavaError) => (err = e))
    expect(err?.code).toBe('ERR_AUTH')
    expect(err?.message).toMatch(/HF_TOKEN/)
    expect(await codeOf(resolveModel('hf:gated/tiny-GGUF', opts(cache, { token: 'hf_wrong' })))).toBe('ERR_AUTH')
    hub.resetLog()
    const r = await resolveModel('hf:gated/tiny-GGUF', opts(cache, { token: TOKEN }))
    expect(sha256(fs.readFileSync(r.model))).toBe(sha256of(modelBytes))
    expect(hub.requests.filter((q) => q.host === 'hub').every((q) => q.authorization === `Bearer ${TOKEN}`)).toBe(true)
    expect(cdnGets().length).toBe(2)
    expect(cdnGets().every((q) => !('authorization' in q) || (q as { authorization?: string }).authorization === undefined)).toBe(true)
  })

  test('a split model is fetched as a set and loads from its first part with the same answers as the whole file', async () => {
    const cache = tempDir()
    const r = await resolveModel('hf:someone/split-GGUF:Q8_0', opts(cache))
    expect(r.files.map((f) => f.name)).toEqual(['tiny-Q8_0-00001-of-00002.gguf', 'tiny-Q8_0-00002-of-00002.gguf', 'mmproj-tiny-f16.gguf'])
    expect(path.basename(r.model)).toBe('tiny-Q8_0-00001-of-00002.gguf')
    const prompt = 'USER: name a colour\nASSISTANT:'
    const answer = async (model: string): Promise<string> => {
      const m = await loadModel({ model, threads: 1 })
      try {
        const s = await m.createSession({ contextSize: 256 })
        return (await s.complete({ prompt, maxTokens: 12, ...greedy })).text
      } finally {
        await m.dispose()
      }
    }
    expect(await answer(r.model)).toBe(await answer(pair.model))
    // a part missing or lying about its index is refused before llama.cpp reads it
    const broken = tempDir()
    const parts = splitGguf(pair.model, broken, 'tiny-Q8_0', 3)
    fs.rmSync(parts[2])
    expect(await codeOf(loadModel({ model: parts[0] }))).toBe('ERR_MODEL_LOAD')
    expect(await codeOf(loadModel({ model: parts[1] }))).toBe('ERR_MODEL_LOAD')
    // llama.cpp reads a later part's split.no with a getter that aborts the process on another type
    const mistyped = splitGguf(pair.model, tempDir(), 'tiny-Q8_0', 2, true)
    let err: LlavaError | undefined
    await loadModel({ model: mistyped[0] }).catch((e: LlavaError) => (err = e))
    expect(err?.code).toBe('ERR_MODEL_LOAD')
    expect(err?.message).toMatch(/split\.no' has type i32, expected u16/)
  })

  test('a repository without a projector gives none', async () => {
    const r = await resolveModel('hf:someone/text-only-GGUF', opts(tempDir()))
    expect(r.mmproj).toBeUndefined()
    expect(path.basename(r.model)).toBe('text-Q4_K_M.gguf')
  })

  test('loadModel takes hf: names: download progress, then loading progress, then a working vision model', async () => {
    const cache = tempDir()
    const events: string[] = []
    const progress: DownloadProgress[] = []
    const model = await loadModel({
      model: `hf:${VLM}:Q8_0`,
      threads: 1,
      download: {
        cacheDir: cache,
        endpoint: hub.url,
        onProgress: (p) => {
          progress.push(p)
          if (events[events.length - 1] !== 'download') events.push('download')
        },
      },
      onProgress: () => {
        if (events[events.length - 1] !== 'load') events.push('load')
      },
    })
    try {
      expect(events).toEqual(['download', 'load'])
      const last = progress[progress.length - 1]
      const total = fileOf(vlmFiles, 'tiny-vlm-Q8_0.gguf').length + fileOf(vlmFiles, 'mmproj-tiny-vlm-Q8_0.gguf').length
      expect(last).toMatchObject({ phase: 'done', downloaded: total, total })
      expect(progress.some((p) => p.phase === 'verify')).toBe(true)
      expect(model.info.vision).toBeTruthy()
    } finally {
      await model.dispose()
    }
    // mmproj: false loads the text model alone
    const text = await loadModel({ model: `hf:${VLM}:Q8_0`, mmproj: false, threads: 1, download: { cacheDir: cache, endpoint: hub.url } })
    expect(text.info.vision).toBeFalsy()
    await text.dispose()
  })
})

describe('downloads never corrupt', () => {
  const Q4 = 'tiny-vlm-Q4_K_M.gguf'

  test('a transfer cut at several offsets resumes with Range requests and ends byte-exact', async () => {
    const cache = tempDir()
    const cuts = [100_000, 300_000, 500_000]
    hub.faults.dropAt.set(Q4, [...cuts])
    const r = await resolveModel(`hf:${VLM}`, opts(cache, { mmproj: false, retries: 4 }))
    expect(sha256(fs.readFileSync(r.model))).toBe(sha256of(fileOf(vlmFiles, Q4)))
    // each retry asks for the rest from where the file on disk ends (at most the cut: a client may
    // lose bytes that arrived just before the connection broke)
    const ranges = cdnGets().map((q) => q.range)
    expect(ranges).toHaveLength(4)
    expect(ranges[0]).toBeUndefined()
    const starts = ranges.slice(1).map((x) => Number(/^bytes=(\d+)-$/.exec(x ?? '')?.[1]))
    starts.forEach((start, i) => {
      expect(start).toBeLessThanOrEqual(cuts[i])
      expect(start).toBeGreaterThan(i === 0 ? 0 : cuts[i - 1])
    })
  })

  test('bytes that do not match the checksum are refused and nothing is kept', async () => {
    const cache = tempDir()
    hub.faults.corrupt.add(Q4)
    let err: LlavaError | undefined
    await resolveModel(`hf:${VLM}`, opts(cache, { mmproj: false })).catch((e: LlavaError) => (err = e))
    expect(err?.code).toBe('ERR_DOWNLOAD')
    expect(err?.message).toMatch(/checksum/)
    expect(cdnGets()).toHaveLength(2) // one fresh start after the first mismatch
    const repo = path.join(cache, 'models--ggml-org--tiny-vlm-GGUF')
    expect(fs.readdirSync(path.join(repo, 'blobs'))).toEqual([])
    expect(fs.existsSync(path.join(repo, 'snapshots'))).toBe(false)
  })

  test('a server that announces or sends more than the listed size is refused at once', async () => {
    const cache = tempDir()
    hub.faults.extraBytes.set(Q4, 1000)
    let err: LlavaError | undefined
    await resolveModel(`hf:${VLM}`, opts(cache, { mmproj: false })).catch((e: LlavaError) => (err = e))
    expect(err?.code).toBe('ERR_DOWNLOAD')
    expect(err?.message).toMatch(/announces .* bytes but the hub lists/)
    expect(cdnGets()).toHaveLength(1)
    expect(fs.readdirSync(path.join(cache, 'models--ggml-org--tiny-vlm-GGUF', 'blobs'))).toEqual([])
  })

  test('HTTP 500 and timeouts are retried, then ERR_DOWNLOAD; a redirect to another scheme is refused', async () => {
    const cache = tempDir()
    hub.faults.status.set('/api/models/', 500)
    let err: LlavaError | undefined
    await resolveModel(`hf:${VLM}`, opts(cache, { retries: 2 })).catch((e: LlavaError) => (err = e))
    expect(err?.code).toBe('ERR_DOWNLOAD')
    expect(err?.message).toMatch(/HTTP 500/)
    expect(hub.requests.filter((q) => q.url.endsWith('/refs'))).toHaveLength(3)

    hub.resetFaults()
    hub.resetLog()
    hub.faults.stallAt.set(Q4, 50_000)
    err = undefined as LlavaError | undefined
    const started = Date.now()
    await resolveModel(`hf:${VLM}`, opts(cache, { mmproj: false, timeoutMs: 300, retries: 1 })).catch((e: LlavaError) => (err = e))
    expect(err?.code).toBe('ERR_DOWNLOAD')
    expect(err?.message).toMatch(/timed out after 300 ms/)
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(cdnGets().map((q) => q.range)).toEqual([undefined, 'bytes=50000-']) // the retry resumed

    hub.resetFaults()
    hub.faults.redirect.set(Q4, 'file:///etc/passwd')
    expect(await codeOf(resolveModel(`hf:${VLM}`, opts(cache, { mmproj: false })))).toBe('ERR_DOWNLOAD')
    hub.faults.redirect.set(Q4, 'ftp://127.0.0.1/x.gguf')
    expect(await codeOf(resolveModel(`hf:${VLM}`, opts(cache, { mmproj: false })))).toBe('ERR_DOWNLOAD')
  })

  test('an abort stops the transfer with the signal reason; the next call resumes where it stopped', async () => {
    const cache = tempDir()
    hub.faults.bytesPer10ms = 16 * 1024
    const ac = new AbortController()
    const reason = new Error('user cancelled')
    const p = resolveModel(`hf:${VLM}`, opts(cache, { mmproj: false, signal: ac.signal, onProgress: (e: DownloadProgress) => e.fileDownloaded > 200_000 && ac.abort(reason) }))
    await expect(p).rejects.toBe(reason)
    const blobs = path.join(cache, 'models--ggml-org--tiny-vlm-GGUF', 'blobs')
    const partial = fs.readdirSync(blobs).find((f) => f.endsWith('.incomplete'))!
    const kept = fs.statSync(path.join(blobs, partial)).size
    expect(kept).toBeGreaterThan(200_000)
    hub.resetFaults()
    hub.resetLog()
    const r = await resolveModel(`hf:${VLM}`, opts(cache, { mmproj: false }))
    expect(sha256(fs.readFileSync(r.model))).toBe(sha256of(fileOf(vlmFiles, Q4)))
    expect(cdnGets().map((q) => q.range)).toEqual([`bytes=${kept}-`])
    // a callback that throws stops the download with its error
    const boom = new Error('progress callback failed')
    await expect(resolveModel(`hf:${VLM}:F16`, opts(cache, { mmproj: false, onProgress: () => { throw boom } }))).rejects.toBe(boom)
  })

  test('a full disk (here: the file size limit) is ERR_DOWNLOAD naming the file', async () => {
    const cache = tempDir()
    const child = spawn('bash', ['-c', `ulimit -f 200; exec "${process.execPath}" test/helpers/hub-child.js "hf:${VLM}:Q8_0" "${cache}" "${hub.url}"`], { cwd: root })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d))
    await new Promise((resolve) => child.on('exit', resolve))
    const r = JSON.parse(out) as { ok: boolean; code: string; message: string; details: { path: string } }
    expect(r).toMatchObject({ ok: false, code: 'ERR_DOWNLOAD' })
    expect(r.message).toMatch(/could not write .*\.incomplete/)
    const repo = path.join(cache, 'models--ggml-org--tiny-vlm-GGUF')
    expect(r.details.path).toContain(path.join(repo, 'blobs'))
    // the projector (smaller than the limit) may be complete; the model is not there, and no ref points at the snapshot
    expect(fs.existsSync(path.join(repo, 'snapshots', hub.repos.get(VLM)!.commit!, 'tiny-vlm-Q8_0.gguf'))).toBe(false)
    expect(fs.existsSync(path.join(repo, 'refs', 'main'))).toBe(false)
  })

  test('two processes fetching the same model download it once and both get it', async () => {
    const cache = tempDir()
    hub.faults.bytesPer10ms = 16 * 1024
    const run = (): Promise<{ ok: boolean; result: { model: string; mmproj: string } }> =>
      new Promise((resolve, reject) => {
        const c = spawn(process.execPath, ['test/helpers/hub-child.js', `hf:${VLM}:Q8_0`, cache, hub.url], { cwd: root })
        let out = ''
        c.stdout.on('data', (d: Buffer) => (out += d))
        c.on('exit', () => {
          try {
            resolve(JSON.parse(out))
          } catch (e) {
            reject(e)
          }
        })
      })
    const [a, b] = await Promise.all([run(), run()])
    expect(a.ok && b.ok).toBe(true)
    expect(a.result.model).toBe(b.result.model)
    expect(sha256(fs.readFileSync(a.result.model))).toBe(sha256of(fileOf(vlmFiles, 'tiny-vlm-Q8_0.gguf')))
    expect(sha256(fs.readFileSync(a.result.mmproj))).toBe(sha256of(fileOf(vlmFiles, 'mmproj-tiny-vlm-Q8_0.gguf')))
    // both went to the hub (neither found a finished cache), and each file crossed the wire once
    expect(hub.requests.filter((q) => q.url.endsWith('/refs'))).toHaveLength(2)
    expect(cdnGets()).toHaveLength(2)
    expect(fs.readdirSync(path.join(cache, '.locks', 'models--ggml-org--tiny-vlm-GGUF'))).toEqual([])
  })
})

describe('the cache, offline and shared', () => {
  test('offline: a cached model resolves without a request; a missing one is ERR_FILE_NOT_FOUND saying how to fetch it', async () => {
    const cache = tempDir()
    await resolveModel(`hf:${VLM}:Q8_0`, opts(cache))
    hub.resetLog()
    const r = await resolveModel(`hf:${VLM}:Q8_0`, opts(cache, { offline: true }))
    expect(r).toMatchObject({ source: 'cache' })
    expect(r.mmproj).toBeDefined()
    let err: LlavaError | undefined
    await resolveModel(`hf:${VLM}:F16`, opts(cache, { offline: true })).catch((e: LlavaError) => (err = e))
    expect(err?.code).toBe('ERR_FILE_NOT_FOUND')
    expect(err?.message).toMatch(/llava-native pull hf:ggml-org\/tiny-vlm-GGUF:F16/)
    process.env.HF_HUB_OFFLINE = '1'
    try {
      expect(await codeOf(resolveModel(`hf:${VLM}:F16`, opts(cache)))).toBe('ERR_FILE_NOT_FOUND')
    } finally {
      delete process.env.HF_HUB_OFFLINE
    }
    expect(hub.requests).toEqual([])
  })

  test('an unreachable hub falls back to what the cache holds', async () => {
    const cache = tempDir()
    await resolveModel(`hf:${VLM}:Q8_0`, opts(cache))
    const dead = 'http://127.0.0.1:9/' // discard port: nothing listens
    const r = await resolveModel(`hf:${VLM}:Q8_0`, { cacheDir: cache, endpoint: dead, revalidate: true, retries: 0 })
    expect(r.source).toBe('cache')
    expect(await codeOf(resolveModel(`hf:${VLM}:F16`, { cacheDir: cache, endpoint: dead, retries: 0 }))).toBe('ERR_DOWNLOAD')
  })

  test('listCachedModels and removeCachedModel see and remove what llama.cpp would', async () => {
    const cache = tempDir()
    await resolveModel(`hf:${VLM}:Q8_0`, opts(cache))
    await resolveModel(`hf:${VLM}:F16`, opts(cache))
    await resolveModel('hf:someone/split-GGUF', opts(cache))
    const listed = listCachedModels({ cacheDir: cache })
    expect(listed.map((m) => m.name).sort()).toEqual(['hf:ggml-org/tiny-vlm-GGUF:F16', 'hf:ggml-org/tiny-vlm-GGUF:Q8_0', 'hf:someone/split-GGUF:Q8_0'])
    const split = listed.find((m) => m.repo === 'someone/split-GGUF')!
    expect(split.files.map((f) => path.basename(f))).toEqual(['tiny-Q8_0-00001-of-00002.gguf', 'tiny-Q8_0-00002-of-00002.gguf'])
    expect(split.size).toBe(splitParts.reduce((n, p) => n + fs.statSync(p).size, 0))
    // as llama.cpp's removal: every file whose tag is F16 (the f16 projector too) and the blobs they alone used
    const removed = removeCachedModel(`hf:${VLM}:F16`, { cacheDir: cache })
    expect(removed.map((p) => path.basename(p)).sort()).toEqual(
      ['tiny-vlm-F16.gguf', 'mmproj-tiny-vlm-f16.gguf', sha256(fileOf(vlmFiles, 'tiny-vlm-F16.gguf')), sha256(fileOf(vlmFiles, 'mmproj-tiny-vlm-f16.gguf'))].sort(),
    )
    expect(listCachedModels({ cacheDir: cache }).map((m) => m.name).sort()).toEqual(['hf:ggml-org/tiny-vlm-GGUF:Q8_0', 'hf:someone/split-GGUF:Q8_0'])
    // the projector shared by other tags is still there
    expect((await resolveModel(`hf:${VLM}:Q8_0`, opts(cache))).source).toBe('cache')
    removeCachedModel('hf:someone/split-GGUF', { cacheDir: cache })
    expect(fs.existsSync(path.join(cache, 'models--someone--split-GGUF'))).toBe(false)
  })
})

describe('URLs', () => {
  test('a URL lands where llama.cpp puts URL downloads, all parts of a split, then is used without a request', async () => {
    hub.addPlain('plain-Q8_0.gguf', modelBytes)
    splitParts.forEach((p) => hub.addPlain(`url-${path.basename(p)}`, fs.readFileSync(p)))
    const cache = tempDir()
    const one = await resolveModel(`${hub.cdnUrl}files/plain-Q8_0.gguf`, { cacheDir: cache, ...fast })
    expect(one).toMatchObject({ source: 'url', model: path.join(cache, 'plain-Q8_0.gguf') })
    expect(sha256(fs.readFileSync(one.model))).toBe(sha256of(modelBytes))
    const split = await resolveModel(`${hub.cdnUrl}files/url-tiny-Q8_0-00001-of-00002.gguf`, { cacheDir: cache, ...fast })
    expect(split.files.map((f) => path.basename(f.path))).toEqual(['url-tiny-Q8_0-00001-of-00002.gguf', 'url-tiny-Q8_0-00002-of-00002.gguf'])
    hub.resetLog()
    expect((await resolveModel(`${hub.cdnUrl}files/plain-Q8_0.gguf`, { cacheDir: cache })).source).toBe('cache')
    expect(hub.requests).toEqual([])
    expect(await codeOf(resolveModel(`${hub.cdnUrl}files/other.gguf`, { cacheDir: cache, offline: true }))).toBe('ERR_FILE_NOT_FOUND')
    expect(await codeOf(resolveModel(`${hub.cdnUrl}files/missing.gguf`, { cacheDir: cache, ...fast }))).toBe('ERR_NOT_FOUND_REMOTE')
    expect(await codeOf(resolveModel(`${hub.cdnUrl}files/readme.txt`, { cacheDir: cache }))).toBe('ERR_INVALID_ARGUMENT')
    // a transfer cut short resumes with a Range request here too
    hub.faults.dropAt.set('plain-Q8_0.gguf', [200_000])
    const again = await resolveModel(`${hub.cdnUrl}files/plain-Q8_0.gguf`, { cacheDir: tempDir(), ...fast })
    expect(sha256(fs.readFileSync(again.model))).toBe(sha256of(modelBytes))
    expect(cdnGets().slice(-2).map((q) => q.range !== undefined)).toEqual([false, true])
  })
})

describe('what the review of the first version found', () => {
  test('the token never goes to a URL on another host, only to the hub', async () => {
    hub.addPlain('plain-Q8_0.gguf', modelBytes)
    await resolveModel(`${hub.cdnUrl}files/plain-Q8_0.gguf`, { cacheDir: tempDir(), endpoint: hub.url, token: TOKEN, ...fast })
    expect(cdnGets().length).toBeGreaterThan(0)
    expect(hub.requests.every((q) => q.authorization === undefined)).toBe(true)
    hub.resetLog()
    // a URL on the hub itself gets the token; the CDN it redirects to does not
    await resolveModel(`${hub.url}gated/tiny-GGUF/resolve/main/tiny-Q8_0.gguf`, { cacheDir: tempDir(), endpoint: hub.url, token: TOKEN, ...fast })
    expect(hub.requests.filter((q) => q.host === 'hub').map((q) => q.authorization)).toEqual([`Bearer ${TOKEN}`])
    expect(cdnGets().every((q) => q.authorization === undefined)).toBe(true)
  })

  test('a process killed mid-download (SIGKILL) leaves a part and a lock; the next process takes the lock over and resumes the part', async () => {
    const cache = tempDir()
    const file = fileOf(vlmFiles, 'tiny-vlm-Q8_0.gguf')
    const blobs = path.join(cache, 'models--ggml-org--tiny-vlm-GGUF', 'blobs')
    const partial = path.join(blobs, `${sha256(file)}.llava-native.incomplete`)
    hub.faults.bytesPer10ms = 4 * 1024
    const first = spawn(process.execPath, ['test/helpers/hub-child.js', `hf:${VLM}:Q8_0`, cache, hub.url], { cwd: root })
    const deadline = Date.now() + 20_000
    while (!(fs.existsSync(partial) && fs.statSync(partial).size > 100_000) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    first.kill('SIGKILL')
    await new Promise((resolve) => first.on('exit', resolve))
    const kept = fs.statSync(partial).size
    expect(kept).toBeGreaterThan(100_000)
    expect(fs.readdirSync(path.join(cache, '.locks', 'models--ggml-org--tiny-vlm-GGUF')).length).toBeGreaterThan(0) // the dead owner's lock
    expect(fs.existsSync(path.join(cache, 'models--ggml-org--tiny-vlm-GGUF', 'refs', 'main'))).toBe(false)
    hub.resetFaults()
    hub.resetLog()
    const r = await resolveModel(`hf:${VLM}:Q8_0`, opts(cache))
    expect(sha256(fs.readFileSync(r.model))).toBe(sha256of(file))
    const modelGets = cdnGets().filter((q) => q.url.includes(sha256(file)))
    expect(modelGets).toHaveLength(1)
    expect(Number(/^bytes=(\d+)-$/.exec(modelGets[0].range ?? '')?.[1])).toBe(kept)
    expect(fs.readdirSync(path.join(cache, '.locks', 'models--ggml-org--tiny-vlm-GGUF'))).toEqual([])
  })

  test('a lock left by a dead process is taken over', async () => {
    const cache = tempDir()
    const oid = sha256(fileOf(vlmFiles, 'tiny-vlm-Q8_0.gguf'))
    const lock = path.join(cache, '.locks', 'models--ggml-org--tiny-vlm-GGUF', `${oid}.llava-native.lock`)
    fs.mkdirSync(path.dirname(lock), { recursive: true })
    const dead = spawn(process.execPath, ['-e', '0'])
    await new Promise((resolve) => dead.on('exit', resolve))
    fs.writeFileSync(lock, JSON.stringify({ pid: dead.pid, host: require('node:os').hostname(), nonce: 'dead' }))
    const started = Date.now()
    const r = await resolveModel(`hf:${VLM}:Q8_0`, opts(cache, { mmproj: false }))
    expect(Date.now() - started).toBeLessThan(5000)
    expect(sha256(fs.readFileSync(r.model))).toBe(sha256of(fileOf(vlmFiles, 'tiny-vlm-Q8_0.gguf')))
    expect(fs.existsSync(lock)).toBe(false)
  })

  test('a split model missing a part in the cache is not a cache hit: the part is fetched again', async () => {
    const cache = tempDir()
    const first = await resolveModel('hf:someone/split-GGUF:Q8_0', opts(cache))
    const part2 = first.files[1].path
    fs.rmSync(fs.realpathSync(part2))
    fs.rmSync(part2)
    hub.resetLog()
    const again = await resolveModel('hf:someone/split-GGUF:Q8_0', opts(cache))
    expect(again.source).toBe('hub')
    expect(again.files.map((f) => f.downloaded)).toEqual([false, true, false])
    expect(cdnGets()).toHaveLength(1)
  })

  test('a cached model whose repository has no projector loads at once when the hub is unreachable or refuses', async () => {
    const cache = tempDir()
    await resolveModel('hf:someone/text-only-GGUF', opts(cache))
    const started = Date.now()
    const r = await resolveModel('hf:someone/text-only-GGUF', { cacheDir: cache, endpoint: 'http://127.0.0.1:9/' })
    expect(Date.now() - started).toBeLessThan(3000) // no retry pauses (the default would wait 1 + 2 + 4 + 8 s)
    expect(r).toMatchObject({ source: 'cache', mmproj: undefined })
    hub.faults.status.set('/api/models/', 401)
    expect((await resolveModel('hf:someone/text-only-GGUF', opts(cache))).source).toBe('cache')
  })

  test("mmproj named by a repository is refused (llama.cpp's choice by tag picks text models); by file it works", async () => {
    const cache = tempDir()
    expect(await codeOf(loadModel({ model: pair.model, mmproj: `hf:${VLM}`, download: { cacheDir: cache, endpoint: hub.url } }))).toBe('ERR_INVALID_ARGUMENT')
    const m = await loadModel({ model: pair.model, mmproj: `hf:${VLM}/mmproj-tiny-vlm-f16.gguf`, threads: 1, download: { cacheDir: cache, endpoint: hub.url } })
    expect(m.info.vision).toBeTruthy()
    await m.dispose()
  })

  test("a URL download keeps the server's ETag as llama.cpp does, and resumes only the same version (If-Range)", async () => {
    const cache = tempDir()
    hub.addPlain('etag-Q8_0.gguf', modelBytes)
    hub.faults.dropAt.set('etag-Q8_0.gguf', [300_000])
    const r = await resolveModel(`${hub.cdnUrl}files/etag-Q8_0.gguf`, { cacheDir: cache, ...fast })
    expect(fs.readFileSync(`${r.model}.etag`, 'utf8')).toBe(`"${sha256(modelBytes)}"`)
    const gets = cdnGets()
    expect(gets[gets.length - 1]).toMatchObject({ ifRange: `"${sha256(modelBytes)}"` })
    expect(gets[gets.length - 1].range).toMatch(/^bytes=\d+-$/)
  })
})

describe('the command line', () => {
  const CLI = path.join(root, 'dist', 'cli', 'main.js')
  // spawned asynchronously: the mock hub answers from this process's event loop
  function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const c = spawn(process.execPath, [CLI, ...args], { cwd: root, env: { ...process.env, ...env } })
      let stdout = ''
      let stderr = ''
      c.stdout.on('data', (d: Buffer) => (stdout += d))
      c.stderr.on('data', (d: Buffer) => (stderr += d))
      const timer = setTimeout(() => c.kill('SIGKILL'), 60_000)
      c.on('exit', (code) => {
        clearTimeout(timer)
        resolve({ code, stdout, stderr })
      })
    })
  }

  test('pull, ls, describe --model hf:, rm; and one-line errors with exit code 3', async () => {
    const env = { LLAMA_CACHE: tempDir(), MODEL_ENDPOINT: hub.url, HF_TOKEN: '' }
    const pulled = await cli(['pull', `hf:${VLM}:Q8_0`, '--json'], env)
    expect(pulled.code).toBe(0)
    const r = JSON.parse(pulled.stdout) as { model: string; mmproj: string; files: Array<{ downloaded: boolean }> }
    expect(path.basename(r.model)).toBe('tiny-vlm-Q8_0.gguf')
    expect(path.basename(r.mmproj)).toBe('mmproj-tiny-vlm-Q8_0.gguf')
    expect(r.files.every((f) => f.downloaded)).toBe(true)
    expect(pulled.stderr).toMatch(/downloading tiny-vlm-Q8_0.gguf/)

    const again = await cli(['pull', `hf:${VLM}:Q8_0`], env)
    expect(again.stdout).toMatch(/nothing \(already in the cache\)/)

    const ls = await cli(['ls'], env)
    expect(ls.stdout).toMatch(/^hf:ggml-org\/tiny-vlm-GGUF:Q8_0\s+\d+(\.\d+)? [KM]i?B\s+\S+tiny-vlm-Q8_0\.gguf\n$/)

    const image = bmpFile(tempDir(), 'x.bmp', 16, 16).file
    const described = await cli(['describe', image, '--model', `hf:${VLM}:Q8_0`, '--threads', '1', '--max-tokens', '4', '--temp', '0', '--json'], env)
    expect(described.code).toBe(0)
    expect(JSON.parse(described.stdout)).toMatchObject({ model: `hf:${VLM}:Q8_0` })

    const missing = await cli(['describe', image, '--model', 'hf:nobody/nothing-GGUF'], env)
    expect(missing.code).toBe(3)
    expect(missing.stderr).toMatch(/^llava-native: error: the repository nobody\/nothing-GGUF was not found on the hub[^\n]*\n$/)

    const rm = await cli(['rm', `hf:${VLM}:Q8_0`], env)
    expect(rm.code).toBe(0)
    expect((await cli(['ls', '--json'], env)).stdout.trim()).toBe('[]')
    expect((await cli(['rm', `hf:${VLM}:Q8_0`], env)).code).toBe(3)
  })
})
