// Runs in a worker_thread: loads the tiny pair and generates, posting the tokens (or, with
// argv 'endless', announcing that an endless generation has started).
const { parentPort } = require('node:worker_threads')
const { loadModel } = require('llava-native')

;(async () => {
  const model = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1 })
  const s = model.createSession()
  const endless = process.argv.includes('endless')
  if (endless) parentPort.postMessage('generating')
  const r = await s.complete({ prompt: 'USER: hello\nASSISTANT:', maxTokens: endless ? 1e7 : 12, temperature: 0 })
  parentPort.postMessage(r.tokens)
  await model.dispose()
})()
