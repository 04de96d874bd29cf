// Images the built-in decoder (stb_image) does not read, told from their first bytes and handed to
// the decoder that reads them in-process: HEVC-coded HEIF (iPhone HEIC) to libheif-js, WebP, AVIF,
// TIFF and AV1-coded HEIF to sharp. Both are optional packages the application installs; what
// they give is raw pixels for the native side, or for countTokens only the size, from the header.
import * as fs from 'node:fs'
import type { NativeImageInput } from '../native-types'
import { HeifDecodeError, decodeHeif, heifDecoderInstalled, measureHeif } from './heif'
import { decodeWithSharp, measureWithSharp, sharpInstalled } from './sharp'
import { type OtherFormat, SNIFF_BYTES, sniffOtherFormat } from './sniff'

export interface OtherReading {
  maxPixels: number
  orient: boolean
  background: [number, number, number]
  /** Which frame, page or HEIF top-level image; unset: the first (a HEIF's primary). */
  frame?: number
}

const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength))

/**
 * HEIF goes to libheif-js when installed; to sharp when it is not, or when the file is coded in
 * something libheif-js lacks (AV1 in a file that only says 'mif1') and sharp is there.
 */
async function viaHeif<T>(format: OtherFormat, heif: () => Promise<T>, sharp: () => Promise<T>): Promise<T> {
  if (format !== 'heif' || !heifDecoderInstalled()) return sharp()
  try {
    return await heif()
  } catch (err) {
    if (err instanceof HeifDecodeError && err.codecMissing && sharpInstalled()) return sharp()
    throw err
  }
}

/** Decodes `bytes` (which the caller owns and leaves unchanged) into pixels for the native side. */
export function decodeOtherFormat(bytes: Uint8Array, format: OtherFormat, what: string, reading: OtherReading, signal?: AbortSignal): Promise<NativeImageInput> {
  return viaHeif(
    format,
    async () => {
      const px = await decodeHeif(bytes, what, reading, signal)
      // transparency is laid over the background natively, with the built-in decoder's blend
      return { kind: 'pixels', data: px.data, width: px.width, height: px.height, format: px.channels === 4 ? 'rgba' : 'rgb', maxPixels: reading.maxPixels, composite: true, background: reading.background }
    },
    () => decodeWithSharp(asBuffer(bytes), format, what, reading),
  )
}

/** The size the decode would give (after orientation), read from the header alone. */
export async function measureOtherFormat(bytes: Uint8Array, format: OtherFormat, what: string, reading: OtherReading): Promise<NativeImageInput> {
  const { width, height } = await viaHeif(
    format,
    () => measureHeif(bytes, what, reading),
    () => measureWithSharp(asBuffer(bytes), format, what, reading),
  )
  return { kind: 'size', width, height, maxPixels: reading.maxPixels }
}

/** The native side's limit on an encoded image file (image_input.cpp kMaxFileBytes). */
const MAX_FILE_BYTES = 256 * 1024 * 1024

/**
 * A file's first bytes, and the whole file when it holds a format of this module (read once: what
 * was checked is what is decoded). Undefined when it cannot be read: the native side says why.
 */
export async function readOtherFormatFile(file: string): Promise<{ head: Buffer; other?: { format: OtherFormat; bytes: Buffer } } | undefined> {
  let fh: fs.promises.FileHandle | undefined
  try {
    // O_NONBLOCK: a FIFO must not hold a thread of the pool until a writer comes
    fh = await fs.promises.open(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0))
    const st = await fh.stat()
    if (!st.isFile()) return undefined // the native side refuses it, with its usual message
    const head = Buffer.alloc(Math.min(SNIFF_BYTES, st.size))
    await fh.read(head, 0, head.length, 0)
    const format = sniffOtherFormat(head)
    if (!format || st.size > MAX_FILE_BYTES) return { head }
    const bytes = Buffer.alloc(st.size)
    let at = 0
    while (at < bytes.length) {
      const { bytesRead } = await fh.read(bytes, at, bytes.length - at, at)
      if (bytesRead === 0) break
      at += bytesRead
    }
    return { head, other: { format, bytes: bytes.subarray(0, at) } }
  } catch {
    return undefined
  } finally {
    await fh?.close().catch(() => undefined)
  }
}
