// Hostile and careless input, round two: grammars and chat templates that would overflow the stack
// or never finish, limits that would wrap or exhaust the machine, text that tokenizes slowly, big
// images that would stall the event loop, embeddings disposed under a running call. Each is
// refused with a typed error (or simply works), the process lives, and the next call is right.
import { spawnSync } from 'node:child_process'
import * as os from 'node:os'
import { LlavaError, type Model, loadModel } from '../lib'
import { greedy, root, tinyPair } from './helpers/fixtures'
import { codeOf } from './helpers/errors'
import { worstLag } from './helpers/event-loop'
import { pattern, toBmp } from './helpers/images'

const pair = tinyPair()

/** Runs `body` (an async function body using `model`) in a child process: a crash is a failure, not the end of the suite. */
function inChild(body: string): { status: number | null; signal: string | null; out: unknown; stderr: string } {
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      `const { loadModel, LlavaError } = require('llava-native')
      ;(async () => {
        const model = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1 })
        const out = await (async () => { ${body} })()
        console.log(JSON.stringify(out))
        await model.dispose()
      })().catch((e) => { console.error(e); process.exit(1) })`,
    ],
    { cwd: root, encoding: 'utf8', timeout: 120000, env: { ...process.env, MODEL: pair.model, MMPROJ: pair.mmproj } },
  )
  let out: unknown
  try {
    out = JSON.parse(r.stdout)
  } catch {
    out = r.stdout
  }
  return { status: r.status, signal: r.signal, out, stderr: r.stderr }
}

describe('grammars that would overflow the stack or never finish', () => {
  const CASES: Array<[string, string]> = [
    ['20,000 nested groups', `'root ::= ' + '('.repeat(20000) + '"a"' + ')'.repeat(20000)`],
    ['a chain of 100,000 rules', `'root ::= r0\\n' + Array.from({ length: 100000 }, (_, i) => 'r' + i + ' ::= ' + (i < 99999 ? 'r' + (i + 1) : '"a"')).join('\\n')`],
    ['20,000 chained rules with terminals', `'root ::= r0\\n' + Array.from({ length: 20000 }, (_, i) => 'r' + i + ' ::= "x" ' + (i < 19999 ? 'r' + (i + 1) : '"a"')).join('\\n')`],
    ['100,000 alternatives', `'root ::= ' + Array.from({ length: 100000 }, (_, i) => '"w' + i + '"').join(' | ')`],
    ['a token id outside the vocabulary', `'root ::= <[99999]>'`],
    ['a token id beyond 32 bits', `'root ::= <[99999999999999999999]>'`],
  ]

  test.each(CASES)('%s: ERR_GRAMMAR at once, in a process that lives on', (_name, source) => {
    const r = inChild(`
      const s = model.createSession({ contextSize: 512 })
      const t0 = Date.now()
      const code = await s.complete({ prompt: 'USER: hi\\nASSISTANT:', maxTokens: 4, temperature: 0, grammar: ${source} })
        .then(() => 'resolved', (e) => e instanceof LlavaError ? e.code : 'untyped ' + e)
      const ms = Date.now() - t0
      const next = await s.complete({ prompt: 'USER: hi\\nASSISTANT:', maxTokens: 4, temperature: 0, grammar: 'root ::= "yes" | "no"' })
      return { code, ms, next: next.text }
    `)
    expect(r.stderr).toBe('')
    expect(r.signal).toBeNull()
    const out = r.out as { code: string; ms: number; next: string }
    expect(out.code).toBe('ERR_GRAMMAR')
    expect(out.ms).toBeLessThan(5000)
    expect(['yes', 'no']).toContain(out.next.trim())
  })

  test('grammars within the limits still work: 2,000 chained rules, 64 nested groups', async () => {
    const model = await loadModel({ ...pair, threads: 1 })
    const s = model.createSession({ contextSize: 512 })
    const chain = 'root ::= r0\n' + Array.from({ length: 2000 }, (_, i) => `r${i} ::= ${i < 1999 ? `r${i + 1}` : '"ok"'}`).join('\n')
    expect((await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 3, grammar: chain, ...greedy })).text).toBe('ok')
    const nested = 'root ::= ' + '('.repeat(64) + '"deep"' + ')'.repeat(64)
    expect((await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 8, grammar: nested, ...greedy })).text).toBe('deep')
    await model.dispose()
  })
})

