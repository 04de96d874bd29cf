import * as fs from 'node:fs'
import * as path from 'node:path'
import { decodeWithSharp } from './media/sharp'
import { type OtherFormat, SNIFF_BYTES, sniffOtherFormat } from './media/sniff'
import { LlavaError, fromNative } from './errors'
import { Lifetime } from './lifetime'
import { binding } from './native'
import type { NativeEmbedding, NativeImageBytes, NativeImageInput } from './native-types'
import { invalid } from './validate'

/** Raw pixels, row-major, no padding. Electron's `nativeImage.toBitmap()` gives BGRA; canvas ImageData gives RGBA. */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray | Buffer
  width: number
  height: number
  format: 'rgb' | 'rgba' | 'bgra'
}

/**
 * An image to look at: a file path; a Buffer/Uint8Array/ArrayBuffer holding an encoded image (JPEG,
 * PNG, BMP, GIF, TGA, PSD, HDR, PIC, PNM); or raw pixels.
 */
export type ImageInput = string | Uint8Array | ArrayBuffer | RawImage

/** Default ceiling on decoded image size: 64 megapixels. */
export const DEFAULT_MAX_PIXELS = 64 * 1024 * 1024

/** @internal Encoded image bytes already in native memory (a large data: URL decoded there). */
export class NativeBytesImage {
  constructor(readonly bytes: NativeImageBytes) {}
}

/** How encoded images are read: the largest accepted, whether their EXIF orientation applies, what shows through transparency. */
export interface ImageReading {
  maxPixels: number
  orientation: 'exif' | 'ignore'
  /** RGB, 0..255 each. */
  background: [number, number, number]
}

/** An image background: '#rgb', '#rrggbb' or [r, g, b] with integers 0..255. */
export type ImageBackground = string | readonly [number, number, number]

export const WHITE: [number, number, number] = [255, 255, 255]

export function backgroundOption(option: string, value: unknown): [number, number, number] {
  if (typeof value === 'string') {
    const m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(value)
    if (m) {
      const hex = m[1].length === 3 ? [...m[1]].map((c) => c + c).join('') : m[1]
      return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number]
    }
  } else if (Array.isArray(value) && value.length === 3) {
    const c = [value[0], value[1], value[2]] // (every() would skip the holes of [255, , 0])
    if (c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) return c as [number, number, number]
  }
  throw invalid(option, "a colour: '#rrggbb', '#rgb' or [r, g, b] with integers 0..255", value)
}

export function toNativeImage(input: unknown, option: string, reading: ImageReading): NativeImageInput {
  const maxPixels = reading.maxPixels
  const orient = reading.orientation === 'exif'
  const background = reading.background
  if (input instanceof NativeBytesImage) return { kind: 'bytes', data: input.bytes, maxPixels, orient, background }
  if (typeof input === 'string') {
    if (input.length === 0 || input.includes('\0')) throw invalid(option, 'a file path, image bytes or raw pixels', input)
    return { kind: 'path', path: path.resolve(input), maxPixels, orient, background }
  }
  if (input instanceof ArrayBuffer) return { kind: 'bytes', data: new Uint8Array(input), maxPixels, orient, background }
  if (input instanceof Uint8Array) return { kind: 'bytes', data: input, maxPixels, orient, background }
  if (input !== null && typeof input === 'object' && 'data' in input && 'width' in input) {
    const raw = input as RawImage
    if (!(raw.data instanceof Uint8Array) && !(raw.data instanceof Uint8ClampedArray)) {
      throw invalid(`${option}.data`, 'a Uint8Array, Uint8ClampedArray or Buffer of pixels', raw.data)
    }
    if (!Number.isInteger(raw.width) || raw.width <= 0 || raw.width > 1 << 16) throw invalid(`${option}.width`, 'an integer between 1 and 65536', raw.width)
    if (!Number.isInteger(raw.height) || raw.height <= 0 || raw.height > 1 << 16) throw invalid(`${option}.height`, 'an integer between 1 and 65536', raw.height)
    if (raw.format !== 'rgb' && raw.format !== 'rgba' && raw.format !== 'bgra') {
      throw invalid(`${option}.format`, "'rgb', 'rgba' or 'bgra'", raw.format)
    }
    const channels = raw.format === 'rgb' ? 3 : 4
    const expected = raw.width * raw.height * channels
    if (raw.data.byteLength !== expected) {
      throw new LlavaError(
        'ERR_INVALID_ARGUMENT',
        `Expected ${expected} bytes (${raw.width}x${raw.height}x${channels}) for ${option}.data but received ${raw.data.byteLength}`,
        { details: { option: `${option}.data` } },
      )
    }
    const data = raw.data instanceof Uint8ClampedArray ? new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength) : raw.data
    return { kind: 'pixels', data, width: raw.width, height: raw.height, format: raw.format, maxPixels }
  }
  throw invalid(option, 'a file path, a Buffer/Uint8Array of an encoded image, raw pixels { data, width, height, format } or an ImageEmbedding', input)
}

/** Buffers from this size up are copied into native memory in slices rather than in one go. */
/** The native side's limit on an encoded image file (image_input.cpp kMaxFileBytes). */
const MAX_FILE_BYTES = 256 * 1024 * 1024
const COPY_IN_SLICES_FROM = 1 << 20
const SLICE = 2 << 20

/**
 * The input with its bytes, if large, copied into native memory a slice per turn of the event
 * loop: a 48 MB buffer copied in one go held the loop for 200-300 ms, and native threads must not
 * read memory JS owns (the caller could change, transfer or free it meanwhile). Starts copying at
 * once; the caller must leave the buffer unchanged until the returned promise settles.
 */
