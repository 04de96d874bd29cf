'use strict'
// A host process for the orphan tests: loads an isolated model, prints its child's pid, then
// generates without end (argv[2] 'generate') or exits at once after printing ('exit').
const { loadModel } = require('../..')

;(async () => {
  const model = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1, isolation: 'process' })
  const session = model.createSession()
  const pid = model.pid
  if (process.argv[2] === 'exit') {
    const run = session.complete({ prompt: 'USER: hello\nASSISTANT:', maxTokens: 100000, temperature: 0 })
    run.catch(() => undefined)
    process.stdout.write(`${pid}\n`)
    process.exit(0)
  }
  process.stdout.write(`${pid}\n`)
  for (;;) await session.complete({ prompt: 'USER: hello\nASSISTANT:', maxTokens: 200, temperature: 0 })
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
