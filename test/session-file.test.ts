// Session files are untrusted input and a crash-safety promise: damaged or hostile files are
// refused with a typed error and leave nothing behind, saves replace only regular files, whole.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { ensurePair } from '../lib/fixtures'
import { LlavaError, type Model, loadModel } from '../lib'
import { greedy, root, tempDir, tinyGemma3Pair, tinyPair } from './helpers/fixtures'
import { codeOf } from './helpers/errors'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const format = require('./helpers/session-file-format') as {
  parse(b: Buffer): { header: Record<string, number | bigint>; stateAt: number }
  checksumOf(b: Buffer): bigint
  reseal(b: Buffer): Buffer
  kvLayout(b: Buffer): { cells: number; firstCellAt: number; cellBytes: number }
  CHECKSUM_AT: number
}

const pair = tinyPair()
const dir = tempDir('llava-session-file-')
const FUZZ_SECONDS = Number(process.env.LLAVA_NATIVE_FUZZ_SECONDS ?? 90)

test('the fuzzer: thousands of damaged and hostile files, no silent wrong answer, no death, no residue', () => {
  const other = ensurePair('tiny', { seed: 7 })
  const r = spawnSync(process.execPath, [path.join(__dirname, 'helpers', 'session-fuzz.js'), String(FUZZ_SECONDS)], {
    cwd: root,
    encoding: 'utf8',
    timeout: (FUZZ_SECONDS + 60) * 1000,
    env: { ...process.env, MODEL: pair.model, MMPROJ: pair.mmproj, OTHER_MODEL: other.model, OTHER_MMPROJ: other.mmproj },
  })
  expect(r.stderr).toBe('')
  expect(r.signal).toBeNull()
  expect(r.status).toBe(0)
  const out = JSON.parse(r.stdout) as {
    cases: number
    total: number
    refused: number
    silentWrong: string[]
    untyped: string[]
    poisoned: string[]
    seat: { refused: number; clean: number; of: number; intactInGroup: boolean }
    expectedEqualsBaseline: boolean
  }
  // The intact file continues exactly as a session that never stopped.
  expect(out.expectedEqualsBaseline).toBe(true)
  expect(out.total).toBeGreaterThanOrEqual(3000)
  expect(out.cases).toBe(out.total)
  expect(out.silentWrong).toEqual([])
  expect(out.untyped).toEqual([])
  expect(out.poisoned).toEqual([])
  expect(out.refused).toBeGreaterThan(out.total * 0.9)
  expect(out.seat).toEqual({ refused: 2, clean: 2, of: 2, intactInGroup: true })
})

test("a sliding-window model's state (two KV caches) restores exactly, alone and in a group", async () => {
  const model = await loadModel({ ...tinyGemma3Pair(), threads: 1 })
  try {
    const image = { data: new Uint8Array(32 * 32 * 3).fill(90), width: 32, height: 32, format: 'rgb' as const }
    const prompt = '<start_of_turn>user\n<image>describe<end_of_turn>\n<start_of_turn>model\n'
    const a = model.createSession({ contextSize: 1024 })
    const first = await a.complete({ prompt, images: [image], maxTokens: 6, ...greedy })
    const file = path.join(dir, 'gemma3.bin')
    await a.save(file)
    const next = `${prompt}${first.text}<end_of_turn>\n<start_of_turn>user\nmore<end_of_turn>\n<start_of_turn>model\n`
    const want = await a.complete({ prompt: next, images: [image], maxTokens: 6, ...greedy })
    const b = model.createSession({ contextSize: 1024 })
    await b.load(file)
    const got = await b.complete({ prompt: next, images: [image], maxTokens: 6, ...greedy })
    expect(got.tokens).toEqual(want.tokens)
    expect(got.timings.reusedTokens).toBeGreaterThan(0)
    const group = model.createSessionGroup({ sessions: 2, contextSize: 1024 })
    const member = group.createSession()
    await member.complete({ prompt, images: [image], maxTokens: 6, ...greedy })
    const groupFile = path.join(dir, 'gemma3-group.bin')
    await member.save(groupFile)
    const other = group.createSession()
    await other.load(groupFile)
    expect(other.cacheInfo().positions).toBe(member.cacheInfo().positions)
  } finally {
    await model.dispose()
  }
})

