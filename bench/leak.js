#!/usr/bin/env node
'use strict'
// Leak check: repeated load/dispose, encode+generate and chat+save+load cycles on the tiny pair,
// and sound encode+generate cycles on the tiny Ultravox pair (with refused sounds between them),
// printing RSS as it goes. Bounded growth after warm-up means nothing leaks per cycle.
//   node bench/leak.js [--loads 200] [--cycles 1000] [--files 1000] [--sounds 300]
const { loadModel } = require('llava-native')
const { ensurePair } = require('llava-native/fixtures')

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}

const mb = () => process.memoryUsage().rss / 1048576

function pixels(seed) {
  const data = new Uint8Array(32 * 32 * 3)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + seed * 13) & 255
  return { data, width: 32, height: 32, format: 'rgb' }
}

async function main() {
  const loads = arg('loads', 200)
  const cycles = arg('cycles', 1000)
  const pair = ensurePair('tiny')
  const report = { loads: [], cycles: [] }

  const base = mb()
  for (let i = 1; i <= loads; i++) {
    const model = await loadModel({ ...pair, threads: 1 })
    const s = model.createSession()
    await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 2, temperature: 0 })
    await model.dispose()
    if (i % Math.max(1, Math.floor(loads / 10)) === 0) {
      global.gc?.()
      report.loads.push({ cycle: i, rssMb: +mb().toFixed(1) })
    }
  }

  const model = await loadModel({ ...pair, threads: 1 })
  const session = model.createSession()
  for (let i = 1; i <= cycles; i++) {
    // A new image every cycle (a different seed), encoded, used, disposed.
    const image = await model.encodeImage(pixels(i))
    await session.complete({ prompt: 'USER: <image>\ndescribe\nASSISTANT:', images: [image], maxTokens: 4, temperature: 0 })
    await image.dispose()
    if (i % Math.max(1, Math.floor(cycles / 10)) === 0) {
      global.gc?.()
      report.cycles.push({ cycle: i, rssMb: +mb().toFixed(1) })
    }
  }

  // Chat (templates render in a worker thread), save, restore into a new session, dispose.
  const files = arg('files', 1000)
  const file = require('node:path').join(require('node:os').tmpdir(), `llava-leak-${process.pid}.bin`)
  report.files = []
  for (let i = 1; i <= files; i++) {
    const a = model.createSession({ contextSize: 512 })
    await a.chat([{ role: 'user', content: `hello ${i}` }], { maxTokens: 4, temperature: 0 })
    await a.save(file)
    const b = model.createSession({ contextSize: 512 })
    await b.load(file)
    await Promise.all([a.dispose(), b.dispose()])
    if (i % Math.max(1, Math.floor(files / 10)) === 0) {
      global.gc?.()
      report.files.push({ cycle: i, rssMb: +mb().toFixed(1) })
    }
  }
  require('node:fs').rmSync(file, { force: true })
  await model.dispose()

  // A new sound every cycle (raw PCM, 2 s), encoded, used, disposed; and a 3 s WAV refused as
  // longer than maxSeconds after the decoder opened it (the path that once leaked the decoder).
  const sounds = arg('sounds', 300)
  const hearing = await loadModel({ ...ensurePair('tiny-ultravox'), threads: 1 })
  const listener = hearing.createSession()
  const tooLong = Buffer.alloc(44 + 96000)
  tooLong.write('RIFF', 0, 'ascii')
  tooLong.writeUInt32LE(36 + 96000, 4)
  tooLong.write('WAVEfmt ', 8, 'ascii')
  tooLong.writeUInt32LE(16, 16)
  tooLong.writeUInt16LE(1, 20)
  tooLong.writeUInt16LE(1, 22)
  tooLong.writeUInt32LE(16000, 24)
  tooLong.writeUInt32LE(32000, 28)
  tooLong.writeUInt16LE(2, 32)
  tooLong.writeUInt16LE(16, 34)
  tooLong.write('data', 36, 'ascii')
  tooLong.writeUInt32LE(96000, 40)
  report.sounds = []
  for (let i = 1; i <= sounds; i++) {
    const samples = new Float32Array(32000)
    for (let k = 0; k < samples.length; k++) samples[k] = 0.3 * Math.sin((k * (i % 50 + 1)) / 40)
    const sound = await hearing.encodeAudio({ samples, sampleRate: 16000 })
    await listener.complete({ prompt: 'USER: <media>what is this\nASSISTANT:', media: [sound], maxTokens: 2, temperature: 0 })
    await sound.dispose()
    await hearing.encodeAudio(tooLong, { maxSeconds: 1 }).catch(() => undefined)
    if (i % Math.max(1, Math.floor(sounds / 10)) === 0) {
      global.gc?.()
      report.sounds.push({ cycle: i, rssMb: +mb().toFixed(1) })
    }
  }
  await hearing.dispose()

  const growth = (rows) => (rows.length > 2 ? +(rows[rows.length - 1].rssMb - rows[1].rssMb).toFixed(1) : 0)
  const summary = {
    startRssMb: +base.toFixed(1),
    loadDispose: { cycles: loads, rss: report.loads, growthAfterWarmupMb: growth(report.loads) },
    encodeGenerate: { cycles, rss: report.cycles, growthAfterWarmupMb: growth(report.cycles) },
    chatSaveLoad: { cycles: files, rss: report.files, growthAfterWarmupMb: growth(report.files) },
    soundEncodeGenerate: { cycles: sounds, rss: report.sounds, growthAfterWarmupMb: growth(report.sounds) },
  }
  console.log(JSON.stringify(summary, null, 2))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
