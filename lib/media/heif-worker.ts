// The HEIF/HEIC decoder's thread: libheif with libde265 (HEVC), compiled to WebAssembly by the
// optional package libheif-js, driven through libheif's C API so that the pixel limit, the
// orientation choice and 8-bit output are ours to set. WebAssembly cannot touch memory outside
// its own heap, so a hostile file can at worst fail or exhaust that heap; the main thread can end
// this thread at any time (abort, idle) without harm to the process.
import * as fs from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'

export interface HeifJob {
  op: 'decode' | 'measure'
  bytes: Uint8Array
  maxPixels: number
  /** Apply the file's rotation and mirroring (`irot`/`imir`) and its clean aperture. */
  orient: boolean
  /** Which top-level image, in file order (libvips' page); unset: the primary image. */
  frame?: number
}

export type HeifReply =
  | { ok: true; width: number; height: number; channels?: 3 | 4; data?: Uint8Array }
  | { ok: false; message: string; reason: 'limit' | 'codec' | 'invalid' | 'frame' | 'crash' }

export interface HeifWorkerData {
  /** libheif-js's Emscripten module and its .wasm, resolved by the main thread. */
  modulePath: string
  wasmPath: string
}

// The C API's constants and struct offsets (wasm32, libheif ≥ 1.17: public and versioned)
const COLORSPACE_RGB = 1
const CHROMA_RGB = 10
const CHROMA_RGBA = 11
const CHANNEL_INTERLEAVED = 10
const SUBERROR_SECURITY_LIMIT = 1000
const SUBERROR_UNSUPPORTED_CODEC = 3000
const SUBERROR_NO_DECODER = 6003
const OPTIONS_IGNORE_TRANSFORMATIONS = 1 // uint8_t, after uint8_t version
const OPTIONS_CONVERT_HDR_TO_8BIT = 20 // uint8_t, after 4 pointers (options version ≥ 2)
const LIMITS_MAX_IMAGE_PIXELS = 8 // uint64_t, after uint8_t version
const LIMITS_BYTES = 256 // more than any version of struct heif_security_limits

/* eslint-disable @typescript-eslint/no-explicit-any */
type Module = Record<string, any> & { HEAPU8: Uint8Array; HEAP32: Int32Array; HEAPU32: Uint32Array }

class HeifFailure extends Error {
  constructor(
    message: string,
    readonly reason: 'limit' | 'codec' | 'invalid' | 'frame',
  ) {
    super(message)
  }
}

const { modulePath, wasmPath } = workerData as HeifWorkerData
let instance: Module | undefined

function libheif(): Module {
  if (!instance) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const factory = require(modulePath) as (o: object) => Module
    const quiet = (): void => undefined
    instance = factory({ wasmBinary: fs.readFileSync(wasmPath), print: quiet, printErr: quiet })
    if (typeof instance._heif_decode_image !== 'function' || typeof instance._heif_context_set_security_limits !== 'function') {
      instance = undefined
      throw new Error(`${modulePath} is not the WebAssembly module of libheif-js 1.19 or later`)
    }
  }
  return instance
}

function cString(m: Module, at: number): string {
  if (!at) return ''
  let end = at
  while (end < m.HEAPU8.length && m.HEAPU8[end] !== 0 && end - at < 512) end++
  return Buffer.from(m.HEAPU8.subarray(at, end)).toString('utf8')
}

