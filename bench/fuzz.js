#!/usr/bin/env node
'use strict'
// A seeded mutation fuzzer over the model-file validator and the image and sound input paths.
// Each case mutates a valid file (bit flips, byte overwrites with boundary values, truncation,
// block duplication): a text model, a vision or an audio projector (Ultravox), an image (BMP, PNG,
// JPEG) or a sound (WAV, MP3), and feeds it to loadModel, encodeImage or encodeAudio in this
// process; what loads is also used for a short generation. Any crash ends the process, which is the finding.
//   node bench/fuzz.js [--minutes 5] [--seed 1]
// Prints a summary line per 1000 cases and a final JSON summary; a case that throws anything but
// a LlavaError is reported and makes the exit code 1.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const zlib = require('node:zlib')
const { LlavaError, loadModel } = require('llava-native')
const { ensurePair } = require('llava-native/fixtures')

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}

// xorshift32: reproducible from --seed.
function rng(seed) {
  let x = seed >>> 0 || 1
  const next = () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
  return { int: (n) => next() % n, next }
}

const BOUNDARY = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe]

function mutate(src, r, headerBytes) {
  const b = Buffer.from(src)
  const kind = r.int(5)
  const span = Math.max(8, Math.min(b.length, headerBytes))
  const pos = () => r.int(span)
  if (kind === 0) {
    for (let i = 0, n = 1 + r.int(8); i < n; i++) b[pos()] ^= 1 << r.int(8)
  } else if (kind === 1) {
    for (let i = 0, n = 1 + r.int(4); i < n; i++) b[pos()] = BOUNDARY[r.int(BOUNDARY.length)]
  } else if (kind === 2) {
    // a 32- or 64-bit field set to a boundary value
    const p = pos() & ~3
    if (p + 8 <= b.length) {
      const v = [0, 1, 0xffffffff, 0x7fffffff, 0x80000000][r.int(5)]
      b.writeUInt32LE(v >>> 0, p)
      if (r.int(2)) b.writeUInt32LE(r.int(2) ? 0xffffffff : 0, p + 4)
    }
  } else if (kind === 3) {
    return b.subarray(0, r.int(b.length))
  } else {
    const from = pos()
    const len = 1 + r.int(64)
    const to = pos()
    b.copy(b, to, from, Math.min(b.length, from + len))
  }
  return b
}

function testImages() {
  const w = 24
  const h = 20
  const rgb = Buffer.alloc(w * h * 3)
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 31) & 255
  // BMP
  const row = w * 3
  const bmp = Buffer.alloc(54 + row * h)
  bmp.write('BM', 0, 'ascii')
  bmp.writeUInt32LE(bmp.length, 2)
  bmp.writeUInt32LE(54, 10)
  bmp.writeUInt32LE(40, 14)
  bmp.writeInt32LE(w, 18)
  bmp.writeInt32LE(h, 22)
  bmp.writeUInt16LE(1, 26)
  bmp.writeUInt16LE(24, 28)
  rgb.copy(bmp, 54)
  // PNG (CRCs are not checked by the decoder, so a plain zero CRC is fine for a seed)
  const chunk = (type, data) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    return Buffer.concat([len, Buffer.from(type, 'ascii'), data, Buffer.alloc(4)])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr[8] = 8
  ihdr[9] = 2
  const raw = Buffer.alloc((row + 1) * h)
  for (let y = 0; y < h; y++) rgb.copy(raw, y * (row + 1) + 1, y * row, (y + 1) * row)
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ])
  const seeds = [bmp, png]
  const jpeg = path.resolve(__dirname, '..', 'deps', 'llama.cpp', 'tools', 'mtmd', 'test-1.jpeg')
  if (fs.existsSync(jpeg)) seeds.push(fs.readFileSync(jpeg))
  return seeds
}

// A 16-bit mono WAV of two tones (the seed for sound mutations), and llama.cpp's own MP3 clip.
function testSounds() {
  const rate = 16000
  const n = rate * 2
  const data = Buffer.alloc(n * 2)
  for (let i = 0; i < n; i++) data.writeInt16LE(Math.round(12000 * Math.sin((2 * Math.PI * (i < n / 2 ? 440 : 880) * i) / rate)), i * 2)
  const head = Buffer.alloc(44)
  head.write('RIFF', 0, 'ascii')
  head.writeUInt32LE(36 + data.length, 4)
  head.write('WAVEfmt ', 8, 'ascii')
  head.writeUInt32LE(16, 16)
  head.writeUInt16LE(1, 20)
  head.writeUInt16LE(1, 22)
  head.writeUInt32LE(rate, 24)
  head.writeUInt32LE(rate * 2, 28)
  head.writeUInt16LE(2, 32)
  head.writeUInt16LE(16, 34)
  head.write('data', 36, 'ascii')
  head.writeUInt32LE(data.length, 40)
  const seeds = [Buffer.concat([head, data])]
  const mp3 = path.resolve(__dirname, '..', 'deps', 'llama.cpp', 'tools', 'mtmd', 'test-2.mp3')
  if (fs.existsSync(mp3)) seeds.push(fs.readFileSync(mp3).subarray(0, 96 * 1024))
  return seeds
}

