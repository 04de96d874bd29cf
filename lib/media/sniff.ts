// Which image formats the built-in decoder (stb_image) cannot read, told from the first bytes:
// WebP, AVIF/HEIF (ISO BMFF), TIFF, and JPEGs with four colour components (CMYK/YCCK, from
// scanners and print workflows, which stb refuses).
export type OtherFormat = 'webp' | 'avif' | 'heif' | 'tiff' | 'cmyk-jpeg'

/** Bytes of a file's start that sniffing needs (a JPEG's EXIF/ICC segments come before its frame header). */
export const SNIFF_BYTES = 256 * 1024

const ascii = (b: Uint8Array, at: number, n: number): string => String.fromCharCode(...b.subarray(at, at + n))

const AVIF_BRANDS = new Set(['avif', 'avis'])
const HEIF_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs', 'mif1', 'msf1'])

function jpegComponents(b: Uint8Array): number | undefined {
  let i = 2
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) return undefined
    const marker = b[i + 1]
    if (marker === 0xff) {
      i++ // fill byte
      continue
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2
      continue
    }
    const len = (b[i + 2] << 8) | b[i + 3]
    // SOF0-3, 5-7, 9-11, 13-15: precision, height, width, then the number of components
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return b[i + 9]
    if (marker === 0xda || len < 2) return undefined
    i += 2 + len
  }
  return undefined
}

export function sniffOtherFormat(head: Uint8Array): OtherFormat | undefined {
  if (head.length < 12) return undefined
  if (ascii(head, 0, 4) === 'RIFF' && ascii(head, 8, 4) === 'WEBP') return 'webp'
  if ((head[0] === 0x49 && head[1] === 0x49 && head[2] === 0x2a && head[3] === 0) || (head[0] === 0x4d && head[1] === 0x4d && head[2] === 0 && head[3] === 0x2a)) {
    return 'tiff'
  }
  if (ascii(head, 4, 4) === 'ftyp') {
    const size = Math.min(((head[0] << 24) >>> 0) + (head[1] << 16) + (head[2] << 8) + head[3], head.length)
    const brands = [ascii(head, 8, 4)]
    for (let at = 16; at + 4 <= size; at += 4) brands.push(ascii(head, at, 4))
    if (brands.some((b) => AVIF_BRANDS.has(b))) return 'avif'
    if (brands.some((b) => HEIF_BRANDS.has(b))) return 'heif'
    return undefined
  }
  if (head[0] === 0xff && head[1] === 0xd8 && jpegComponents(head) === 4) return 'cmyk-jpeg'
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
