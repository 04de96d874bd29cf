import * as path from 'node:path'
import { decodeOtherFormat, measureOtherFormat, readOtherFormatFile } from './media/other-formats'
import { type OtherFormat, SNIFF_BYTES, sniffOtherFormat } from './media/sniff'
import { LlavaError, fromNative } from './errors'
import { MediaEmbedding } from './media/embedding'
import { AsAudio, DEFAULT_MAX_AUDIO_SECONDS, isRawAudio, looksLikeAudio, toNativeAudio } from './audio'
import type { BytesMaker, NativeEmbedding, NativeImageBytes, NativeImageInput, NativeMediaInput } from './native-types'
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
 * PNG, BMP, GIF, TGA, PSD, HDR, PIC, PNM; with the optional package sharp also WebP, AVIF, TIFF;
 * with libheif-js HEIC); or raw pixels.
 */
export type ImageInput = string | Uint8Array | ArrayBuffer | RawImage

/** Default ceiling on decoded image size: 64 megapixels. */
export const DEFAULT_MAX_PIXELS = 64 * 1024 * 1024

/** @internal Encoded media bytes already in native memory (a large data: URL decoded there). */
export class NativeBytesImage {
  constructor(readonly bytes: NativeImageBytes) {}
}

/**
 * How media are read: the largest image accepted, whether its EXIF orientation applies, what
 * shows through transparency; the longest sound accepted.
 */
export interface ImageReading {
  maxPixels: number
  orientation: 'exif' | 'ignore'
  /** RGB, 0..255 each. */
  background: [number, number, number]
  maxAudioSeconds: number
  /** encodeImage's `frame`: which frame, page or HEIF top-level image; unset: the first (a HEIF's primary). */
  frame?: number
}

/** The highest `frame` accepted. */
export const MAX_FRAME = 1_000_000

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

/**
 * An image or a sound of a prompt, told apart by shape (raw PCM) or by its first bytes; a path is
 * told when its file is opened (ownImageBytes).
 */
export function toNativeMedia(input: unknown, option: string, reading: ImageReading): NativeMediaInput {
  if (isRawAudio(input)) return toNativeAudio(input, option, reading.maxAudioSeconds)
  if (input instanceof AsAudio) {
    const inner = input.input
    if (inner instanceof NativeBytesImage) return { kind: 'audio', source: 'bytes', data: inner.bytes, maxSeconds: reading.maxAudioSeconds }
    return toNativeAudio(typeof inner === 'string' ? path.resolve(inner) : inner, option, reading.maxAudioSeconds)
  }
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) {
    const head = input instanceof ArrayBuffer ? new Uint8Array(input, 0, Math.min(12, input.byteLength)) : input.subarray(0, 12)
    if (looksLikeAudio(head)) return toNativeAudio(input, option, reading.maxAudioSeconds)
  }
  return toNativeImage(input, option, reading)
}

