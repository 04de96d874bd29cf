// Formats the built-in decoder cannot read (WebP, AVIF, HEIF, TIFF) are decoded by
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

const NAMES: Record<OtherFormat, string> = { webp: 'WebP', avif: 'AVIF', heif: 'HEIF/HEIC', tiff: 'TIFF' }

/**
 * Decodes `source` with sharp into raw sRGB pixels for the native side: RGB, or RGBA marked to be
 * laid over the background there. Bytes only, never a path: libvips caches loads by file name,
 * and a file could change between the format check and the load.
 */
export async function decodeWithSharp(
  source: Buffer,
  format: OtherFormat,
  what: string,
  reading: { maxPixels: number; orient: boolean; background: [number, number, number] },
): Promise<NativeImageInput> {
  const sharp = loadSharp()
  if (!sharp) {
    throw new LlavaError(
      'ERR_IMAGE_DECODE',
      `${what} is ${NAMES[format]}, which the built-in decoder does not read: install the optional package sharp (npm install sharp) to decode it in-process, or convert the image to PNG or JPEG`,
      { details: { format } },
    )
  }
  try {
    // limitInputPixels is checked from the header, before any pixel is decoded; animated images give their first frame
    let img = sharp(source, { limitInputPixels: reading.maxPixels, failOn: 'error', animated: false, page: 0, pages: 1 })
    if (reading.orient) img = img.rotate()
    const { data, info } = await img.toColourspace('srgb').raw().toBuffer({ resolveWithObject: true })
    if (info.channels !== 3 && info.channels !== 4) throw new Error(`sharp gave ${info.channels} channels`)
    const format = info.channels === 4 ? 'rgba' : 'rgb'
    return { kind: 'pixels', data, width: info.width, height: info.height, format, maxPixels: reading.maxPixels, composite: true, background: reading.background }
  } catch (err) {
    const message = (err as Error).message ?? String(err)
    if (/pixel limit/i.test(message)) {
      throw new LlavaError('ERR_IMAGE_DECODE', `${what} is larger than maxImagePixels (${reading.maxPixels} pixels)`, { cause: err, details: { format } })
    }
    // sharp's prebuilt libvips reads HEIF images coded in AV1 (AVIF), not in HEVC (iPhone HEIC)
    const hint = format === 'heif' && /codec|unsupported|plugin/i.test(message)
      ? ": HEVC-coded HEIC needs a libvips built with libde265 (sharp's prebuilt one has AV1 only); convert the photo to JPEG, or export it as 'Most Compatible'"
      : ''
    throw new LlavaError('ERR_IMAGE_DECODE', `${what} (${NAMES[format]}) could not be decoded: ${message.split('\n')[0]}${hint}`, { cause: err, details: { format } })
  }
}