export function ownImageBytes(input: NativeImageInput): Promise<NativeImageInput> {
  // Formats for sharp (lib/media/sharp.ts) are told synchronously for bytes (the caller may change
  // them once this returns), from the file's start for paths.
  if (input.kind === 'bytes' && input.data instanceof Uint8Array) {
    const format = sniffOtherFormat(input.data.subarray(0, SNIFF_BYTES))
    // sharp reads its input on another thread: it gets a copy of its own
    if (format) return decodeOther(Buffer.from(input.data), format, 'the image buffer', input)
  }
  if (input.kind === 'path') {
    return otherFormatFile(input.path).then((other) => (other ? decodeOther(other.bytes, other.format, `the image file ${input.path}`, input) : input))
  }
  return copyInSlices(input)
}

async function decodeOther(source: Buffer, format: OtherFormat, what: string, input: Extract<NativeImageInput, { kind: 'path' | 'bytes' }>): Promise<NativeImageInput> {
  return copyInSlices(await decodeWithSharp(source, format, what, input))
}

async function copyInSlices(input: NativeImageInput): Promise<NativeImageInput> {
  if (input.kind === 'path' || !(input.data instanceof Uint8Array) || input.data.byteLength < COPY_IN_SLICES_FROM) return input
  const source = input.data
  const total = source.byteLength
  let copy
  try {
    copy = new (binding().ImageBytes)(total)
    for (let offset = 0; offset < total; offset += SLICE) {
      if (offset > 0) await new Promise<void>((resolve) => setImmediate(resolve))
      copy.copyFrom(source, offset, Math.min(SLICE, total - offset))
    }
  } catch (err) {
    throw fromNative(err)
  }
  return { ...input, data: copy }
}

/** The file as bytes when it holds a format for sharp; undefined otherwise (the native side reads it). */
async function otherFormatFile(file: string): Promise<{ format: OtherFormat; bytes: Buffer } | undefined> {
  let fh: fs.promises.FileHandle | undefined
  try {
    // O_NONBLOCK: a FIFO must not hold a thread of the pool until a writer comes
    fh = await fs.promises.open(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0))
    const st = await fh.stat()
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return undefined // the native side refuses it, with its usual message
    const head = Buffer.alloc(Math.min(SNIFF_BYTES, st.size))
    await fh.read(head, 0, head.length, 0)
    const format = sniffOtherFormat(head)
    if (!format) return undefined
    // read once and decoded from memory: what was checked is what is decoded
    const bytes = Buffer.alloc(st.size)
    let at = 0
    while (at < bytes.length) {
      const { bytesRead } = await fh.read(bytes, at, bytes.length - at, at)
      if (bytesRead === 0) break
      at += bytesRead
    }
    return { format, bytes: bytes.subarray(0, at) }
  } catch {
    return undefined // not readable: the native side says why
  } finally {
    await fh?.close().catch(() => undefined)
  }
}

/** ownImageBytes() over a call's images; embeddings pass through. */
export function ownImages<E>(images: Array<NativeImageInput | E>): Promise<Array<NativeImageInput | E>> {
  return Promise.all(images.map((img) => (img !== null && typeof img === 'object' && 'kind' in img ? ownImageBytes(img as NativeImageInput) : img)))
}

/**
 * An encoded image: the projector's output, reusable in any prompt or session of the model that
 * made it without encoding again. Dispose it when done, or let the model's dispose() do it.
 */
export class ImageEmbedding {
  /** Tokens the image occupies in a prompt. */
  readonly nTokens: number
  /** Width of each token's embedding (the text model's input width). */
  readonly nEmbd: number
  /** Size of the decoded image, in pixels. */
  readonly width: number
  readonly height: number
  /** A content hash of the decoded pixels: equal images have equal ids. */
  readonly id: string
  /** How long the whole call took: decoding, preprocessing and encoding. */
  readonly encodeMs: number
  /** How long the vision encoder itself ran (the figure llama.cpp's tools log); 0 when `reused`. */
  readonly encoderMs: number
  /** true when the model already held an embedding of the same pixels, so nothing was encoded. */
  readonly reused: boolean

  /** @internal */
  readonly native: NativeEmbedding
  /** @internal */
  readonly owner: object
  readonly #lifetime = new Lifetime('image embedding')
  readonly #onDispose: (e: ImageEmbedding) => void

  /** @internal */
  constructor(native: NativeEmbedding, owner: object, onDispose: (e: ImageEmbedding) => void) {
    const info = native.info()
    this.native = native
    this.owner = owner
    this.nTokens = info.nTokens
    this.nEmbd = info.nEmbd
    this.width = info.width
    this.height = info.height
    this.id = info.id
    this.encodeMs = native.encodeMs
    this.encoderMs = native.encoderMs
    this.reused = native.reused
    this.#onDispose = onDispose
  }

  get disposed(): boolean {
    return this.#lifetime.disposed
  }

  /** @internal */
  assertAlive(): void {
    this.#lifetime.assertAlive('encode the image again with model.encodeImage()')
  }

  /** A copy of the embeddings: nTokens rows of nEmbd floats. */
  toFloat32Array(): Float32Array {
    this.assertAlive()
    return this.native.toFloat32Array()
  }

  /** Frees the embeddings. Idempotent. Prompts already running keep their own reference. */
  dispose(): Promise<void> {
    return this.#lifetime.dispose(
      () => this.#onDispose(this),
      () => this.native.dispose(),
    )
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}