async function main() {
  const minutes = arg('minutes', 5)
  const seed = arg('seed', 1)
  const r = rng(seed)
  const pair = ensurePair('tiny')
  const modelBytes = fs.readFileSync(pair.model)
  const mmprojBytes = fs.readFileSync(pair.mmproj)
  const images = testImages()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-fuzz-'))
  // The case being run is always on disk here, so a crash can be reproduced from it.
  const lastCase = path.join(os.tmpdir(), 'llava-fuzz-last-case')
  const good = await loadModel({ ...pair, threads: 1 })
  const session = good.createSession()
  const audioPair = ensurePair('tiny-ultravox')
  const audioMmproj = fs.readFileSync(audioPair.mmproj)
  const hearing = await loadModel({ ...audioPair, threads: 1 })
  const listener = hearing.createSession()
  const sounds = testSounds()

  const stats = { cases: 0, modelCases: 0, mmprojCases: 0, imageCases: 0, audioMmprojCases: 0, soundCases: 0, rejected: {}, accepted: 0, unexpected: [] }
  const deadline = Date.now() + minutes * 60000
  const tally = (code) => {
    stats.rejected[code] = (stats.rejected[code] || 0) + 1
  }

  while (Date.now() < deadline) {
    const which = r.int(7)
    stats.cases++
    try {
      if (which === 0 || which === 1) {
        const isModel = which === 0
        const bytes = mutate(isModel ? modelBytes : mmprojBytes, r, isModel ? 24000 : 4000)
        const file = path.join(dir, isModel ? 'm.gguf' : 'p.gguf')
        fs.writeFileSync(file, bytes)
        fs.writeFileSync(lastCase, bytes)
        fs.writeFileSync(`${lastCase}.kind`, isModel ? 'model' : 'mmproj')
        if (isModel) stats.modelCases++
        else stats.mmprojCases++
        const model = await loadModel(isModel ? { model: file, threads: 1 } : { model: pair.model, mmproj: file, threads: 1 })
        stats.accepted++
        const s = model.createSession()
        const images = isModel ? [] : [{ data: Buffer.alloc(32 * 32 * 3, 90), width: 32, height: 32, format: 'rgb' }]
        await s.complete({ prompt: isModel ? 'USER: hi\nASSISTANT:' : 'USER: <image>\nhi\nASSISTANT:', images, maxTokens: 2, temperature: 0 })
        await model.dispose()
      } else if (which === 4) {
        stats.audioMmprojCases++
        const bytes = mutate(audioMmproj, r, 4000)
        const file = path.join(dir, 'a.gguf')
        fs.writeFileSync(file, bytes)
        fs.writeFileSync(lastCase, bytes)
        fs.writeFileSync(`${lastCase}.kind`, 'audio mmproj')
        const model = await loadModel({ model: audioPair.model, mmproj: file, threads: 1 })
        stats.accepted++
        const s = model.createSession()
        await s.complete({ prompt: 'USER: <media>hi\nASSISTANT:', media: [sounds[0]], maxTokens: 2, temperature: 0 })
        await model.dispose()
      } else if (which === 5) {
        stats.soundCases++
        const bytes = mutate(sounds[r.int(sounds.length)], r, 256)
        fs.writeFileSync(lastCase, bytes)
        fs.writeFileSync(`${lastCase}.kind`, 'sound')
        const e = await hearing.encodeAudio(bytes, { maxSeconds: 60 })
        stats.accepted++
        await listener.complete({ prompt: 'USER: <media>hi\nASSISTANT:', media: [e], maxTokens: 1, temperature: 0 })
        await e.dispose()
      } else {
        stats.imageCases++
        const bytes = mutate(images[r.int(images.length)], r, 4096)
        fs.writeFileSync(lastCase, bytes)
        fs.writeFileSync(`${lastCase}.kind`, 'image')
        const e = await good.encodeImage(bytes)
        stats.accepted++
        await session.complete({ prompt: 'USER: <image>\nhi\nASSISTANT:', images: [e], maxTokens: 1, temperature: 0 })
        await e.dispose()
      }
    } catch (err) {
      if (err instanceof LlavaError) tally(err.code)
      else stats.unexpected.push(String(err && err.stack ? err.stack : err).slice(0, 300))
    }
    if (stats.cases % 1000 === 0) console.error(`fuzz: ${stats.cases} cases, ${stats.accepted} accepted, ${stats.unexpected.length} unexpected`)
  }
  await good.dispose()
  await hearing.dispose()
  fs.rmSync(dir, { recursive: true, force: true })
  console.log(JSON.stringify({ seed, minutes, ...stats }, null, 2))
  if (stats.unexpected.length > 0) process.exit(1)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
