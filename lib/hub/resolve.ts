// resolveModel: a model string to local files. `hf:` names are resolved with llama.cpp's own file
// choice, against the shared hub cache first, then the hub; URLs land where llama.cpp puts them.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { LlavaError } from '../errors'
import { binding } from '../native'
import { cachedSnapshot, ggufSplitInfo, isPresent, linkIntoSnapshot, repoDir, repoFolderName, writeRef } from './cache'
import { hubCacheDir, hubEndpoint, offlineFromEnv, urlCacheDir } from './cache-dir'
import { fetchFile, type FetchOptions } from './download'
import { TransientError, withRetries } from './http'
import { remoteCommit, remoteFiles, type RemoteFile } from './listing'
import { acquireLock } from './lock'
import { type DownloadProgress, ProgressMeter } from './progress'
import { type ModelSpec, parseModelSpec, repoWithTag } from './spec'
import { readToken } from './token'

export interface ResolveModelOptions {
  /** Also find the repository's projector (`mmproj`), as llama.cpp's -hf does. Default true. */
  mmproj?: boolean
  /** The hub cache root. Default: LLAMA_CACHE, HF_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub. */
  cacheDir?: string
  /** The hub. Default: MODEL_ENDPOINT, HF_ENDPOINT, https://huggingface.co. */
  endpoint?: string
  /** A Hugging Face token, sent to the hub only. Default: HF_TOKEN, then the token file huggingface_hub writes. */
  token?: string
  /** Use the cache only, never the network. Default: HF_HUB_OFFLINE=1 or LLAMA_ARG_OFFLINE. */
  offline?: boolean
  /** Ask the hub for the newest commit even when the cache already holds a match. Default false. */
  revalidate?: boolean
  /** Say what would be fetched, fetch nothing. */
  dryRun?: boolean
  /** Longest wait for the hub's answer or between two chunks of a transfer. Default 30 000 ms. */
  timeoutMs?: number
  /** Further tries after a dropped connection, timeout or 5xx (each resumes where the last stopped). Default 4. */
  retries?: number
  /** First pause between tries (doubling). Default 1000 ms. */
  retryDelayMs?: number
  signal?: AbortSignal
  onProgress?: (progress: DownloadProgress) => void
}

export interface ResolvedFile {
  /** Path in the repository (or the URL). */
  name: string
  /** Where the file is (or, with dryRun, will be) on disk. */
  path: string
  size?: number
  /** Whether this call downloaded it. */
  downloaded: boolean
}

export interface ResolvedModel {
  /** The text model's local path (the first part of a split model). */
  model: string
  /** The projector's local path, when the repository has one and it was asked for. */
  mmproj?: string
  /** `'local'`: a path given as is; `'cache'`: found in the hub cache without asking the hub; `'hub'`/`'url'`: asked the network. */
  source: 'local' | 'cache' | 'hub' | 'url'
  /** Every file of the model (all split parts) and the projector. */
  files: ResolvedFile[]
  repo?: string
  commit?: string
}

const KEYS = ['mmproj', 'cacheDir', 'endpoint', 'token', 'offline', 'revalidate', 'dryRun', 'timeoutMs', 'retries', 'retryDelayMs', 'signal', 'onProgress']

interface Plan {
  primary: string | null
  modelFiles: string[]
  mmproj: string | null
  preset: string | null
}

type HfSpec = Extract<ModelSpec, { kind: 'hf' }>

/** llama.cpp's choice of files from a listing (common/download.cpp, through the addon). */
function plan(files: string[], spec: HfSpec, mmproj: boolean): Promise<Plan> {
  return binding().hubPlan(files, repoWithTag(spec), spec.file, mmproj)
}

function availableTags(files: string[]): string[] {
  const tags = new Set<string>()
  for (const f of files) {
    const s = ggufSplitInfo(f)
    if (!s || !s.tag || s.index !== 1 || /mmproj|imatrix|mtp-|eagle3-|dflash-|dspark-/.test(s.prefix)) continue
    tags.add(s.tag)
  }
  return [...tags]
}

function notFound(spec: HfSpec, files: string[], where: string): LlavaError {
  const name = `hf:${repoWithTag(spec)}${spec.file ? '/' + spec.file : ''}`
  const tags = availableTags(files)
  const what = spec.file ? `file ${spec.file}` : spec.tag ? `GGUF file for the tag ${spec.tag}` : 'GGUF model file'
  const hint = tags.length ? ` Available tags: ${tags.join(', ')}.` : files.some((f) => f.endsWith('.gguf')) ? '' : ' It holds no GGUF files.'
  return new LlavaError('ERR_NOT_FOUND_REMOTE', `${where} ${spec.repo} has no ${what} (${name}).${hint}`, {
    details: { repo: spec.repo, tag: spec.tag || undefined, file: spec.file || undefined, availableTags: tags },
  })
}

