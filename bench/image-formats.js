#!/usr/bin/env node
'use strict'
// Decode cost per image format: one 12-megapixel photo-like picture saved as JPEG and PNG (read by
// the built-in decoder), as WebP, AVIF and TIFF (read through sharp) and as HEIC (HEVC, read by
// libheif-js; encoded with heif-enc from Debian's libheif-examples, skipped without it), each
// encoded with the tiny model (its vision encoder takes well under a millisecond, so the time is
// reading, decoding, turning and resizing). The reference is the built-in JPEG path, measured in
// the same run. Also shown: the JS thread's worst event-loop delay during the call (every decoder
// runs off it). --hogs N adds N busy processes.
//   node bench/image-formats.js [--rounds 3] [--hogs 0]
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const sharp = require('sharp')
const { loadModel } = require('llava-native')
const { ensurePair } = require('llava-native/fixtures')
const { LagMonitor, eachArg } = require('./lib/common')
const { median, startHogs } = require('./lib/load')

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

/** The picture as HEIC, through a PNG file for heif-enc; undefined without heif-enc. */
function heic(png) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-bench-heic-'))
  try {
    fs.writeFileSync(path.join(dir, 'in.png'), png)
    const r = spawnSync('heif-enc', ['-q', '90', path.join(dir, 'in.png'), '-o', path.join(dir, 'out.heic')], { stdio: 'ignore' })
    return r.status === 0 ? fs.readFileSync(path.join(dir, 'out.heic')) : undefined
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function main() {
  const o = { rounds: 3, hogs: 0 }
  eachArg(process.argv.slice(2), (a, value) => {
    if (a === '--rounds') o.rounds = Number(value())
    else if (a === '--hogs') o.hogs = Number(value())
    else throw new Error(`unknown option '${a}'`)
  })
  const rounds = o.rounds
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
  const heicBytes = heic(await img().png({ compressionLevel: 1 }).toBuffer())
  if (heicBytes) files['HEIC (libheif-js)'] = heicBytes
  else console.log('HEIC skipped: heif-enc (apt install libheif-examples) is not installed')
  const model = await loadModel({ ...ensurePair('tiny'), threads: 2 })
  const hogs = startHogs(o.hogs)
  const times = Object.fromEntries(Object.keys(files).map((k) => [k, []]))
  const gaps = Object.fromEntries(Object.keys(files).map((k) => [k, []]))
  const lag = new LagMonitor(5)
  try {
    for (let r = 0; r < rounds; r++) {
      for (const [name, bytes] of Object.entries(files)) {
        await lag.begin()
        const t = performance.now()
        const e = await model.encodeImage(bytes)
        times[name].push(performance.now() - t)
        gaps[name].push(await lag.take())
        lag.stop()
        await e.dispose()
      }
    }
  } finally {
    await hogs.stop()
    await model.dispose()
  }
  const ref = median(times['JPEG (built-in)'])
  console.log(`12-megapixel picture (${W}x${H}), model.encodeImage on the tiny model, median of ${rounds}, ${o.hogs} busy processes; ratio = JPEG (built-in) time / this format's time; gap = the JS thread's worst event-loop delay`)
  for (const [name, bytes] of Object.entries(files)) {
    const m = median(times[name])
    console.log(`${name.padEnd(24)} ${(bytes.length / 1e6).toFixed(1).padStart(6)} MB ${m.toFixed(0).padStart(6)} ms  ${(ref / m).toFixed(2)}  gap ${Math.max(...gaps[name]).toFixed(0)} ms`)
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