describe('saving', () => {
  let model: Model

  beforeAll(async () => {
    model = await loadModel({ ...pair, threads: 1 })
  })
  afterAll(async () => {
    await model.dispose()
  })

  async function savedSession(file: string): Promise<void> {
    const s = model.createSession({ contextSize: 512 })
    await s.complete({ prompt: 'USER: hello there\nASSISTANT:', maxTokens: 4, ...greedy })
    await s.save(file)
    await s.dispose()
  }

  test('a file is the same bytes in every process, and its checksum is XXH64 of the rest', async () => {
    const a = path.join(dir, 'a.bin')
    await savedSession(a)
    const child = path.join(dir, 'child.bin')
    execFileSync(
      process.execPath,
      [
        '-e',
        `const { loadModel } = require('llava-native')
        ;(async () => {
          const m = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1 })
          const s = m.createSession({ contextSize: 512 })
          await s.complete({ prompt: 'USER: hello there\\nASSISTANT:', maxTokens: 4, temperature: 0 })
          await s.save(process.env.OUT)
          await m.dispose()
        })()`,
      ],
      { cwd: root, env: { ...process.env, MODEL: pair.model, MMPROJ: pair.mmproj, OUT: child } },
    )
    const bytes = fs.readFileSync(a)
    expect(fs.readFileSync(child).equals(bytes)).toBe(true)
    expect(bytes.readBigUInt64LE(format.CHECKSUM_AT)).toBe(format.checksumOf(bytes))
    expect(format.parse(bytes).header.version).toBe(2)
  })

  test('only a regular file is replaced; a folder, a pipe and a missing folder are refused', async () => {
    const s = model.createSession({ contextSize: 512 })
    await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 2, ...greedy })
    const folder = path.join(dir, 'a-folder')
    fs.mkdirSync(folder)
    expect(await codeOf(s.save(folder))).toBe('ERR_INVALID_ARGUMENT')
    expect(fs.statSync(folder).isDirectory()).toBe(true)
    const fifo = path.join(dir, 'a-fifo')
    execFileSync('mkfifo', [fifo])
    expect(await codeOf(s.save(fifo))).toBe('ERR_INVALID_ARGUMENT')
    expect(fs.statSync(fifo).isFIFO()).toBe(true)
    expect(await codeOf(s.save(path.join(dir, 'no-such-folder', 'x.bin')))).toBe('ERR_FILE_NOT_FOUND')
    // Nothing was left next to them.
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([])
    await s.dispose()
  })

  test("a user's own <path>.tmp is left alone, a symbolic link stays a link", async () => {
    const file = path.join(dir, 'kept.bin')
    fs.writeFileSync(`${file}.tmp`, 'my notes')
    await savedSession(file)
    expect(fs.readFileSync(`${file}.tmp`, 'utf8')).toBe('my notes')
    const target = path.join(dir, 'target.bin')
    fs.writeFileSync(target, 'old')
    const link = path.join(dir, 'link.bin')
    fs.symlinkSync(target, link)
    await savedSession(link)
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true)
    expect(fs.readFileSync(target).subarray(0, 8).toString('latin1')).toBe('LLAVASES')
  })

  test('sessions saving to one path at once all succeed, and the file is whole', async () => {
    const file = path.join(dir, 'shared.bin')
    const a = model.createSession({ contextSize: 512 })
    const b = model.createSession({ contextSize: 512 })
    await a.complete({ prompt: 'USER: one\nASSISTANT:', maxTokens: 3, ...greedy })
    await b.complete({ prompt: 'USER: two two\nASSISTANT:', maxTokens: 3, ...greedy })
    const saves: Array<Promise<void>> = []
    for (let i = 0; i < 30; i++) saves.push(a.save(file), b.save(file))
    const results = await Promise.allSettled(saves)
    expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    const c = model.createSession({ contextSize: 512 })
    await c.load(file)
    expect(c.cacheInfo().positions).toBeGreaterThan(0)
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('shared.bin.'))).toEqual([])
    await Promise.all([a.dispose(), b.dispose(), c.dispose()])
  })

  test('a 1 GiB file is refused from its header, without reading it', async () => {
    const s = model.createSession({ contextSize: 512 })
    const junk = path.join(dir, 'junk.bin')
    fs.writeFileSync(junk, 'not a session')
    fs.truncateSync(junk, 2 ** 30)
    const good = path.join(dir, 'good.bin')
    await savedSession(good)
    // A real header whose sizes do not describe the file.
    const padded = path.join(dir, 'padded.bin')
    fs.copyFileSync(good, padded)
    fs.truncateSync(padded, 2 ** 30)
    const before = process.memoryUsage().rss
    expect(await codeOf(s.load(junk))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(s.load(padded))).toBe('ERR_INVALID_ARGUMENT')
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 2 ** 20)
    await s.dispose()
  })

  test('a refused file leaves the session holding what it held', async () => {
    const s = model.createSession({ contextSize: 512 })
    const prompt = 'USER: tell me a story\nASSISTANT:'
    const first = await s.complete({ prompt, maxTokens: 4, ...greedy })
    const held = s.cacheInfo()
    const bad = path.join(dir, 'bad.bin')
    await savedSession(bad)
    const bytes = fs.readFileSync(bad)
    // Checksum and cells in order, but keys of another type: llama.cpp itself refuses this one.
    const kv = format.kvLayout(bytes)
    const keyTypeAt = kv.firstCellAt + kv.cells * kv.cellBytes + 8
    bytes.writeInt32LE(bytes.readInt32LE(keyTypeAt) === 0 ? 1 : 0, keyTypeAt)
    fs.writeFileSync(bad, format.reseal(bytes))
    const err = await s.load(bad).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(LlavaError)
    expect((err as LlavaError).message).toMatch(/llama.cpp refused .* the session keeps what it held/)
    expect(s.cacheInfo()).toEqual(held)
    const again = await s.complete({ prompt: prompt + first.text + '\nUSER: more\nASSISTANT:', maxTokens: 4, ...greedy })
    expect(again.timings.reusedTokens).toBeGreaterThan(0)
    await s.dispose()
  })
})
