// Test images built in memory: one pattern, written as raw pixels and as BMP and PNG files.
import * as zlib from 'node:zlib'

export interface Rgb {
  width: number
  height: number
  rgb: Uint8Array
}

export function pattern(width: number, height: number, seed = 0): Rgb {
  const rgb = new Uint8Array(width * height * 3)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3
      rgb[i] = (x * 8 + seed * 31) & 255
      rgb[i + 1] = (y * 8 + seed * 17) & 255
      rgb[i + 2] = ((x + y) * 4 + seed * 7) & 255
    }
  }
  return { width, height, rgb }
}

export function toRgba(img: Rgb): Uint8Array {
  const out = new Uint8Array(img.width * img.height * 4)
  for (let i = 0; i < img.width * img.height; i++) {
    out[4 * i] = img.rgb[3 * i]
    out[4 * i + 1] = img.rgb[3 * i + 1]
    out[4 * i + 2] = img.rgb[3 * i + 2]
    out[4 * i + 3] = 255
  }
  return out
}

export function toBgra(img: Rgb): Uint8Array {
  const out = toRgba(img)
  for (let i = 0; i < img.width * img.height; i++) {
    const r = out[4 * i]
    out[4 * i] = out[4 * i + 2]
    out[4 * i + 2] = r
  }
  return out
}

/** A 24-bit bottom-up BMP. */
export function toBmp(img: Rgb): Buffer {
  const rowBytes = img.width * 3
  const pad = (4 - (rowBytes % 4)) % 4
  const dataSize = (rowBytes + pad) * img.height
  const buf = Buffer.alloc(54 + dataSize)
  buf.write('BM', 0, 'ascii')
  buf.writeUInt32LE(54 + dataSize, 2)
  buf.writeUInt32LE(54, 10)
  buf.writeUInt32LE(40, 14)
  buf.writeInt32LE(img.width, 18)
  buf.writeInt32LE(img.height, 22)
  buf.writeUInt16LE(1, 26)
  buf.writeUInt16LE(24, 28)
  buf.writeUInt32LE(dataSize, 34)
  let o = 54
  for (let y = img.height - 1; y >= 0; y--) {
    for (let x = 0; x < img.width; x++) {
      const i = (y * img.width + x) * 3
      buf[o++] = img.rgb[i + 2]
      buf[o++] = img.rgb[i + 1]
      buf[o++] = img.rgb[i]
    }
    o += pad
  }
  return buf
}

const crcTable = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

function crc32(bytes: Buffer): number {
  let c = 0xffffffff
  for (const b of bytes) c = crcTable[(c ^ b) & 255] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

/** A PNG chunk with its length and CRC. */
export function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([len, body, crc])
}

/** An 8-bit RGB PNG. */
export function toPng(img: Rgb): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(img.width, 0)
  ihdr.writeUInt32BE(img.height, 4)
  ihdr[8] = 8
  ihdr[9] = 2
  const raw = Buffer.alloc((img.width * 3 + 1) * img.height)
  for (let y = 0; y < img.height; y++) {
    raw[y * (img.width * 3 + 1)] = 0
    Buffer.from(img.rgb.buffer, img.rgb.byteOffset + y * img.width * 3, img.width * 3).copy(raw, y * (img.width * 3 + 1) + 1)
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ])
}

// The picture a viewer shows for stored pixels and an orientation, built from plain turns and
// mirrors as EXIF 2.3 describes each tag (independent of the library's own index arithmetic).
function rotateCW(img: Rgb): Rgb {
  const out = new Uint8Array(img.rgb.length)
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const nx = img.height - 1 - y
      const ny = x
      out.set(img.rgb.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3), (ny * img.height + nx) * 3)
    }
  }
  return { width: img.height, height: img.width, rgb: out }
}
function mirror(img: Rgb): Rgb {
  const out = new Uint8Array(img.rgb.length)
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) out.set(img.rgb.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3), (y * img.width + (img.width - 1 - x)) * 3)
  }
  return { width: img.width, height: img.height, rgb: out }
}
const times = (n: number, f: (i: Rgb) => Rgb, img: Rgb): Rgb => (n === 0 ? img : times(n - 1, f, f(img)))
export function shown(stored: Rgb, orientation: number): Rgb {
  switch (orientation) {
    case 2: return mirror(stored) // mirrored left-right
    case 3: return times(2, rotateCW, stored) // upside down
    case 4: return times(2, rotateCW, mirror(stored)) // mirrored top-bottom
    case 5: return times(3, rotateCW, mirror(stored)) // mirrored along the main diagonal
    case 6: return rotateCW(stored) // stored turned left: turn it right to show
    case 7: return rotateCW(mirror(stored)) // mirrored along the other diagonal
    case 8: return times(3, rotateCW, stored) // stored turned right: turn it left to show
    default: return stored
  }
}

export interface GifFrame {
  x: number
  y: number
  width: number
  height: number
  /** Palette indices, row by row. */
  indices: number[]
  /** 0 unspecified, 1 keep, 2 restore to background (transparent), 3 restore to previous. */
  disposal: 0 | 1 | 2 | 3
}

/**
 * An animated GIF89a with a 128-colour global palette (`palette` first, black after) and frames as
 * given. LZW is written without compression: a clear code every 100 literals keeps codes 8 bits
 * wide, which every decoder reads.
 */
export function toGif(width: number, height: number, palette: Array<[number, number, number]>, frames: GifFrame[]): Buffer {
  const u16 = (v: number): number[] => [v & 255, v >> 8]
  const table = Buffer.alloc(128 * 3)
  palette.forEach((c, i) => table.set(c, i * 3))
  const parts: Buffer[] = [Buffer.from('GIF89a', 'latin1'), Buffer.from([...u16(width), ...u16(height), 0x86, 0, 0]), table]
  for (const f of frames) {
    parts.push(Buffer.from([0x21, 0xf9, 4, f.disposal << 2, ...u16(10), 0, 0]))
    parts.push(Buffer.from([0x2c, ...u16(f.x), ...u16(f.y), ...u16(f.width), ...u16(f.height), 0]))
    const codes: number[] = []
    f.indices.forEach((index, i) => {
      if (i % 100 === 0) codes.push(128) // clear
      codes.push(index)
    })
    codes.push(129) // end
    const packed = Buffer.alloc(codes.length) // 8-bit codes pack one to a byte
    codes.forEach((c, i) => (packed[i] = c))
    parts.push(Buffer.from([7]))
    for (let at = 0; at < packed.length; at += 255) {
      const block = packed.subarray(at, at + 255)
      parts.push(Buffer.from([block.length]), block)
    }
    parts.push(Buffer.from([0]))
  }
  parts.push(Buffer.from([0x3b]))
  return Buffer.concat(parts)
}