function run(job: HeifJob): HeifReply {
  const m = libheif()
  const out = m._malloc(16) // a returned struct heif_error (code, subcode, message), or an out-pointer
  const check = (): void => {
    const code = m.HEAP32[out >> 2]
    if (code === 0) return
    const sub = m.HEAP32[(out + 4) >> 2]
    const message = cString(m, m.HEAPU32[(out + 8) >> 2]) || `libheif error ${code}.${sub}`
    const reason = sub === SUBERROR_SECURITY_LIMIT ? 'limit' : sub === SUBERROR_UNSUPPORTED_CODEC || sub === SUBERROR_NO_DECODER ? 'codec' : 'invalid'
    throw new HeifFailure(message, reason)
  }
  const ctx = m._heif_context_alloc()
  const data = m._malloc(Math.max(1, job.bytes.length))
  const limits = m._malloc(LIMITS_BYTES)
  let handle = 0
  let image = 0
  let options = 0
  try {
    m.HEAPU8.set(job.bytes, data)
    // libheif refuses, before allocating, any image or tile larger than the caller's limit
    m.HEAPU8.copyWithin(limits, m._heif_context_get_security_limits(ctx), m._heif_context_get_security_limits(ctx) + LIMITS_BYTES)
    new DataView(m.HEAPU8.buffer).setBigUint64(limits + LIMITS_MAX_IMAGE_PIXELS, BigInt(job.maxPixels), true)
    m._heif_context_set_security_limits(out, ctx, limits)
    check()
    m._heif_context_read_from_memory_without_copy(out, ctx, data, job.bytes.length, 0)
    check()
    if (job.frame === undefined) {
      m._heif_context_get_primary_image_handle(out, ctx, out + 12)
    } else {
      const images = m._heif_context_get_number_of_top_level_images(ctx)
      if (job.frame >= images) throw new HeifFailure(`has ${images} image${images === 1 ? '' : 's'}: frame ${job.frame} does not exist (frames count from 0)`, 'frame')
      const ids = m._malloc(4 * images)
      try {
        m._heif_context_get_list_of_top_level_image_IDs(ctx, ids, images)
        m._heif_context_get_image_handle(out, ctx, m.HEAPU32[(ids >> 2) + job.frame], out + 12)
      } finally {
        m._free(ids)
      }
    }
    check()
    handle = m.HEAPU32[(out + 12) >> 2]
    // the coded size is what decoding allocates; the shown one, after turning and cropping, is what is reported
    const codedWidth = m._heif_image_handle_get_ispe_width(handle)
    const codedHeight = m._heif_image_handle_get_ispe_height(handle)
    if (codedWidth <= 0 || codedHeight <= 0) throw new HeifFailure('the image has no size', 'invalid')
    if (codedWidth * codedHeight > job.maxPixels) throw new HeifFailure('', 'limit') // (libheif's own limits say which)
    const width = job.orient ? m._heif_image_handle_get_width(handle) : codedWidth
    const height = job.orient ? m._heif_image_handle_get_height(handle) : codedHeight
    if (job.op === 'measure') return { ok: true, width, height }

    options = m._heif_decoding_options_alloc()
    m.HEAPU8[options + OPTIONS_IGNORE_TRANSFORMATIONS] = job.orient ? 0 : 1
    if (m.HEAPU8[options] >= 2) m.HEAPU8[options + OPTIONS_CONVERT_HDR_TO_8BIT] = 1
    const channels = m._heif_image_handle_has_alpha_channel(handle) ? 4 : 3
    m._heif_decode_image(out, handle, out + 12, COLORSPACE_RGB, channels === 4 ? CHROMA_RGBA : CHROMA_RGB, options)
    check()
    image = m.HEAPU32[(out + 12) >> 2]
    const w = m._heif_image_get_width(image, CHANNEL_INTERLEAVED)
    const h = m._heif_image_get_height(image, CHANNEL_INTERLEAVED)
    const plane = m._heif_image_get_plane_readonly(image, CHANNEL_INTERLEAVED, out + 12)
    const stride = m.HEAP32[(out + 12) >> 2]
    if (!plane || w <= 0 || h <= 0 || w * h > job.maxPixels || stride < w * channels) throw new HeifFailure('the decoder gave no usable pixels', 'invalid')
    const pixels = new Uint8Array(w * h * channels)
    const heap = m.HEAPU8
    for (let y = 0; y < h; y++) pixels.set(heap.subarray(plane + y * stride, plane + y * stride + w * channels), y * w * channels)
    return { ok: true, width: w, height: h, channels, data: pixels }
  } finally {
    try {
      if (image) m._heif_image_release(image)
      if (handle) m._heif_image_handle_release(handle)
      if (options) m._heif_decoding_options_free(options)
      m._heif_context_free(ctx)
      m._free(data)
      m._free(limits)
      m._free(out)
    } catch {
      instance = undefined // the instance aborted: its heap is dropped with it
    }
  }
}

parentPort?.on('message', (job: HeifJob) => {
  let reply: HeifReply
  try {
    reply = run(job)
  } catch (err) {
    if (err instanceof HeifFailure) {
      reply = { ok: false, message: err.message, reason: err.reason }
    } else {
      // an abort inside WebAssembly (out of heap, a trap) leaves the instance unusable: start a new one next time
      instance = undefined
      reply = { ok: false, message: (err as Error)?.message ?? String(err), reason: 'crash' }
    }
  }
  parentPort?.postMessage(reply, reply.ok && reply.data ? [reply.data.buffer as ArrayBuffer] : [])
})
