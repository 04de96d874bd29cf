#!/usr/bin/env node
'use strict'
// Decode cost per image format: one 12-megapixel photo-like picture saved as JPEG and PNG (read by
// the built-in decoder) and as WebP, AVIF and TIFF (read through sharp), each encoded
// with the tiny model (its vision encoder takes well under a millisecond, so the time is reading,
// decoding, turning and resizing). The reference is the built-in JPEG path, measured in the same run.
//   node bench/image-formats.js [--rounds 3]
const sharp = require('sharp')
const { loadModel } = require('llava-native')
const { ensurePair } = require('llava-native/fixtures')

const W = 4000
const H = 3000

function photo() {
  // smooth gradients plus noise: compresses like a photo, not like a flat test card
  const px = Buffer.alloc(W * H * 3)
  let s = 12345
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      s = (s * 1103515245 + 12345) >>> 0
      const n = (s >>> 24) & 15
      const i = (y * W + x) * 3
      px[i] = ((x * 255) / W + n) & 255
      px[i + 1] = ((y * 255) / H + n) & 255
      px[i + 2] = (((x + y) * 128) / (W + H) + 64 + n) & 255
    }
  }
  return px
}

async function main() {
  const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 3
  const raw = photo()
  const img = () => sharp(raw, { raw: { width: W, height: H, channels: 3 } })
  const files = {
    'JPEG (built-in)': await img().jpeg({ quality: 90 }).toBuffer(),
    'PNG (built-in)': await img().png({ compressionLevel: 6 }).toBuffer(),
    'WebP lossy (sharp)': await img().webp({ quality: 90 }).toBuffer(),
    'WebP lossless (sharp)': await img().webp({ lossless: true }).toBuffer(),
    'AVIF (sharp)': await img().avif({ quality: 60 }).toBuffer(),
    'TIFF LZW (sharp)': await img().tiff({ compression: 'lzw' }).toBuffer(),
    'CMYK JPEG (built-in)': await img().toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer(),
  }
  const model = await loadModel({ ...ensurePair('tiny'), threads: 2 })
  const times = Object.fromEntries(Object.keys(files).map((k) => [k, []]))
  for (let r = 0; r < rounds; r++) {
    for (const [name, bytes] of Object.entries(files)) {
      const t = performance.now()
      const e = await model.encodeImage(bytes)
      times[name].push(performance.now() - t)
      await e.dispose()
    }
  }
  await model.dispose()
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const ref = median(times['JPEG (built-in)'])
  console.log(`12-megapixel picture (${W}x${H}), model.encodeImage on the tiny model, median of ${rounds}; ratio = JPEG (built-in) time / this format's time`)
  for (const [name, bytes] of Object.entries(files)) {
    const m = median(times[name])
    console.log(`${name.padEnd(24)} ${(bytes.length / 1e6).toFixed(1).padStart(6)} MB ${m.toFixed(0).padStart(6)} ms  ${(ref / m).toFixed(2)}`)
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
