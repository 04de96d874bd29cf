// Process-level behaviour: worker_threads, terminating a worker mid-generation, process.exit()
// with native work in flight. Each case runs in a child process so a crash shows as a failure.
import { spawnSync } from 'node:child_process'
import { root, tinyPair } from './helpers/fixtures'

function runScript(source: string): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const pair = tinyPair()
  const r = spawnSync(process.execPath, ['-e', source], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60000,
    env: { ...process.env, MODEL: pair.model, MMPROJ: pair.mmproj },
  })
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr }
}

const GENERATE = `
  const { loadModel } = require('llava-native')
  async function generate(maxTokens, onToken) {
    const model = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1 })
    const s = model.createSession()
    const r = await s.complete({ prompt: 'USER: hello\\nASSISTANT:', maxTokens, temperature: 0, onToken })
    await model.dispose()
    return r.tokens
  }
`

describe('process and threads', () => {
  test('works inside worker_threads, with the same tokens as on the main thread', () => {
    const r = runScript(`${GENERATE}
      const { Worker, isMainThread, parentPort } = require('node:worker_threads')
      ;(async () => {
        const main = await generate(12)
        const workers = [0, 1].map(() => new Worker(require('node:path').resolve('test/helpers/worker-generate.js'), { env: process.env }))
        const results = await Promise.all(workers.map((w) => new Promise((res, rej) => { w.on('message', res); w.on('error', rej) })))
        console.log(JSON.stringify({ main, results }))
      })().catch((e) => { console.error(e); process.exit(1) })
    `)
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const { main, results } = JSON.parse(r.stdout) as { main: number[]; results: number[][] }
    expect(main).toHaveLength(12)
    for (const w of results) expect(w).toEqual(main)
  })

  test('terminating a worker mid-generation leaves the process healthy', () => {
    const r = runScript(`
      const { Worker } = require('node:worker_threads')
      const path = require('node:path')
      ;(async () => {
        for (let i = 0; i < 3; i++) {
          const w = new Worker(path.resolve('test/helpers/worker-generate.js'), { env: process.env, argv: ['endless'] })
          await new Promise((res) => w.on('message', (m) => { if (m === 'generating') res() }))
          await new Promise((r) => setTimeout(r, 10))
          await w.terminate()
        }
        console.log('ok')
      })()
    `)
    expect(r.signal).toBeNull()
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toBe('ok')
  })

  test('terminating workers at random moments (registering the addon, loading, short calls) never takes the process down', () => {
    const pair = tinyPair()
    for (const seed of [1, 2, 3]) {
      const r = spawnSync(process.execPath, [require.resolve('./helpers/terminate-loop.js'), String(seed), '50'], {
        cwd: root,
        encoding: 'utf8',
        timeout: 120000,
        env: { ...process.env, MODEL: pair.model, MMPROJ: pair.mmproj },
      })
      expect(r.stderr).toBe('')
      expect(r.signal).toBeNull()
      expect(r.status).toBe(0)
      const out = JSON.parse(r.stdout) as { iterations: number; readyBeforeTerminate: number; errors: string[] }
      expect(out.iterations).toBe(50)
      expect(out.errors).toEqual([])
      // Both kinds of moment were hit: before the worker was ready, and while it ran calls.
      expect(out.readyBeforeTerminate).toBeGreaterThan(5)
      expect(out.readyBeforeTerminate).toBeLessThan(50)
    }
  })

  test('sessions and embeddings dropped without dispose() are garbage-collected and freed', () => {
    const pair = tinyPair()
    const r = spawnSync(
      process.execPath,
      [
        '--expose-gc',
        '-e',
        `
        const { loadModel } = require('llava-native')
        ;(async () => {
          const model = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1 })
          // Each pair is made and dropped in a scope of its own.
          async function useAndDrop(i) {
            const s = model.createSession({ contextSize: 2048 })
            await s.complete({ prompt: 'USER: hi\\nASSISTANT:', maxTokens: 2, temperature: 0 })
            const e = await model.encodeImage({ data: new Uint8Array(32 * 32 * 3).fill(i), width: 32, height: 32, format: 'rgb' })
            return [new WeakRef(s), new WeakRef(e)]
          }
          const refs = []
          for (let i = 0; i < 40; i++) refs.push(...(await useAndDrop(i)))
          for (let i = 0; i < 10 && refs.some((r) => r.deref()); i++) {
            await new Promise((r) => setTimeout(r, 20))
            global.gc()
          }
          console.log(JSON.stringify({ alive: refs.filter((r) => r.deref()).length, total: refs.length }))
          await model.dispose()
        })().catch((e) => { console.error(e); process.exit(1) })
        `,
      ],
      { cwd: root, encoding: 'utf8', timeout: 60000, env: { ...process.env, MODEL: pair.model, MMPROJ: pair.mmproj } },
    )
    expect(r.stderr).toBe('')
    const { alive, total } = JSON.parse(r.stdout) as { alive: number; total: number }
    expect(total).toBe(80)
    expect(alive).toBe(0)
  })

  test('generations in flight leave libuv\'s thread pool to the application', async () => {
    // More running calls than the pool has threads (4): file-system work must still complete
    // while all of them generate.
    const r = runScript(`
      const { loadModel } = require('llava-native')
      const fs = require('node:fs')
      ;(async () => {
        const model = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1 })
        const ac = new AbortController()
        let finished = 0
        const calls = []
        // Resolves once every call has produced its first token.
        const allStarted = Promise.all([0, 1, 2, 3, 4, 5].map((i) => new Promise((started) => {
          const s = model.createSession({ contextSize: 8192 })
          const p = s.complete({ prompt: 'USER: hello ' + i + '\\nASSISTANT:', maxTokens: 1000000, temperature: 0, signal: ac.signal,
            onToken: () => started() })
          calls.push(p.catch(() => {}).finally(() => finished++))
        })))
        await allStarted
        const read = fs.promises.readFile(require.resolve('llava-native/package.json')).then(() => 'read')
        const timeout = new Promise((r) => setTimeout(() => r('timed out'), 20000).unref())
        const outcome = await Promise.race([read, timeout])
        const runningWhenRead = 6 - finished
        ac.abort()
        await Promise.all(calls)
        console.log(JSON.stringify({ outcome, runningWhenRead }))
        await model.dispose()
      })().catch((e) => { console.error(e); process.exit(1) })
    `)
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual({ outcome: 'read', runningWhenRead: 6 })
  })

  test('process.exit() during generation exits cleanly', () => {
    const r = runScript(`${GENERATE}
      let n = 0
      generate(1000000, () => { if (++n === 20) process.exit(7) })
    `)
    expect(r.signal).toBeNull()
    expect(r.status).toBe(7)
  })
})
