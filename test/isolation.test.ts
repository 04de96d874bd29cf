// isolation: 'process' (and its memoryLimit): llama.cpp in a child process that may die (abort, segfault, SIGKILL as
// from the OOM killer) at any point of its work while the host lives on. The crashes are made by
// the child's test hook (LLAVA_NATIVE_TEST_CRASH, read only by the child when it starts). The
// rest of the API under isolation is covered by the "isolated" jest project, which runs the
// model suites a second time with LLAVA_NATIVE_ISOLATION=process.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { LlavaError, type Model, loadModel } from '../lib'
import { greedy, root, tempDir, tinyPair } from './helpers/fixtures'
import { pattern, toBmp } from './helpers/images'

const SIGNAL = { abort: 'SIGABRT', segv: 'SIGSEGV', kill: 'SIGKILL' } as const
const SHORT = { prompt: 'USER: hello\nASSISTANT:', maxTokens: 8, ...greedy }
// long enough that the crash at 'prefill' lands while the prompt is evaluated
const LONG = { prompt: `USER: ${'the quick brown fox jumps over the lazy dog. '.repeat(60)}\nASSISTANT:`, maxTokens: 64, ...greedy }

async function rejection(p: Promise<unknown> | (() => unknown)): Promise<LlavaError> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    expect(e).toBeInstanceOf(LlavaError)
    return e as LlavaError
  }
  throw new Error('expected a rejection')
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const end = Date.now() + withinMs
  while (Date.now() < end) {
    if (!alive(pid)) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return !alive(pid)
}

/** The private folders of isolated models' connections. */
function connectionDirs(): number {
  return fs.readdirSync(os.tmpdir()).filter((f) => /^llava-native-[A-Za-z0-9]{6}$/.test(f)).length
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length
}

async function crashing<T>(spec: string, fn: () => Promise<T>): Promise<T> {
  process.env.LLAVA_NATIVE_TEST_CRASH = spec
  try {
    return await fn()
  } finally {
    delete process.env.LLAVA_NATIVE_TEST_CRASH
  }
}