describe('with the tiny model', () => {
  let model: Model

  beforeAll(async () => {
    model = await loadModel({ ...pair, threads: 1, chatTemplateTimeoutMs: 500 })
  })
  afterAll(async () => {
    await model.dispose()
  })

  const LOOP = '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{{ messages[0].content }}'

  test('a chat template that loops without end is stopped, off the JS thread, and the next chat works', async () => {
    const s = model.createSession({ contextSize: 512 })
    let ticks = 0
    const timer = setInterval(() => ticks++, 10)
    const t0 = Date.now()
    const code = await codeOf(s.chat([{ role: 'user', content: 'hi' }], { chatTemplate: LOOP, maxTokens: 2 }))
    const ms = Date.now() - t0
    clearInterval(timer)
    expect(code).toBe('ERR_CHAT_TEMPLATE')
    expect(ms).toBeLessThan(5000)
    // The event loop kept turning while the template ran.
    expect(ticks).toBeGreaterThan(10)
    expect(await codeOf(model.countTokens([{ role: 'user', content: 'hi' }], { chatTemplate: LOOP }))).toBe('ERR_CHAT_TEMPLATE')
    const ok = await s.chat([{ role: 'user', content: 'hi' }], { maxTokens: 3, ...greedy })
    expect(ok.tokens).toHaveLength(3)
    await s.dispose()
  })

  test('calls made while a runaway template renders are not held up by it', async () => {
    const a = model.createSession({ contextSize: 512 })
    const b = model.createSession({ contextSize: 512 })
    const [bad, good] = await Promise.allSettled([
      a.chat([{ role: 'user', content: 'hi' }], { chatTemplate: LOOP, maxTokens: 2 }),
      b.chat([{ role: 'user', content: 'hello' }], { maxTokens: 2, ...greedy }),
    ])
    expect(bad.status === 'rejected' && (bad.reason as LlavaError).code).toBe('ERR_CHAT_TEMPLATE')
    expect(good.status).toBe('fulfilled')
    await Promise.all([a.dispose(), b.dispose()])
  })

  test('a chat template that eats memory is stopped and the process lives', async () => {
    const hog = "{% set ns = namespace(a=[]) %}{% for i in range(100000000) %}{% set ns.a = ns.a + ['xxxxxxxxxxxxxxxx'] %}{% endfor %}x"
    const s = model.createSession({ contextSize: 512 })
    expect(['ERR_CHAT_TEMPLATE', 'ERR_NO_CHAT_TEMPLATE']).toContain(await codeOf(s.chat([{ role: 'user', content: 'hi' }], { chatTemplate: hog, maxTokens: 2 })))
    expect((await s.chat([{ role: 'user', content: 'hi' }], { maxTokens: 2, ...greedy })).tokens).toHaveLength(2)
    await s.dispose()
  })

  test('templates built to exhaust the stack, memory or time are refused with ERR_CHAT_TEMPLATE, and the process lives', async () => {
    const hostile: Record<string, string> = {
      recursion: '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}',
      repetition: "{{ 'x' * 1000000000000 }}",
      range: '{% for i in range(1000000000000) %}{% endfor %}',
      doublingString: "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
      doublingList: '{% set ns = namespace(a=[1]) %}{% for i in range(64) %}{% set ns.a = ns.a + ns.a %}{% endfor %}{{ ns.a|length }}',
      nestedParentheses: '{{ ' + '('.repeat(100000) + '1' + ')'.repeat(100000) + ' }}',
      nestedBlocks: '{% if true %}'.repeat(20000) + 'x' + '{% endif %}'.repeat(20000),
      nestedNot: '{{ ' + 'not '.repeat(100000) + 'true }}',
      unterminated: '{% for m in messages %}{{ m.content }',
    }
    for (const [name, chatTemplate] of Object.entries(hostile)) {
      const t0 = Date.now()
      const err = await model.renderChat([{ role: 'user', content: 'hi' }], { chatTemplate }).catch((e: unknown) => e)
      expect([name, (err as { code?: string }).code]).toEqual([name, 'ERR_CHAT_TEMPLATE'])
      // Bounded by the model's time budget (500 ms here) for each of the renderings llama.cpp's chat layer makes.
      expect(Date.now() - t0).toBeLessThan(20_000)
    }
    expect((await model.renderChat([{ role: 'user', content: 'hi' }])).prompt).toContain('hi')
  }, 120_000)

  test('threads beyond what the machine runs at once are refused, not started', async () => {
    expect(await codeOf(loadModel({ ...pair, threads: 700 }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => model.createSession({ threads: 700 }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => model.createSession({ threadsBatch: os.availableParallelism() + 1 }))).toBe('ERR_INVALID_ARGUMENT')
  })

  test('contexts whose cell count would wrap are refused up front', async () => {
    expect(await codeOf(() => model.createSessionGroup({ sessions: 256, contextSize: 2 ** 24 }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => model.createSessionGroup({ sessions: 2, contextSize: 2 ** 23 + 16 }))).toBe('ERR_INVALID_ARGUMENT')
  })

  test('a malformed percent-encoded data: URL is a LlavaError; valid ones decode as their bytes', async () => {
    const s = model.createSession({ contextSize: 512 })
    const bad = [{ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: 'data:image/png,%E0%A4%A' }, { type: 'text' as const, text: 'x' }] }]
    expect(await codeOf(s.chat(bad, { maxTokens: 1 }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(model.countTokens(bad))).toBe('ERR_INVALID_ARGUMENT')
    const bmp = toBmp(pattern(20, 12))
    const direct = await model.encodeImage(bmp)
    const percent = 'data:image/bmp,' + Array.from(bmp, (b) => '%' + b.toString(16).padStart(2, '0')).join('')
    const wrapped = 'data:image/bmp;base64,' + bmp.toString('base64').replace(/(.{76})/g, '$1\n')
    for (const url of [percent, wrapped]) {
      const r = await s.chat([{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'what?' }] }], { maxTokens: 1, ...greedy })
      expect(r.timings.imageEncodes).toBe(0) // the same pixels as the embedding encoded above
    }
    await direct.dispose()
    // Large enough to be decoded into native memory, wrapped in lines as MIME base64 is.
    const large = toBmp(pattern(1200, 1200, 6))
    const largeDirect = await model.encodeImage(large)
    const largeUrl = 'data:image/bmp;base64,' + large.toString('base64').replace(/(.{76})/g, '$1\r\n')
    const r = await s.chat([{ role: 'user', content: [{ type: 'image_url', image_url: largeUrl }, { type: 'text', text: 'what?' }] }], { maxTokens: 1, ...greedy })
    expect(r.timings.imageEncodes).toBe(0)
    await largeDirect.dispose()
    await s.dispose()
  })

  test('a prompt of 1 MiB of special-token text is refused at once', async () => {
    const s = model.createSession({ contextSize: 512 })
    const t0 = Date.now()
    expect(await codeOf(s.complete({ prompt: '</s>'.repeat(1 << 18), maxTokens: 1 }))).toBe('ERR_CONTEXT_OVERFLOW')
    expect(Date.now() - t0).toBeLessThan(3000)
    // Within what a larger context could hold, tokenizing is linear: 256k special tokens counted.
    const t1 = Date.now()
    expect((await model.countTokens('</s>'.repeat(1 << 18), { addSpecial: false })).tokens).toBe(1 << 18)
    expect(Date.now() - t1).toBeLessThan(3000)
    await s.dispose()
  })

  test('an embedding disposed right after the call that uses it stays with that call', async () => {
    const s = model.createSession({ contextSize: 512 })
    const e = await model.encodeImage(toBmp(pattern(16, 16, 3)))
    const running = s.complete({ prompt: 'USER: <image>\nwhat?\nASSISTANT:', images: [e], maxTokens: 3, ...greedy })
    const counting = model.countTokens('USER: <image> hi', { images: [e] })
    await e.dispose()
    expect((await running).tokens).toHaveLength(3)
    expect((await counting).imageTokens).toBeGreaterThan(0)
    expect(await codeOf(s.complete({ prompt: 'USER: <image>\nx\nASSISTANT:', images: [e], maxTokens: 1 }))).toBe('ERR_DISPOSED')
    await s.dispose()
  })

  test('an embedding disposed right after chat() or countTokens() that uses it stays with them', async () => {
    const s = model.createSession({ contextSize: 512 })
    const e = await model.encodeImage(toBmp(pattern(16, 16, 4)))
    const messages = [{ role: 'user' as const, content: [{ type: 'image' as const, image: e }, { type: 'text' as const, text: 'what?' }] }]
    const answer = s.chat(messages, { maxTokens: 2, ...greedy })
    const counted = model.countTokens(messages)
    await e.dispose()
    expect((await answer).tokens).toHaveLength(2)
    expect((await counted).imageTokens).toBeGreaterThan(0)
    await s.dispose()
  })

  test('a large buffer transferred away while its call runs is refused, not read after it is gone', async () => {
    for (let i = 0; i < 5; i++) {
      const bytes = Buffer.from(toBmp(pattern(1200, 1200, i)))
      expect(bytes.buffer.byteLength).toBe(bytes.length) // an ArrayBuffer of its own, not Node's pool
      const call = model.encodeImage(bytes)
      structuredClone(bytes.buffer, { transfer: [bytes.buffer] })
      expect(['resolved', 'ERR_INVALID_ARGUMENT']).toContain(await codeOf(call.then((e) => e.dispose())))
    }
  })

  test('concurrent encodes of the same pixels run the encoder once per image', async () => {
    const images = Array.from({ length: 41 }, (_, i) => toBmp(pattern(16, 16, 100 + i)))
    const before = model.imageEncodeCount
    const embeddings = await Promise.all(Array.from({ length: 160 }, (_, k) => model.encodeImage(images[k % 41])))
    expect(model.imageEncodeCount - before).toBe(41)
    for (let k = 0; k < 160; k++) expect(embeddings[k].id).toBe(embeddings[k % 41].id)
    await Promise.all(embeddings.map((e) => e.dispose()))
  })

  test('a 48 MB image buffer and a 50 MB data: URL do not hold the event loop', async () => {
    const big = toBmp(pattern(4000, 4000, 9))
    expect(big.length).toBeGreaterThan(48e6)
    // Flat, as a string read from JSON or a file is: a string built with + is flattened by V8 on
    // first access, a copy on the JS thread that no library can avoid.
    const url = JSON.parse(JSON.stringify('data:image/bmp;base64,' + toBmp(pattern(3500, 3500, 5)).toString('base64'))) as string
    expect(url.length).toBeGreaterThan(49e6)
    // The best of three runs: blocking code blocks every time, a noisy neighbour only sometimes.
    const lags = { buffer: Infinity, dataUrl: Infinity }
    for (let i = 0; i < 3; i++) {
      lags.buffer = Math.min(lags.buffer, await worstLag(async () => (await model.encodeImage(big)).dispose()))
      lags.dataUrl = Math.min(
        lags.dataUrl,
        await worstLag(() => model.countTokens([{ role: 'user', content: [{ type: 'image_url', image_url: url }, { type: 'text', text: 'hi' }] }])),
      )
    }
    expect(lags.buffer).toBeLessThan(20)
    expect(lags.dataUrl).toBeLessThan(20)
  })
})
