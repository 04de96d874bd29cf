// Formats the built-in decoder cannot read (WebP, AVIF, AV1-coded HEIF, TIFF) are decoded by
// `sharp` (libvips), when the application has installed it: an optional peer, not a dependency,
// since its prebuilt libvips adds about 20 MB. It decodes on libuv's thread pool, never on the JS
// thread, in the same process. What it gives is raw sRGB pixels turned by the EXIF orientation;
// transparency is blended natively with the built-in decoder's formula, so content ids agree.
import { LlavaError } from '../errors'
import type { NativeImageInput } from '../native-types'
import type { OtherFormat } from './sniff'

interface SharpImage {
  rotate(): SharpImage
  toColourspace(c: string): SharpImage
  raw(): SharpImage
  toBuffer(o: { resolveWithObject: true }): Promise<{ data: Buffer; info: { width: number; height: number; channels: number } }>
  metadata(): Promise<{ width?: number; height?: number; orientation?: number; pages?: number }>
}
type Sharp = (input: Buffer | string, options: Record<string, unknown>) => SharpImage

let loaded: { sharp?: Sharp; error?: unknown } | undefined

function loadSharp(): Sharp | undefined {
  if (!loaded) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = { sharp: require('sharp') as Sharp }
    } catch (error) {
      loaded = { error }
    }
  }
  return loaded.sharp
}

export const sharpInstalled = (): boolean => loadSharp() !== undefined

const NAMES: Record<OtherFormat, string> = { webp: 'WebP', avif: 'AVIF', heif: 'HEIF/HEIC', tiff: 'TIFF' }

/** How sharp reads an image: one frame or page (the first by default), refused past `maxPixels` from the header. */
function open(sharp: Sharp, source: Buffer, maxPixels: number, frame = 0): SharpImage {
  return sharp(source, { limitInputPixels: maxPixels, failOn: 'error', animated: false, page: frame, pages: 1 })
}

/** Refuses a frame the file does not have, with how many it has (libvips' own error names neither). */
async function checkFrame(sharp: Sharp, source: Buffer, format: OtherFormat, what: string, maxPixels: number, frame: number | undefined): Promise<void> {
  if (!frame) return
  const pages = (await open(sharp, source, maxPixels).metadata()).pages ?? 1
  if (frame >= pages) {
    throw new LlavaError('ERR_IMAGE_DECODE', `${what} has ${pages} frame${pages === 1 ? '' : 's'}: frame ${frame} does not exist (frames count from 0)`, { details: { format } })
  }
}

function missing(format: OtherFormat, what: string): LlavaError {
  const how =
    format === 'heif'
      ? 'install the optional package libheif-js (npm install libheif-js; HEVC-coded HEIC, as iPhones save) or sharp (npm install sharp; AV1-coded HEIF) to decode it in-process'
      : 'install the optional package sharp (npm install sharp) to decode it in-process'
  return new LlavaError('ERR_IMAGE_DECODE', `${what} is ${NAMES[format]}, which the built-in decoder does not read: ${how}, or convert the image to PNG or JPEG`, { details: { format } })
}

function failed(err: unknown, format: OtherFormat, what: string, maxPixels: number): LlavaError {
  const message = (err as Error).message ?? String(err)
  if (/pixel limit/i.test(message)) {
    return new LlavaError('ERR_IMAGE_DECODE', `${what} is larger than maxImagePixels (${maxPixels} pixels)`, { cause: err, details: { format } })
  }
  // sharp's prebuilt libvips reads HEIF images coded in AV1 (AVIF), not in HEVC (iPhone HEIC)
  const hint = format === 'heif' && /codec|unsupported|plugin/i.test(message)
    ? ": HEVC-coded HEIC needs libheif-js (npm install libheif-js), as sharp's prebuilt libvips has AV1 only; or convert the photo to JPEG, or export it as 'Most Compatible'"
    : ''
  return new LlavaError('ERR_IMAGE_DECODE', `${what} (${NAMES[format]}) could not be decoded: ${message.split('\n')[0]}${hint}`, { cause: err, details: { format } })
}

/**
 * Decodes `source` with sharp into raw sRGB pixels for the native side: RGB, or RGBA marked to be
 * laid over the background there. Bytes only, never a path: libvips caches loads by file name,
 * and a file could change between the format check and the load.
 */
export async function decodeWithSharp(
  source: Buffer,
  format: OtherFormat,
  what: string,
  reading: { maxPixels: number; orient: boolean; background: [number, number, number]; frame?: number },
): Promise<NativeImageInput> {
  const sharp = loadSharp()
  if (!sharp) throw missing(format, what)
  try {
    await checkFrame(sharp, source, format, what, reading.maxPixels, reading.frame)
    // limitInputPixels is checked from the header, before any pixel is decoded
    let img = open(sharp, source, reading.maxPixels, reading.frame)
    if (reading.orient) img = img.rotate()
    const { data, info } = await img.toColourspace('srgb').raw().toBuffer({ resolveWithObject: true })
    if (info.channels !== 3 && info.channels !== 4) throw new Error(`sharp gave ${info.channels} channels`)
    const layout = info.channels === 4 ? 'rgba' : 'rgb'
    return { kind: 'pixels', data, width: info.width, height: info.height, format: layout, maxPixels: reading.maxPixels, composite: true, background: reading.background }
  } catch (err) {
    throw err instanceof LlavaError ? err : failed(err, format, what, reading.maxPixels)
  }
}

/**
 * The size `decodeWithSharp` would give, turned by the EXIF orientation when `orient`, from the
 * header alone (nothing is decoded): what countTokens needs.
 */
export async function measureWithSharp(source: Buffer, format: OtherFormat, what: string, reading: { maxPixels: number; orient: boolean }): Promise<{ width: number; height: number }> {
  const sharp = loadSharp()
  if (!sharp) throw missing(format, what)
  let meta
  try {
    meta = await open(sharp, source, reading.maxPixels).metadata()
  } catch (err) {
    throw failed(err, format, what, reading.maxPixels)
  }
  if (!meta.width || !meta.height) throw new LlavaError('ERR_IMAGE_DECODE', `${what} (${NAMES[format]}) has no size in its header`, { details: { format } })
  const turned = reading.orient && (meta.orientation ?? 1) >= 5 && (meta.orientation ?? 1) <= 8
  return turned ? { width: meta.height, height: meta.width } : { width: meta.width, height: meta.height }
}