function checkOptions(o: ResolveModelOptions): void {
  if (o === null || typeof o !== 'object') throw new LlavaError('ERR_INVALID_ARGUMENT', 'resolveModel options must be an object')
  for (const k of Object.keys(o)) {
    if (!KEYS.includes(k)) throw new LlavaError('ERR_INVALID_ARGUMENT', `resolveModel() has no option ${JSON.stringify(k)}; known: ${KEYS.join(', ')}`, { details: { option: k } })
  }
  const num = (k: 'timeoutMs' | 'retries' | 'retryDelayMs', min: number): void => {
    const v = o[k]
    if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new LlavaError('ERR_INVALID_ARGUMENT', `${k} must be an integer ≥ ${min}`, { details: { option: k } })
  }
  num('timeoutMs', 1)
  num('retries', 0)
  num('retryDelayMs', 0)
  for (const k of ['cacheDir', 'endpoint', 'token'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'string') throw new LlavaError('ERR_INVALID_ARGUMENT', `${k} must be a string`, { details: { option: k } })
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new LlavaError('ERR_INVALID_ARGUMENT', 'onProgress must be a function', { details: { option: 'onProgress' } })
}

/**
 * Resolves a model name to local files, downloading what the cache lacks.
 *
 * - a path: returned as is;
 * - `hf:owner/repo[:QUANT]` or `hf:owner/repo/path/file.gguf`: the files llama.cpp's `-hf` picks
 *   (quant tag, default order Q4_K_M then Q8_0, split parts, the nearest `mmproj`), from the hub
 *   cache shared with llama.cpp and huggingface_hub, or downloaded into it;
 * - `https://…/file.gguf`: downloaded where llama.cpp puts URL downloads (all parts of a split).
 */
export async function resolveModel(model: string, options: ResolveModelOptions = {}): Promise<ResolvedModel> {
  if (typeof model !== 'string' || model === '') throw new LlavaError('ERR_INVALID_ARGUMENT', 'resolveModel(model): model must be a non-empty string')
  checkOptions(options)
  if (options.signal?.aborted) throw options.signal.reason
  const spec = parseModelSpec(model)
  if (spec.kind === 'path') {
    const p = path.resolve(spec.path)
    return { model: p, source: 'local', files: [{ name: spec.path, path: p, downloaded: false }] }
  }
  const endpoint = hubEndpoint(options.endpoint)
  const http: FetchOptions = {
    token: options.token ?? readToken(),
    // the token goes to the hub's origin only: never to a CDN it redirects to, nor to another URL's host
    tokenOrigin: new URL(endpoint).origin,
    signal: options.signal,
    timeoutMs: options.timeoutMs ?? 30_000,
    retries: options.retries ?? 4,
    retryDelayMs: options.retryDelayMs ?? 1000,
  }
  if (spec.kind === 'url') return resolveUrl(spec.url, options, http)
  return resolveHf(spec, options, endpoint, http)
}

async function fromCache(cacheDir: string, spec: HfSpec, wantMmproj: boolean): Promise<ResolvedModel | undefined> {
  const snap = cachedSnapshot(cacheDir, spec.repo)
  if (!snap) return undefined
  const p = await plan(snap.files, spec, wantMmproj)
  if (!p.primary || p.modelFiles.length === 0) return undefined
  // a split model whose download stopped part-way has only some parts in the snapshot
  if (p.modelFiles.length !== (ggufSplitInfo(p.primary)?.count ?? 1)) return undefined
  const names = [...p.modelFiles, ...(p.mmproj ? [p.mmproj] : [])]
  if (!names.every((n) => isPresent(path.join(snap.dir, n)))) return undefined
  if (wantMmproj && !p.mmproj) return undefined // the hub may have one the cache lacks
  return {
    model: path.join(snap.dir, p.primary),
    mmproj: p.mmproj ? path.join(snap.dir, p.mmproj) : undefined,
    source: 'cache',
    files: names.map((n) => ({ name: n, path: path.join(snap.dir, n), size: fs.statSync(path.join(snap.dir, n)).size, downloaded: false })),
    repo: spec.repo,
    commit: snap.commit,
  }
}

async function resolveHf(spec: HfSpec, options: ResolveModelOptions, endpoint: string, http: FetchOptions): Promise<ResolvedModel> {
  const cacheDir = path.resolve(options.cacheDir ?? hubCacheDir())
  const offline = options.offline ?? offlineFromEnv()
  const wantMmproj = options.mmproj ?? true
  const name = `hf:${repoWithTag(spec)}${spec.file ? '/' + spec.file : ''}`

  // The model without a projector: enough offline, or when the hub cannot say whether it has one.
  let modelOnly: ResolvedModel | undefined
  if (offline || !options.revalidate) {
    // Offline, the cache is the whole truth: its projector if it has one, as llama.cpp --offline.
    const hit = await fromCache(cacheDir, spec, wantMmproj)
    if (hit) return hit
    modelOnly = wantMmproj ? await fromCache(cacheDir, spec, false) : undefined
    if (offline && modelOnly) return modelOnly
    if (offline) {
      const how = options.offline ? 'the offline option is set' : process.env.HF_HUB_OFFLINE ? 'HF_HUB_OFFLINE is set' : 'LLAMA_ARG_OFFLINE is set'
      throw new LlavaError(
        'ERR_FILE_NOT_FOUND',
        `${name} is not in the model cache (${cacheDir}) and offline mode forbids downloading it (${how}): run \`llava-native pull ${name}\` while online.`,
        { details: { repo: spec.repo, cacheDir } },
      )
    }
  }

  let commit: string
  let branch: string
  let listing: RemoteFile[]
  // With the model already here, one quick question (no retries) whether the repository has a projector.
  const retries = modelOnly ? 0 : http.retries
  try {
    ;({ commit, branch } = await withRetries(`asking the hub about ${spec.repo}`, retries, http.retryDelayMs, http.signal, () =>
      remoteCommit(endpoint, spec.repo, http),
    ))
    listing = await withRetries(`listing the files of ${spec.repo}`, retries, http.retryDelayMs, http.signal, () =>
      remoteFiles(endpoint, spec.repo, commit, http),
    )
  } catch (err) {
    if (http.signal?.aborted) throw http.signal.reason
    // The model is here; whatever the hub says now (unreachable, refusing), it is used as llama.cpp would.
    if (modelOnly) return modelOnly
    // The hub unreachable (not a refusal): what the cache has will do, as llama.cpp falls back.
    if (err instanceof TransientError || (err instanceof LlavaError && err.code === 'ERR_DOWNLOAD')) {
      const hit = (await fromCache(cacheDir, spec, wantMmproj)) ?? (await fromCache(cacheDir, spec, false))
      if (hit) return hit
      throw new LlavaError('ERR_DOWNLOAD', `could not ask ${new URL(endpoint).host} about ${spec.repo}, and the cache has no copy: ${(err as Error).message}`, {
        cause: err,
        details: { repo: spec.repo, endpoint },
      })
    }
    throw err
  }
  const paths = listing.map((f) => f.path)
  const p = await plan(paths, spec, wantMmproj)
  if (p.preset && !p.primary) {
    throw new LlavaError('ERR_NOT_FOUND_REMOTE', `${spec.repo} is a llama.cpp preset repository (it has a preset.ini), not a model repository`, {
      details: { repo: spec.repo },
    })
  }
  if (!p.primary) throw notFound(spec, paths, 'the repository')

  const byPath = new Map(listing.map((f) => [f.path, f]))
  const rp = repoDir(cacheDir, spec.repo)
  const snapDir = path.join(rp, 'snapshots', commit)
  const wanted = [...p.modelFiles, ...(p.mmproj ? [p.mmproj] : [])].map((n) => byPath.get(n)!)
  const result: ResolvedModel = {
    model: path.join(snapDir, p.primary),
    mmproj: p.mmproj ? path.join(snapDir, p.mmproj) : undefined,
    source: 'hub',
    files: wanted.map((f) => ({ name: f.path, path: path.join(snapDir, f.path), size: f.size, downloaded: false })),
    repo: spec.repo,
    commit,
  }
  if (options.dryRun) return result

  const missing = wanted.filter((f) => !isPresent(path.join(snapDir, f.path)))
  const meter = new ProgressMeter(new Map(missing.map((f) => [f.path, f.size])), options.onProgress)
  await eachAtOnce(missing, http, async (f, signal) => {
    const finalPath = path.join(snapDir, f.path)
    const blob = f.oid ? path.join(rp, 'blobs', f.oid) : finalPath
    const entry = result.files.find((e) => e.name === f.path)!
    if (!isPresent(blob)) {
      const lock = await acquireLock(path.join(cacheDir, '.locks', repoFolderName(spec.repo), `${f.oid ?? f.path.replace(/\//g, '--')}.llava-native.lock`), signal)
      try {
        // another process may have finished it while this one waited
        if (!isPresent(blob)) {
          fs.mkdirSync(path.dirname(blob), { recursive: true })
          const url = `${endpoint}${spec.repo}/resolve/${commit}/${f.path.split('/').map(encodeURIComponent).join('/')}`
          await fetchFile({ url, dest: blob, label: f.path, size: f.size, oid: f.oid }, { ...http, signal }, { progress: (done, total, phase) => meter.update(f.path, done, total, phase) })
          entry.downloaded = true
        }
      } finally {
        lock.release()
      }
    }
    if (blob !== finalPath) linkIntoSnapshot(blob, finalPath)
    meter.update(f.path, f.size ?? fs.statSync(finalPath).size, f.size, 'done')
  })
  for (const e of result.files) e.size ??= fs.statSync(e.path).size
  // Only now: a failed download leaves the ref on the snapshot that was complete (llama.cpp writes it first).
  writeRef(rp, branch, commit)
  return result
}

const PARALLEL = 4

/**
 * Runs `work` for every item, up to PARALLEL at once (as llama.cpp fetches a model's files
 * together). The first failure stops the others through their signal; the call settles only once
 * every transfer has stopped, so nothing keeps writing after it rejects.
 */
async function eachAtOnce<T>(items: T[], http: FetchOptions, work: (item: T, signal: AbortSignal) => Promise<void>): Promise<void> {
  const stop = new AbortController()
  const outer = http.signal
  const onAbort = (): void => stop.abort(outer!.reason)
  if (outer?.aborted) stop.abort(outer.reason)
  else outer?.addEventListener('abort', onAbort, { once: true })
  let failure: { error: unknown } | undefined
  let next = 0
  const runner = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const item = items[next++]
      try {
        await work(item, stop.signal)
      } catch (error) {
        failure ??= { error: outer?.aborted ? outer.reason : error }
        stop.abort(error)
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, runner))
  } finally {
    outer?.removeEventListener('abort', onAbort)
  }
  if (failure) throw failure.error
}