describe("isolation: 'process'", () => {
  const pair = tinyPair()
  const dir = tempDir()
  const imageBytes = toBmp(pattern(1024, 768, 3)) // 2.3 MB: gathered in the host and transferred
  let expected: { short: number[]; long: number[]; imageId: string; floats: string }

  beforeAll(async () => {
    const model = await loadModel({ ...pair, threads: 1, isolation: 'none' })
    const s = model.createSession()
    const short = (await s.complete(SHORT)).tokens
    s.dispose()
    const long = (await model.createSession().complete(LONG)).tokens
    const e = await model.encodeImage(imageBytes)
    expected = { short, long, imageId: e.id, floats: createHash('sha256').update(e.toFloat32Array()).digest('hex') }
    await model.dispose()
  })

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  test('the model runs in a child process, with the same answers and embeddings as in-process', async () => {
    const model = await loadModel({ ...pair, threads: 1, isolation: 'process' })
    try {
      expect(model.isolation).toBe('process')
      expect(model.pid).not.toBe(process.pid)
      expect(alive(model.pid!)).toBe(true)
      const e = await model.encodeImage(imageBytes)
      expect(e.id).toBe(expected.imageId)
      expect(createHash('sha256').update(e.toFloat32Array()).digest('hex')).toBe(expected.floats)
      expect((await model.createSession().complete(SHORT)).tokens).toEqual(expected.short)
      expect((await model.createSession().complete(LONG)).tokens).toEqual(expected.long)
    } finally {
      const pid = model.pid!
      await model.dispose()
      expect(alive(pid)).toBe(false)
    }
    const local = await loadModel({ ...pair, threads: 1 })
    expect(local.isolation).toBe('none')
    expect(local.pid).toBe(process.pid)
    const before = local.createSession()
    await local.reload() // in-process too: sessions go, the weights are loaded again
    expect((await rejection(before.complete(SHORT))).code).toBe('ERR_DISPOSED')
    expect((await local.createSession().complete(SHORT)).tokens).toEqual(expected.short)
    await local.dispose()
  })

  test('a crash while loading rejects the load with ERR_PROCESS_EXITED; the next load works', async () => {
    for (const how of ['abort', 'segv', 'kill'] as const) {
      const err = await crashing(`load:${how}`, () => rejection(loadModel({ ...pair, threads: 1, isolation: 'process' })))
      expect(err.code).toBe('ERR_PROCESS_EXITED')
      expect(err.details?.signal).toBe(SIGNAL[how])
    }
    const model = await loadModel({ ...pair, threads: 1, isolation: 'process' })
    expect((await model.createSession().complete(SHORT)).tokens).toEqual(expected.short)
    await model.dispose()
  })

  const POINTS = ['encode', 'prefill', 'generate', 'save'] as const
  for (const point of POINTS) {
    test(`a crash during ${point} (abort, segfault, kill): pending calls reject, the host lives, reload() brings the model back`, async () => {
      for (const how of ['abort', 'segv', 'kill'] as const) {
        const crashes: LlavaError[] = []
        const model = await crashing(`${point}:${how}`, () => loadModel({ ...pair, threads: 1, isolation: 'process', onCrash: (e) => crashes.push(e) }))
        const pid = model.pid!
        const s = model.createSession()
        const other = model.createSession()
        let pending: Promise<unknown>[]
        if (point === 'encode') pending = [model.encodeImage(imageBytes)]
        else if (point === 'save') {
          await s.complete(SHORT)
          pending = [s.save(path.join(dir, `${how}.session`))]
        } else pending = [s.complete(LONG), other.complete(LONG)]
        const errors = await Promise.all(pending.map((p) => rejection(p)))
        for (const err of errors) {
          expect(err.code).toBe('ERR_PROCESS_EXITED')
          expect(err.details?.signal).toBe(SIGNAL[how])
          expect(err.message).toMatch(/reload/)
        }
        expect(crashes).toEqual([errors[0]])
        expect(await gone(pid, 2000)).toBe(true)
        // unusable until reloaded: everything says why
        expect((await rejection(() => model.createSession())).code).toBe('ERR_PROCESS_EXITED')
        expect((await rejection(() => model.tokenize('hello'))).code).toBe('ERR_PROCESS_EXITED')
        expect((await rejection(s.complete(SHORT))).code).toBe('ERR_PROCESS_EXITED')
        expect((await rejection(() => s.cacheInfo())).code).toBe('ERR_PROCESS_EXITED')
        await model.reload()
        expect(model.pid).not.toBe(pid)
        expect((await rejection(s.complete(SHORT))).code).toBe('ERR_DISPOSED') // the old session went with the old process
        expect((await model.createSession().complete(SHORT)).tokens).toEqual(expected.short)
        if (point === 'encode') expect((await model.encodeImage(imageBytes)).id).toBe(expected.imageId)
        expect(crashes).toHaveLength(1)
        await model.dispose()
      }
    })
  }

  test('reload() runs one at a time; calls meanwhile are refused; dispose during a reload ends both', async () => {
    const model = await loadModel({ ...pair, threads: 1, isolation: 'process' })
    const first = model.reload()
    expect((await rejection(model.reload())).code).toBe('ERR_BUSY')
    expect((await rejection(() => model.createSession())).code).toBe('ERR_BUSY')
    await first
    expect((await model.createSession().complete(SHORT)).tokens).toEqual(expected.short)
    const again = model.reload()
    const disposed = model.dispose()
    expect(['ERR_DISPOSED']).toContain((await rejection(again)).code)
    await disposed
    expect(model.pid === undefined || !alive(model.pid)).toBe(true)
  })

  test('100 crash and reload cycles leave no process and no file descriptor behind', async () => {
    const before = openFds()
    const dirs = connectionDirs()
    const pids: number[] = []
    process.env.LLAVA_NATIVE_TEST_CRASH = 'prefill:kill'
    const model = await loadModel({ ...pair, threads: 1, isolation: 'process' })
    try {
      for (let i = 0; i < 100; i++) {
        pids.push(model.pid!)
        expect((await rejection(model.createSession().complete(SHORT))).code).toBe('ERR_PROCESS_EXITED')
        await model.reload()
      }
    } finally {
      delete process.env.LLAVA_NATIVE_TEST_CRASH
    }
    await model.reload()
    expect((await model.createSession().complete(SHORT)).tokens).toEqual(expected.short)
    pids.push(model.pid!)
    await model.dispose()
    expect(pids.filter(alive)).toEqual([])
    expect(openFds()).toBeLessThanOrEqual(before)
    expect(connectionDirs()).toBe(dirs)
  }, 300000)

  test('dispose ends the child; one that hangs (SIGSTOP) is killed after the grace period', async () => {
    const model = await loadModel({ ...pair, threads: 1, isolation: 'process' })
    const pid = model.pid!
    const s = model.createSession()
    const run = s.complete({ ...LONG, maxTokens: 100000 })
    await new Promise((r) => setTimeout(r, 100))
    process.kill(pid, 'SIGSTOP')
    const start = Date.now()
    await model.dispose()
    expect(Date.now() - start).toBeLessThan(15000)
    expect(alive(pid)).toBe(false)
    const err = await rejection(run)
    expect(['ERR_DISPOSED', 'ERR_PROCESS_EXITED']).toContain(err.code)
  }, 60000)

  for (const how of ['SIGKILL of the host', 'process.exit() of the host'] as const) {
    test(`${how} takes the model's process along`, async () => {
      const dirs = connectionDirs()
      const host = spawn(process.execPath, [path.join(root, 'test/helpers/isolated-host.js'), how.startsWith('SIGKILL') ? 'generate' : 'exit'], {
        env: { ...process.env, MODEL: pair.model, MMPROJ: pair.mmproj },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      const pid = await new Promise<number>((resolve, reject) => {
        let out = ''
        host.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('\n')) resolve(Number(out.trim()))
        })
        host.on('exit', () => (out.includes('\n') ? undefined : reject(new Error('the host exited before printing'))))
      })
      expect(pid).toBeGreaterThan(0)
      if (how.startsWith('SIGKILL')) {
        await new Promise((r) => setTimeout(r, 300)) // mid-generation
        host.kill('SIGKILL')
      }
      expect(await gone(pid, 5000)).toBe(true)
      expect(connectionDirs()).toBe(dirs) // its private folder too
    })
  }

  test("an embedding dropped without dispose() is freed in the child when it is garbage-collected", () => {
    const script = `
      const { loadModel } = require('.')
      ;(async () => {
        const model = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1, isolation: 'process' })
        const image = { data: new Uint8Array(32 * 32 * 3).fill(90), width: 32, height: 32, format: 'rgb' }
        const kept = await model.encodeImage(image)
        const again = await model.encodeImage(image) // an alive embedding of the same pixels is reused
        const out = [again.reused]
        kept.dispose(); again.dispose()
        await (async () => { await model.encodeImage(image) })() // dropped
        for (let i = 0; i < 10; i++) { global.gc(); await new Promise((r) => setTimeout(r, 20)) }
        out.push((await model.encodeImage(image)).reused)
        console.log(JSON.stringify(out))
        await model.dispose()
      })()
    `
    const r = require('node:child_process').spawnSync(process.execPath, ['--expose-gc', '-e', script], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, MODEL: pair.model, MMPROJ: pair.mmproj },
      timeout: 60000,
    })
    expect(r.status).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual([true, false])
  })

  test('memoryLimit caps the model process: a context beyond it is a typed error there, the model goes on', async () => {
    const SESSION = { contextSize: 1 << 20 } // a 512 MiB KV cache on the tiny pair
    const free = await loadModel({ ...pair, threads: 1, isolation: 'process' })
    const big = free.createSession(SESSION)
    expect((await big.complete(SHORT)).tokens).toEqual(expected.short) // fits without the limit
    await free.dispose()
    const limited = await loadModel({ ...pair, threads: 1, isolation: 'process', memoryLimit: 384 * 2 ** 20 })
    const pid = limited.pid!
    expect((await rejection(limited.createSession(SESSION).complete(SHORT))).code).toBe('ERR_OUT_OF_MEMORY')
    expect(limited.pid).toBe(pid)
    expect((await limited.createSession().complete(SHORT)).tokens).toEqual(expected.short)
    await limited.dispose()
    expect((await rejection(loadModel({ ...pair, memoryLimit: 2 ** 30 }))).code).toBe('ERR_INVALID_ARGUMENT') // in-process
    expect((await rejection(loadModel({ ...pair, isolation: 'process', memoryLimit: 1024 }))).code).toBe('ERR_INVALID_ARGUMENT')
  })

  test('isolation is validated, and LLAVA_NATIVE_ISOLATION sets the default', async () => {
    expect((await rejection(loadModel({ ...pair, isolation: 'thread' as never }))).code).toBe('ERR_INVALID_ARGUMENT')
    process.env.LLAVA_NATIVE_ISOLATION = 'process'
    let model: Model | undefined
    try {
      model = await loadModel({ ...pair, threads: 1 })
      expect(model.isolation).toBe('process')
      process.env.LLAVA_NATIVE_ISOLATION = 'separate'
      expect((await rejection(loadModel({ ...pair, threads: 1 }))).message).toMatch(/LLAVA_NATIVE_ISOLATION/)
    } finally {
      delete process.env.LLAVA_NATIVE_ISOLATION
      await model?.dispose()
    }
  })
})
