'use strict'
// The benchmark's test image: drawn procedurally (gradients, a checkerboard and a disc) so that it
// needs no file from anywhere, and written as a 24-bit BMP that every system reads from one path.
const fs = require('node:fs')
const path = require('node:path')

/** RGB pixels, width*height*3 bytes, row-major from the top. */
function drawPixels(width, height) {
  const data = new Uint8Array(width * height * 3)
  const cx = width * 0.62
  const cy = height * 0.4
  const r2 = (Math.min(width, height) * 0.22) ** 2
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3
      let r = Math.round((255 * x) / (width - 1))
      let g = Math.round((255 * y) / (height - 1))
      let b = 128
      if (y > height * 0.7 && ((x >> 4) + (y >> 4)) % 2 === 0) r = g = b = 30 // checkerboard floor
      if ((x - cx) ** 2 + (y - cy) ** 2 < r2) {
        r = 240 // a yellow disc
        g = 200
        b = 20
      }
      data[i] = r
      data[i + 1] = g
      data[i + 2] = b
    }
  }
  return data
}

/** Encodes RGB pixels as an uncompressed 24-bit BMP (bottom-up rows, BGR, rows padded to 4 bytes). */
function encodeBmp(rgb, width, height) {
  const rowBytes = (width * 3 + 3) & ~3
  const size = 54 + rowBytes * height
  const buf = Buffer.alloc(size)
  buf.write('BM', 0, 'latin1')
  buf.writeUInt32LE(size, 2)
  buf.writeUInt32LE(54, 10) // pixel data offset
  buf.writeUInt32LE(40, 14) // BITMAPINFOHEADER
  buf.writeInt32LE(width, 18)
  buf.writeInt32LE(height, 22)
  buf.writeUInt16LE(1, 26) // planes
  buf.writeUInt16LE(24, 28) // bits per pixel
  buf.writeUInt32LE(rowBytes * height, 34)
  buf.writeInt32LE(2835, 38) // 72 dpi
  buf.writeInt32LE(2835, 42)
  for (let y = 0; y < height; y++) {
    const row = 54 + (height - 1 - y) * rowBytes
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 3
      const d = row + x * 3
      buf[d] = rgb[s + 2]
      buf[d + 1] = rgb[s + 1]
      buf[d + 2] = rgb[s]
    }
  }
  return buf
}

/** Writes the test image as `<dir>/bench-<w>x<h>.bmp` and returns its path. */
function writeTestImage(dir, width = 336, height = 336) {
  const file = path.join(dir, `bench-${width}x${height}.bmp`)
  fs.writeFileSync(file, encodeBmp(drawPixels(width, height), width, height))
  return file
}

module.exports = { drawPixels, encodeBmp, writeTestImage }
