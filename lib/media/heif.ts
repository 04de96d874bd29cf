// HEIF/HEIC photos coded in HEVC (an iPhone's default), which neither the built-in decoder nor
// sharp's prebuilt libvips reads, are decoded by libheif + libde265 compiled to WebAssembly — the
// optional package libheif-js, when the application installs it (LGPL-3.0, 8.5 MB, no
// install script). The decoder runs on a worker thread of its own: the JS thread never runs it,
// one image is decoded at a time (a 12-megapixel photo takes 48 MB as RGBA), an abort ends the
// thread at once, and an idle thread is ended so its WebAssembly heap is given back.
import { Worker } from 'node:worker_threads'
import { LlavaError } from '../errors'
import { compiledScript } from '../node-child'
import type { HeifJob, HeifReply, HeifWorkerData } from './heif-worker'

/** How long an idle decoder thread is kept for the next image. */
const IDLE_MS = 10_000

let located: { paths?: HeifWorkerData } | undefined

/** Where libheif-js's WebAssembly build is, if the application installed it. */
function libheifPaths(): HeifWorkerData | undefined {
  if (!located) {
    try {
      located = { paths: { modulePath: require.resolve('libheif-js/libheif-wasm/libheif.js'), wasmPath: require.resolve('libheif-js/libheif-wasm/libheif.wasm') } }
    } catch {
      located = {}
    }
  }
  return located.paths
}

export const heifDecoderInstalled = (): boolean => libheifPaths() !== undefined

interface Pending {
  job: HeifJob
  resolve: (r: HeifReply) => void
  reject: (e: unknown) => void
  signal?: AbortSignal
  onAbort?: () => void
}

let worker: Worker | undefined
let running: Pending | undefined
const queue: Pending[] = []
let idle: NodeJS.Timeout | undefined

function endWorker(): void {
  const w = worker
  worker = undefined
  void w?.terminate()
}

function startWorker(paths: HeifWorkerData): Worker {
  const w = new Worker(compiledScript('media', 'heif-worker'), { workerData: paths })
  w.on('message', (reply: HeifReply) => {
    if (worker !== w) return // a thread ended by an abort may still have answered: not for the job now running
    const p = running
    running = undefined
    if (p) settle(p, () => p.resolve(reply))
    next()
  })
  const fail = (err: unknown): void => {
    if (worker !== w) return // ended on purpose: its job was settled then
    worker = undefined
    const p = running
    running = undefined
    if (p) settle(p, () => p.reject(err))
    next()
  }
  w.on('error', fail)
  w.on('exit', (code) => fail(new Error(`the HEIF decoder thread ended (exit code ${code})`)))
  return w
}

function settle(p: Pending, done: () => void): void {
  if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort)
  done()
}

function next(): void {
  if (running) return
  const p = queue.shift()
  if (!p) {
    worker?.unref()
    clearTimeout(idle)
    idle = setTimeout(endWorker, IDLE_MS)
    idle.unref()
    return
  }
  clearTimeout(idle)
  const paths = libheifPaths()
  if (!paths) return settle(p, () => p.reject(new Error('libheif-js is not installed')))
  worker ??= startWorker(paths)
  worker.ref() // a decode in progress keeps the process alive, as any pending I/O does
  running = p
  worker.postMessage(p.job, [p.job.bytes.buffer as ArrayBuffer])
}

/** Runs one job on the decoder thread; `job.bytes` must own its ArrayBuffer (it is transferred). */
function runJob(job: HeifJob, signal?: AbortSignal): Promise<HeifReply> {
  return new Promise<HeifReply>((resolve, reject) => {
    const p: Pending = { job, resolve, reject, signal }
    if (signal) {
      if (signal.aborted) return reject(signal.reason)
      p.onAbort = () => {
        if (running === p) {
          // WebAssembly cannot be interrupted from outside: the thread is ended, the next job gets a new one
          running = undefined
          endWorker()
          settle(p, () => reject(signal.reason))
          next()
        } else {
          const at = queue.indexOf(p)
          if (at >= 0) queue.splice(at, 1)
          settle(p, () => reject(signal.reason))
        }
      }
      signal.addEventListener('abort', p.onAbort, { once: true })
    }
    queue.push(p)
    next()
  })
}

export interface HeifReading {
  maxPixels: number
  orient: boolean
  /** Which top-level image, in file order; unset: the primary image. */
  frame?: number
}

/** A HEIF decode's failure, with whether another decoder (sharp) may still read the file. */
export class HeifDecodeError extends LlavaError {
  constructor(
    message: string,
    readonly codecMissing: boolean,
    cause?: unknown,
  ) {
    super('ERR_IMAGE_DECODE', message, { cause, details: { format: 'heif' } })
  }
}

async function heifJob(op: HeifJob['op'], bytes: Uint8Array, what: string, reading: HeifReading, signal?: AbortSignal): Promise<Extract<HeifReply, { ok: true }>> {
  // the thread gets a copy of its own, transferred: the caller's bytes stay readable (sharp may
  // read them next) and are never read off this thread
  const own = new Uint8Array(bytes)
  let reply: HeifReply
  try {
    reply = await runJob({ op, bytes: own, maxPixels: reading.maxPixels, orient: reading.orient, frame: reading.frame }, signal)
  } catch (err) {
    if (signal?.aborted && err === signal.reason) throw err
    throw new HeifDecodeError(`${what} (HEIF/HEIC) could not be decoded: ${(err as Error)?.message ?? String(err)}`, false, err)
  }
  if (reply.ok) return reply
  if (reply.reason === 'limit') {
    // ours (the primary image's size) or one of libheif's security limits, which says which
    throw new HeifDecodeError(`${what} is larger than maxImagePixels (${reading.maxPixels} pixels)${reply.message ? ` or another of libheif's limits: ${reply.message}` : ''}`, false)
  }
  if (reply.reason === 'frame') throw new HeifDecodeError(`${what} ${reply.message}`, false)
  if (reply.reason === 'codec') {
    throw new HeifDecodeError(`${what} (HEIF) is coded in a format libheif-js does not decode (it reads HEVC-coded HEIC; sharp, npm install sharp, reads AV1-coded HEIF): ${reply.message}`, true)
  }
  throw new HeifDecodeError(`${what} (HEIF/HEIC) could not be decoded: ${reply.message}`, false)
}

/** Decodes the primary (or `frame`-th top-level) image into RGB or RGBA pixels, turned by its `irot`/`imir` unless `orient` is false. */
export async function decodeHeif(bytes: Uint8Array, what: string, reading: HeifReading, signal?: AbortSignal): Promise<{ data: Uint8Array; width: number; height: number; channels: 3 | 4 }> {
  const r = await heifJob('decode', bytes, what, reading, signal)
  if (!r.data || !r.channels || r.data.byteLength !== r.width * r.height * r.channels) {
    throw new HeifDecodeError(`${what} (HEIF/HEIC) could not be decoded: the decoder thread gave no pixels`, false)
  }
  return { data: r.data, width: r.width, height: r.height, channels: r.channels }
}

/** The primary image's size as it will be decoded, from the file's boxes alone (nothing is decoded). */
export async function measureHeif(bytes: Uint8Array, what: string, reading: HeifReading): Promise<{ width: number; height: number }> {
  const r = await heifJob('measure', bytes, what, reading)
  return { width: r.width, height: r.height }
}
