// Broken and hostile image inputs, built in memory. Each case names the code it must reject
// with ('deterministic' cases must either decode to the same pixels every time or be refused).
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import { heifContainer } from '../helpers/heif'
import { pattern, pngChunk, toBmp, toPng } from '../helpers/images'

export interface ImageCase {
  name: string
  make: (dir: string) => unknown
  code: string | 'deterministic'
  /** In a prompt, where it is told apart from sound, when that differs from `code`. */
  promptCode?: string
}

/** A valid PNG header that claims a huge image, with a tiny (wrong) payload. */
function pngBomb(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr[8] = 8
  ihdr[9] = 2
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(64))),
    pngChunk('IEND', Buffer.alloc(0)),
  ])
}

/** A JPEG with a baseline frame header of the given size and no scan. */
function jpegHeader(w: number, h: number): Buffer {
  return Buffer.from([
    0xff, 0xd8, // SOI
    0xff, 0xc0, 0x00, 0x11, 0x08, (h >> 8) & 255, h & 255, (w >> 8) & 255, w & 255, 0x03,
    0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
    0xff, 0xd9, // EOI
  ])
}

function gifHeader(w: number, h: number): Buffer {
  const b = Buffer.from('GIF89a\0\0\0\0\0\0\0', 'latin1')
  b.writeUInt16LE(w, 6)
  b.writeUInt16LE(h, 8)
  return Buffer.concat([b, Buffer.from([0x3b])])
}

function bmpWithSize(w: number, h: number): Buffer {
  const b = toBmp(pattern(4, 4))
  b.writeInt32LE(w, 18)
  b.writeInt32LE(h, 22)
  return b
}

export const JPEG_SAMPLE = path.resolve(__dirname, '..', '..', 'deps', 'llama.cpp', 'tools', 'mtmd', 'test-1.jpeg')

export const IMAGE_CASES: ImageCase[] = [
  { name: 'empty-buffer', make: () => Buffer.alloc(0), code: 'ERR_IMAGE_DECODE' },
  { name: 'text-as-image', make: () => Buffer.from('hello, this is not an image'), code: 'ERR_IMAGE_DECODE' },
  { name: 'png-truncated', make: () => toPng(pattern(64, 64)).subarray(0, 200), code: 'ERR_IMAGE_DECODE' },
  { name: 'png-bomb-65535', make: () => pngBomb(65535, 65535), code: 'ERR_IMAGE_DECODE' },
  { name: 'png-bomb-wide', make: () => pngBomb(1 << 24, 8), code: 'ERR_IMAGE_DECODE' },
  { name: 'jpeg-bomb-65535', make: () => jpegHeader(65535, 65535), code: 'ERR_IMAGE_DECODE' },
  { name: 'jpeg-no-scan', make: () => jpegHeader(16, 16), code: 'deterministic' },
  {
    name: 'jpeg-truncated',
    make: () => {
      const b = fs.readFileSync(JPEG_SAMPLE)
      return b.subarray(0, Math.floor(b.length * 0.6))
    },
    code: 'deterministic',
  },
  { name: 'gif-bomb', make: () => gifHeader(65535, 65535), code: 'ERR_IMAGE_DECODE' },
  { name: 'bmp-huge', make: () => bmpWithSize(1 << 20, 1 << 20), code: 'ERR_IMAGE_DECODE' },
  { name: 'bmp-negative-width', make: () => bmpWithSize(-4, 4), code: 'ERR_IMAGE_DECODE' },
  { name: 'bmp-truncated', make: () => toBmp(pattern(32, 32)).subarray(0, 300), code: 'ERR_IMAGE_DECODE' },
  // HEIF, decoded by libheif-js (a devDependency here): containers built by hand
  { name: 'heif-bomb-60000', make: () => heifContainer({ width: 60000, height: 60000, data: Buffer.alloc(64, 0x42) }), code: 'ERR_IMAGE_DECODE' },
  { name: 'heif-ftyp-only', make: () => heifContainer({ width: 16, height: 16, data: Buffer.alloc(0) }).subarray(0, 24), code: 'ERR_IMAGE_DECODE' },
  { name: 'heif-iloc-past-end', make: () => heifContainer({ width: 16, height: 16, data: Buffer.alloc(64, 0x42), ilocLength: 1 << 30 }), code: 'ERR_IMAGE_DECODE' },
  { name: 'heif-garbage-hevc', make: () => heifContainer({ width: 16, height: 16, data: Buffer.from([0, 0, 0, 60, ...Array.from({ length: 60 }, (_, i) => (i * 97) & 255)]) }), code: 'ERR_IMAGE_DECODE' },
  { name: 'heif-grid-of-itself', make: () => heifContainer({ width: 64, height: 64, itemType: 'grid', gridTiles: [1], data: Buffer.from([0, 0, 0, 0, 0, 63, 0, 63]) }), code: 'ERR_IMAGE_DECODE' },
  { name: 'heif-zero-size', make: () => heifContainer({ width: 0, height: 0, data: Buffer.alloc(64, 0x42) }), code: 'ERR_IMAGE_DECODE' },
  // encodeImage refuses a sound; in a prompt it is a sound, for a projector that hears none
  { name: 'wav-audio-bytes', make: () => Buffer.concat([Buffer.from('RIFF\x24\x00\x00\x00WAVEfmt ', 'latin1'), Buffer.alloc(64)]), code: 'ERR_IMAGE_DECODE', promptCode: 'ERR_NO_AUDIO' },
  { name: 'missing-file', make: (dir) => path.join(dir, 'no-such-image.png'), code: 'ERR_FILE_NOT_FOUND' },
  { name: 'directory-path', make: (dir) => dir, code: 'ERR_FILE_NOT_FOUND' },
  { name: 'dev-null', make: () => '/dev/null', code: 'ERR_FILE_NOT_FOUND' },
  { name: 'raw-wrong-length', make: () => ({ data: new Uint8Array(10), width: 4, height: 4, format: 'rgb' }), code: 'ERR_INVALID_ARGUMENT' },
  { name: 'raw-nan-width', make: () => ({ data: new Uint8Array(48), width: Number.NaN, height: 4, format: 'rgb' }), code: 'ERR_INVALID_ARGUMENT' },
  { name: 'raw-negative-height', make: () => ({ data: new Uint8Array(48), width: 4, height: -4, format: 'rgb' }), code: 'ERR_INVALID_ARGUMENT' },
  { name: 'raw-bad-format', make: () => ({ data: new Uint8Array(64), width: 4, height: 4, format: 'argb' }), code: 'ERR_INVALID_ARGUMENT' },
  { name: 'raw-data-not-bytes', make: () => ({ data: [1, 2, 3], width: 1, height: 1, format: 'rgb' }), code: 'ERR_INVALID_ARGUMENT' },
  { name: 'raw-huge-claim', make: () => ({ data: new Uint8Array(3), width: 65536, height: 65536, format: 'rgb' }), code: 'ERR_INVALID_ARGUMENT' },
  { name: 'number-as-image', make: () => 42, code: 'ERR_INVALID_ARGUMENT' },
  { name: 'null-as-image', make: () => null, code: 'ERR_INVALID_ARGUMENT' },
  { name: 'nul-in-path', make: () => 'photo\0.png', code: 'ERR_INVALID_ARGUMENT' },
]
