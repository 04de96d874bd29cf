// The session-file fuzzer: saves a session of the tiny pair, then loads thousands of damaged and
// hostile variants of the file. Every load must either be refused with a typed error, leaving the
// session answering exactly as before, or succeed and continue exactly as the intact file does.
// Runs in a child process (a native death shows as the process dying); prints one JSON line.
//   node session-fuzz.js <seconds>     (MODEL, MMPROJ, OTHER_MODEL, OTHER_MMPROJ in the environment)
'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { loadModel, LlavaError } = require('llava-native')
const { parse, reseal, kvLayout, HEADER } = require('./session-file-format')
const { seededRandom } = require('./random')

const budgetMs = Number(process.argv[2] ?? 30) * 1000
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-fuzz-'))
const greedy = { temperature: 0, maxTokens: 6 }
const PROMPT = 'USER: <image>\nWhat is in the picture?\nASSISTANT:'
const NEXT = PROMPT + ' A picture.\nUSER: And the colours?\nASSISTANT:'

const random = seededRandom(12345)
const randInt = (n) => Math.floor(random() * n)

;(async () => {
  const started = Date.now()
  const model = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1 })
  const image = { data: new Uint8Array(24 * 24 * 3).map((_, i) => (i * 7) % 251), width: 24, height: 24, format: 'rgb' }

  // The intact file, and what a session restored from it (or one that never stopped) answers.
  const saver = model.createSession({ contextSize: 512 })
  await saver.complete({ prompt: PROMPT, images: [image], ...greedy })
  const goodFile = path.join(dir, 'good.bin')
  await saver.save(goodFile)
  const good = fs.readFileSync(goodFile)
  const expected = (await saver.complete({ prompt: NEXT, images: [image], ...greedy })).tokens.join(',')
  const fresh = model.createSession({ contextSize: 512 })
  const baseline = (await fresh.complete({ prompt: NEXT, images: [image], ...greedy })).tokens.join(',')
  await fresh.dispose()

  const cases = []
  const add = (name, bytes) => cases.push({ name, bytes })
  const { header } = parse(good)
  const kv = kvLayout(good)

  // Hostile files with a correct checksum: what a crafted file can do once it gets past it.
  const sealed = (name, edit) => {
    const b = Buffer.from(good)
    edit(b)
    add(`sealed: ${name}`, reseal(b))
  }
  for (const n of [0xffffffff, 0xf0000000, 16777216, 513, kv.cells + 1, kv.cells - 1, 0]) {
    sealed(`cell count ${n}`, (b) => b.writeUInt32LE(n >>> 0, kv.cellCountAt))
  }
  const cellAt = (i) => kv.firstCellAt + i * kv.cellBytes
  for (const pos of [-7, -1, 0x7fffffff, header.nPast, header.nPast + 1000]) {
    sealed(`first cell at position ${pos}`, (b) => b.writeInt32LE(pos, cellAt(0)))
    sealed(`last cell at position ${pos}`, (b) => b.writeInt32LE(pos, cellAt(kv.cells - 1)))
  }
  sealed('two cells at one position', (b) => b.writeInt32LE(b.readInt32LE(cellAt(1)), cellAt(0)))
  for (const n of [0, 2, 0xffffffff]) sealed(`cell in ${n} sequences`, (b) => b.writeUInt32LE(n >>> 0, cellAt(0) + 4))
  for (const n of [0, 2, 0xffffffff]) sealed(`${n} streams`, (b) => b.writeUInt32LE(n >>> 0, kv.streamsAt))
  for (const n of [0, header.nPast - 1, header.nPast + 1, 0x7fffffff, -1]) sealed(`header positions ${n}`, (b) => b.writeInt32LE(n, 52))
  for (const n of [0n, BigInt(header.items) + 1n, 0xffffffffffffffffn]) sealed(`header items ${n}`, (b) => b.writeBigUInt64LE(n, 56))
  for (const n of [0n, 1n << 40n]) sealed(`header state bytes ${n}`, (b) => b.writeBigUInt64LE(n, 72))
  sealed('record token outside the vocabulary', (b) => b.writeInt32LE(999999, HEADER + 8))
  sealed('record item of 0 positions', (b) => b.writeInt32LE(0, HEADER + 8 + 4))
  sealed('another fingerprint', (b) => b.writeBigUInt64LE(header.textFingerprint ^ 1n, 12))
  sealed('another projector', (b) => b.writeBigUInt64LE(header.projectorFingerprint ^ 1n, 20))
  sealed('version 1', (b) => b.writeUInt32LE(1, 8))
  sealed('state magic', (b) => (b[kv.streamsAt - 8] ^= 0xff))
  for (let i = 0; i < 40; i++) {
    // Random values in the KV cells' metadata (positions, sequence counts and ids).
    const at = cellAt(randInt(kv.cells)) + randInt(kv.cellBytes)
    sealed(`cell byte ${at - kv.firstCellAt} = random`, (b) => (b[at] = randInt(256)))
  }

  // Damage as storage and crashes make it: truncation, flipped bits, overwritten runs.
  for (let n = 0; n <= HEADER + 16; n++) add(`truncated to ${n}`, good.subarray(0, n))
  for (let i = 0; i < 60; i++) {
    const n = HEADER + 8 + randInt(good.length - HEADER - 8)
    add(`truncated to ${n}`, good.subarray(0, n))
  }
  add('one byte longer', Buffer.concat([good, Buffer.from([0])]))
  const flip = (at, mask) => {
    const b = Buffer.from(good)
    b[at] ^= mask
    add(`byte ${at} ^ ${mask}`, b)
  }
  // Every byte of the header, checksum and record, then bytes of the state at random.
  for (let at = 0; at < parse(good).stateAt; at++) {
    flip(at, 0x01)
    flip(at, 0x80)
  }
  while (cases.length < 1500) flip(parse(good).stateAt + randInt(header.stateBytes), 1 << randInt(8))
  for (let i = 0; i < 1500; i++) {
    const b = Buffer.from(good)
    const k = 2 + randInt(15)
    for (let j = 0; j < k; j++) b[randInt(b.length)] = randInt(256)
    add(`${k} random bytes`, b)
  }

  // Saved by another model of exactly the same shape (other weights).
  if (process.env.OTHER_MODEL) {
    const other = await loadModel({ model: process.env.OTHER_MODEL, mmproj: process.env.OTHER_MMPROJ, threads: 1 })
    const s = other.createSession({ contextSize: 512 })
    await s.complete({ prompt: PROMPT, images: [image], ...greedy })
    const otherFile = path.join(dir, 'other.bin')
    await s.save(otherFile)
    add('saved by another model of the same shape', fs.readFileSync(otherFile))
    await other.dispose()
  }

  const out = { cases: 0, refused: 0, acceptedSame: 0, silentWrong: [], untyped: [], codes: {}, checked: 0, poisoned: [], seat: null, ms: 0 }
  out.stateBytes = header.stateBytes
  out.expectedEqualsBaseline = expected === baseline

  const session = model.createSession({ contextSize: 512 })
  const file = path.join(dir, 'case.bin')
  for (const c of cases) {
    if (Date.now() - started > budgetMs) break
    out.cases++
    fs.writeFileSync(file, c.bytes)
    let loaded = false
    try {
      await session.load(file)
      loaded = true
    } catch (err) {
      if (!(err instanceof LlavaError)) out.untyped.push(`${c.name}: ${err && err.message}`)
      else out.codes[err.code] = (out.codes[err.code] ?? 0) + 1
    }
    const answer = (await session.complete({ prompt: NEXT, images: [image], ...greedy })).tokens.join(',')
    if (loaded) {
      // A file that loads must continue exactly as the intact one.
      if (answer === expected) out.acceptedSame++
      else out.silentWrong.push(c.name)
    } else {
      out.refused++
      out.checked++
      // A refused file leaves nothing behind: the session answers as it would have anyway.
      if (answer !== baseline) out.poisoned.push(c.name)
    }
    if (out.cases % 50 === 0) await session.reset()
  }

  // Hostile files loaded into a group session, where a file is rewritten to the group's stream
  // count: refused, and no residue for the next session given that seat.
  const negative = Buffer.from(good)
  negative.writeInt32LE(-7, cellAt(0))
  const appended = Buffer.concat([good, Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4])])
  appended.writeBigUInt64LE(BigInt(header.stateBytes + 8), 72)
  const group = model.createSessionGroup({ sessions: 2, contextSize: 512 })
  out.seat = { refused: 0, clean: 0, of: 0 }
  for (const hostile of [negative, appended]) {
    out.seat.of++
    const first = group.createSession()
    fs.writeFileSync(file, reseal(hostile))
    if (await first.load(file).then(() => false, (e) => e instanceof LlavaError)) out.seat.refused++
    await first.dispose()
    const next = group.createSession()
    if ((await next.complete({ prompt: NEXT, images: [image], ...greedy })).tokens.join(',') === baseline) out.seat.clean++
    await next.dispose()
  }
  // The intact file restores into a group session too.
  const member = group.createSession()
  await member.load(goodFile)
  out.seat.intactInGroup = (await member.complete({ prompt: NEXT, images: [image], ...greedy })).tokens.join(',') === expected

  out.ms = Date.now() - started
  out.total = cases.length
  console.log(JSON.stringify(out))
  await model.dispose()
  fs.rmSync(dir, { recursive: true, force: true })
})().catch((err) => {
  console.error(err)
  process.exit(1)
})