export function toNativeImage(input: unknown, option: string, reading: ImageReading): NativeImageInput {
  const maxPixels = reading.maxPixels
  const orient = reading.orientation === 'exif'
  const background = reading.background
  const frame = reading.frame === undefined ? {} : { frame: reading.frame }
  if (input instanceof NativeBytesImage) return { kind: 'bytes', data: input.bytes, maxPixels, orient, background, ...frame }
  if (typeof input === 'string') {
    if (input.length === 0 || input.includes('\0')) throw invalid(option, 'a file path, image bytes or raw pixels', input)
    return { kind: 'path', path: path.resolve(input), maxPixels, orient, background, maxAudioSeconds: reading.maxAudioSeconds, ...frame }
  }
  if (input instanceof ArrayBuffer) return { kind: 'bytes', data: new Uint8Array(input), maxPixels, orient, background, ...frame }
  if (input instanceof Uint8Array) return { kind: 'bytes', data: input, maxPixels, orient, background, ...frame }
  if (input !== null && typeof input === 'object' && 'data' in input && 'width' in input) {
    const raw = input as RawImage
    if (reading.frame) throw invalid('frame', '0 for raw pixels (they are one frame)', reading.frame)
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
const COPY_IN_SLICES_FROM = 1 << 20
const SLICE = 2 << 20

/** How a call's media are taken: `measure` (countTokens) wants sizes only; `signal` ends a decode off the JS thread. */
export interface Owning {
  measure?: boolean
  signal?: AbortSignal
}

/**
 * The input with its bytes, if large, copied into native memory a slice per turn of the event
 * loop: a 48 MB buffer copied in one go held the loop for 200-300 ms, and native threads must not
 * read memory JS owns (the caller could change, transfer or free it meanwhile). Starts copying at
 * once; the caller must leave the buffer unchanged until the returned promise settles. Formats
 * the built-in decoder does not read are decoded here (lib/media/other-formats.ts), or measured
 * from their header when `measure`.
 */
export function ownImageBytes(input: NativeMediaInput, bytesIn: BytesMaker, how: Owning = {}): Promise<NativeMediaInput> {
  if (input.kind === 'audio') return copyInSlices(input, bytesIn)
  // Other formats are told synchronously for bytes (the caller may change them once this
  // returns), from the file's start for paths.
  if (input.kind === 'bytes' && input.data instanceof Uint8Array) {
    const format = sniffOtherFormat(input.data.subarray(0, SNIFF_BYTES))
    // their decoders read on other threads: they get a copy of their own, made now
    if (format) return takeOther(new Uint8Array(input.data), format, 'the image buffer', input, bytesIn, how)
  }
  if (input.kind === 'path') {
    return readOtherFormatFile(input.path).then((file): NativeMediaInput | Promise<NativeMediaInput> => {
      // sound has limits of its own, told by the native side
      if (file && looksLikeAudio(file.head)) return { kind: 'audio', source: 'path', path: input.path, maxSeconds: input.maxAudioSeconds ?? DEFAULT_MAX_AUDIO_SECONDS }
      return file?.other ? takeOther(file.other.bytes, file.other.format, `the image file ${input.path}`, input, bytesIn, how) : input
    })
  }
  return copyInSlices(input, bytesIn)
}

async function takeOther(source: Uint8Array, format: OtherFormat, what: string, input: Extract<NativeImageInput, { kind: 'path' | 'bytes' }>, bytesIn: BytesMaker, how: Owning): Promise<NativeImageInput> {
  if (how.measure) return measureOtherFormat(source, format, what, input)
  return copyInSlices(await decodeOtherFormat(source, format, what, input, how.signal), bytesIn)
}

async function copyInSlices<I extends NativeMediaInput>(input: I, bytesIn: BytesMaker): Promise<I> {
  if (!('data' in input) || !(input.data instanceof Uint8Array) || input.data.byteLength < COPY_IN_SLICES_FROM) return input
  const source = input.data
  const total = source.byteLength
  let copy
  try {
    copy = new bytesIn(total)
    for (let offset = 0; offset < total; offset += SLICE) {
      if (offset > 0) await new Promise<void>((resolve) => setImmediate(resolve))
      copy.copyFrom(source, offset, Math.min(SLICE, total - offset))
    }
  } catch (err) {
    throw fromNative(err)
  }
  return { ...input, data: copy }
}

/** ownImageBytes() over a call's media; embeddings pass through. */
export function ownImages<E>(images: Array<NativeMediaInput | E>, bytesIn: BytesMaker, how: Owning = {}): Promise<Array<NativeMediaInput | E>> {
  return Promise.all(images.map((img) => (img !== null && typeof img === 'object' && 'kind' in img ? ownImageBytes(img as NativeMediaInput, bytesIn, how) : img)))
}

/**
 * An encoded image: the projector's output, reusable in any prompt or session of the model that
 * made it without encoding again. Dispose it when done, or let the model's dispose() do it.
 */
export class ImageEmbedding extends MediaEmbedding {
  /** Size of the decoded image, in pixels (after its EXIF orientation). */
  readonly width: number
  readonly height: number

  /** @internal */
  constructor(native: NativeEmbedding, owner: object, onDispose: (e: MediaEmbedding) => void) {
    super(native, owner, onDispose, 'image embedding', 'encode the image again with model.encodeImage()')
    const info = native.info()
    this.width = info.width
    this.height = info.height
  }
}
