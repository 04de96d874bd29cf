// Which image formats the built-in decoder (stb_image) cannot read, told from the first bytes:
// WebP, AVIF/HEIF (ISO BMFF) and TIFF (classic and BigTIFF). (CMYK/YCCK JPEGs stb reads itself.)
export type OtherFormat = 'webp' | 'avif' | 'heif' | 'tiff'

/** Bytes of a file's start that sniffing needs. */
export const SNIFF_BYTES = 64

const ascii = (b: Uint8Array, at: number, n: number): string => String.fromCharCode(...b.subarray(at, at + n))

const AVIF_BRANDS = new Set(['avif', 'avis'])
const HEIF_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs', 'mif1', 'msf1'])

export function sniffOtherFormat(head: Uint8Array): OtherFormat | undefined {
  if (head.length < 12) return undefined
  if (ascii(head, 0, 4) === 'RIFF' && ascii(head, 8, 4) === 'WEBP') return 'webp'
  // II*\0 / MM\0* (TIFF), II+\0 / MM\0+ (BigTIFF)
  const le = head[0] === 0x49 && head[1] === 0x49 && (head[2] === 0x2a || head[2] === 0x2b) && head[3] === 0
  const be = head[0] === 0x4d && head[1] === 0x4d && head[2] === 0 && (head[3] === 0x2a || head[3] === 0x2b)
  if (le || be) return 'tiff'
  if (ascii(head, 4, 4) === 'ftyp') {
    const size = Math.min(((head[0] << 24) >>> 0) + (head[1] << 16) + (head[2] << 8) + head[3], head.length)
    const brands = [ascii(head, 8, 4)]
    for (let at = 16; at + 4 <= size; at += 4) brands.push(ascii(head, at, 4))
    if (brands.some((b) => AVIF_BRANDS.has(b))) return 'avif'
    if (brands.some((b) => HEIF_BRANDS.has(b))) return 'heif'
    return undefined
  }
  return undefined
}

/** The format a `data:` URL's media type names, when the built-in decoder cannot read it. */
export function otherFormatOfMime(mime: string): OtherFormat | undefined {
  const m = mime.toLowerCase()
  if (m === 'image/webp') return 'webp'
  if (m === 'image/avif') return 'avif'
  if (m === 'image/heic' || m === 'image/heif') return 'heif'
  if (m === 'image/tiff') return 'tiff'
  return undefined
}
