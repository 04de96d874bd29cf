// Terminates worker_threads at seeded random moments while they load the addon, load the tiny
// pair and run short native calls in a loop. Prints one JSON line; a native abort shows as the
// process dying. Usage: node terminate-loop.js <seed> <iterations>
const { Worker } = require('node:worker_threads')
const { seededRandom } = require('./random')

const seed = Number(process.argv[2] ?? 1)
const iterations = Number(process.argv[3] ?? 50)

const random = seededRandom(seed)

const WORKER = `
  const { parentPort } = require('node:worker_threads')
  const { loadModel } = require('llava-native')
  ;(async () => {
    const model = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1 })
    const s = model.createSession({ contextSize: 512 })
    const pixels = { data: new Uint8Array(16 * 16 * 3).fill(7), width: 16, height: 16, format: 'rgb' }
    parentPort.postMessage('ready')
    for (let i = 0; ; i++) {
      model.tokenize('hello there ' + i)
      await model.countTokens('USER: <image> hi ' + i, { images: [pixels] })
      const e = await model.encodeImage(pixels)
      await s.complete({ prompt: 'USER: <image> x ' + i + '\\nASSISTANT:', images: [e], maxTokens: 2, temperature: 0, onToken: () => {} })
      await e.dispose()
      if (i % 4 === 3) await s.reset()
    }
  })().catch((err) => parentPort.postMessage('error: ' + (err && err.code) + ' ' + (err && err.message)))
`

;(async () => {
  const started = Date.now()
  let readyBeforeTerminate = 0
  const errors = []
  for (let i = 0; i < iterations; i++) {
    const w = new Worker(WORKER, { eval: true, env: process.env })
    let ready = false
    w.on('message', (m) => {
      if (m === 'ready') ready = true
      else if (typeof m === 'string' && m.startsWith('error')) errors.push(m)
    })
    w.on('error', (e) => errors.push('worker error: ' + e.message))
    // Half the time the worker is cut short while it registers the addon or loads the model, half
    // the time while it runs calls.
    const delay = random() < 0.5 ? random() * 150 : 150 + random() * 400
    await new Promise((r) => setTimeout(r, delay))
    if (ready) readyBeforeTerminate++
    await w.terminate()
  }
  console.log(JSON.stringify({ seed, iterations, readyBeforeTerminate, errors, ms: Date.now() - started }))
})()