/** The file name llama.cpp gives a URL download: the last path segment as written (not decoded). */
function urlFileName(url: URL): string {
  return url.pathname.split('/').pop() ?? ''
}

/** Every part of a split model named by one part's URL (a URL with a query or fragment is one file, as in llama.cpp). */
function urlParts(url: URL): URL[] {
  const s = ggufSplitInfo(urlFileName(url))
  if (!s || s.count <= 1 || url.search || url.hash) return [url]
  const name = urlFileName(url)
  const stem = name.slice(0, -'-00001-of-00001.gguf'.length)
  const dir = url.pathname.slice(0, url.pathname.length - name.length)
  return Array.from({ length: s.count }, (_, i) => {
    const part = new URL(url.href)
    part.pathname = `${dir}${stem}-${String(i + 1).padStart(5, '0')}-of-${String(s.count).padStart(5, '0')}.gguf`
    return part
  })
}

async function resolveUrl(url: URL, options: ResolveModelOptions, http: FetchOptions): Promise<ResolvedModel> {
  const dir = path.resolve(options.cacheDir ?? urlCacheDir())
  const offline = options.offline ?? offlineFromEnv()
  const parts = urlParts(url)
  const files: ResolvedFile[] = parts.map((u) => {
    const base = urlFileName(u)
    if (base === '' || base.includes('\\') || base === '.' || base === '..') {
      throw new LlavaError('ERR_INVALID_ARGUMENT', `${url.href} does not end with a usable file name`)
    }
    return { name: u.href, path: path.join(dir, base), downloaded: false }
  })
  const result: ResolvedModel = { model: files[0].path, source: 'url', files }
  const missing = files.filter((f) => options.revalidate === true || !isPresent(f.path))
  if (missing.length === 0) return { ...result, source: 'cache' }
  if (offline) {
    throw new LlavaError('ERR_FILE_NOT_FOUND', `${url.href} is not downloaded yet (${missing[0].path}) and offline mode forbids downloading it`, {
      details: { path: missing[0].path },
    })
  }
  if (options.dryRun) return result
  fs.mkdirSync(dir, { recursive: true })
  const meter = new ProgressMeter(new Map(missing.map((f) => [f.name, undefined])), options.onProgress)
  await eachAtOnce(missing, http, async (f, signal) => {
    const lock = await acquireLock(`${f.path}.llava-native.lock`, signal)
    try {
      if (options.revalidate === true || !isPresent(f.path)) {
        const tmp = options.revalidate === true ? `${f.path}.new` : f.path
        const progress = (done: number, total: number | undefined, phase: 'download' | 'verify'): void => meter.update(f.name, done, total, phase)
        await fetchFile({ url: f.name, dest: tmp, label: path.basename(f.path), etagFile: `${f.path}.etag` }, { ...http, signal }, { progress })
        if (tmp !== f.path) fs.renameSync(tmp, f.path)
        f.downloaded = true
      }
    } finally {
      lock.release()
    }
    f.size = fs.statSync(f.path).size
    meter.update(f.name, f.size, f.size, 'done')
  })
  for (const f of files) f.size ??= fs.statSync(f.path).size
  return result
}
