// Conversations: chat templates with images, multi-turn reuse of the KV cache, token counting,
// saving and restoring a session across processes.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { type ChatMessage, LlavaError, type Model, loadModel } from '../lib'
import { bmpFile, greedy, root, tempDir, tinyPair } from './helpers/fixtures'
import { toBmp, toPng } from './helpers/images'

describe('chat', () => {
  const pair = tinyPair()
  let model: Model
  let dir: string
  let photo: string

  beforeAll(async () => {
    model = await loadModel({ ...pair, threads: 1 })
    dir = tempDir('llava-chat-')
    photo = bmpFile(dir, 'photo.bmp', 32, 32, 9).file
  })
  afterAll(async () => {
    await model.dispose()
  })

  test("renders the model's own template with the image where its part is", async () => {
    const s = model.createSession()
    const viaChat = await s.chat([{ role: 'user', content: [{ type: 'image', image: photo }, { type: 'text', text: 'describe' }] }], {
      maxTokens: 12,
      ...greedy,
    })
    const viaPrompt = await s.complete({ prompt: 'USER: <image>describe\nASSISTANT:', images: [photo], maxTokens: 12, ...greedy })
    expect(viaChat.tokens).toEqual(viaPrompt.tokens)
    expect(viaChat.timings.promptTokens).toBe(viaPrompt.timings.promptTokens)
    await s.dispose()
  })

  test('calls run in the order they were made, though a chat renders its template first', async () => {
    const s = model.createSession()
    const order: string[] = []
    const calls = [
      s.chat([{ role: 'user', content: 'first' }], { maxTokens: 2, ...greedy }).then(() => order.push('chat')),
      s.complete({ prompt: 'USER: second\nASSISTANT:', maxTokens: 2, ...greedy }).then(() => order.push('complete')),
      s.chatStream([{ role: 'user', content: 'third' }], { maxTokens: 2, ...greedy }).result.then(() => order.push('chatStream')),
      s.complete({ prompt: 'USER: fourth\nASSISTANT:', maxTokens: 2, ...greedy }).then(() => order.push('complete again')),
    ]
    await Promise.all(calls)
    expect(order).toEqual(['chat', 'complete', 'chatStream', 'complete again'])
    await s.dispose()
  })

  test('a template override (Jinja) replaces the model template', async () => {
    const s = model.createSession()
    const tmpl = "{% for m in messages %}{{ bos_token }}Q: {{ m['content'] }}\n{% endfor %}A:"
    const viaChat = await s.chat([{ role: 'user', content: [{ type: 'image', image: photo }, { type: 'text', text: 'what?' }] }], {
      chatTemplate: tmpl,
      maxTokens: 10,
      ...greedy,
    })
    // The template writes BOS itself, so the tokenizer must not add another.
    const viaPrompt = await s.complete({ prompt: '<s>Q: <image>what?\nA:', images: [photo], addSpecial: false, maxTokens: 10, ...greedy })
    expect(viaChat.tokens).toEqual(viaPrompt.tokens)
    expect(viaChat.timings.promptTokens).toBe(viaPrompt.timings.promptTokens)
    const builtin = await s.chat([{ role: 'user', content: 'hello' }], { chatTemplate: 'chatml', maxTokens: 4, ...greedy })
    expect(builtin.timings.promptTokens).toBeGreaterThan(5)
    await s.dispose()
  })

  test('image_url data URLs give the same answer as the same image as bytes', async () => {
    const { img } = bmpFile(dir, 'url.bmp', 32, 32, 12)
    const png = toPng(img)
    const s = model.createSession()
    const a = await s.chat(
      [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } }, { type: 'text', text: 'hi' }] }],
      { maxTokens: 8, ...greedy },
    )
    const b = await s.chat([{ role: 'user', content: [{ type: 'image', image: toBmp(img) }, { type: 'text', text: 'hi' }] }], { maxTokens: 8, ...greedy })
    expect(a.tokens).toEqual(b.tokens)
    await expect(
      s.chat([{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }]),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(s.chat([{ role: 'robot', content: 'x' } as never])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(s.chat([])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await s.dispose()
  })

  test('a follow-up turn encodes no image and evaluates only the new tokens; it equals a single-shot evaluation', async () => {
    const s = model.createSession()
    const before = model.imageEncodeCount
    const turn1: ChatMessage[] = [
      { role: 'system', content: 'you see images' },
      { role: 'user', content: [{ type: 'image', image: photo }, { type: 'text', text: 'what is this?' }] },
    ]
    const r1 = await s.chat(turn1, { maxTokens: 10, ...greedy })
    expect(r1.timings.imageEncodes).toBe(1)
    expect(r1.timings.reusedTokens).toBe(0)

    // chat() answers come without the leading space the model wrote after 'ASSISTANT:', so the
    // answer goes back into the history as it is and renders to exactly what the cache holds.
    const answer = r1.text
    expect(answer).toBe(answer.trimStart())
    const turn2: ChatMessage[] = [...turn1, { role: 'assistant', content: answer }, { role: 'user', content: 'and the colour?' }]
    const r2 = await s.chat(turn2, { maxTokens: 10, ...greedy })
    expect(r2.timings.imageEncodes).toBe(0)
    expect(model.imageEncodeCount).toBe(before + 1)
    // Turn 1's prompt (with the image) and its answer are reused; only the new turn is evaluated.
    expect(r2.timings.reusedTokens).toBe(r1.timings.promptTokens + r1.tokens.length - 1)
    const newTurn = await model.countTokens('</s>\nUSER: and the colour?\nASSISTANT:', { addSpecial: false })
    expect(r2.timings.promptTokens - r2.timings.reusedTokens).toBe(newTurn.tokens + 1)

    const fresh = model.createSession()
    const single = await fresh.chat(turn2, { maxTokens: 10, ...greedy })
    expect(single.timings.reusedTokens).toBe(0)
    expect(r2.tokens).toEqual(single.tokens)
    expect(r2.text).toBe(single.text)

    // A history that diverges is evaluated from the first differing position.
    const edited: ChatMessage[] = [...turn1, { role: 'assistant', content: answer }, { role: 'user', content: 'something else' }]
    const r3 = await s.chat(edited, { maxTokens: 4, ...greedy })
    expect(r3.timings.reusedTokens).toBeGreaterThanOrEqual(r1.timings.promptTokens)
    expect(r3.timings.imageEncodes).toBe(0)
    await Promise.all([s.dispose(), fresh.dispose()])
  })

  test('chatStream and onToken deliver the same answer as the result, without leading whitespace', async () => {
    const s = model.createSession()
    const msgs: ChatMessage[] = [{ role: 'user', content: [{ type: 'image', image: photo }, { type: 'text', text: 'hello' }] }]
    const stream = s.chatStream(msgs, { maxTokens: 10, ...greedy })
    let streamed = ''
    for await (const p of stream) streamed += p.text
    const result = await stream.result
    expect(streamed).toBe(result.text)
    expect(result.text.length).toBeGreaterThan(0)
    expect(result.text).toBe(result.text.trimStart())
    const pieces: string[] = []
    const again = await s.chat(msgs, { maxTokens: 10, onToken: (p) => pieces.push(p.text), ...greedy })
    expect(pieces.join('')).toBe(again.text)
    expect(again.text).toBe(result.text)
    // complete() keeps the model's raw text
    const raw = await s.complete({ prompt: 'USER: <image>hello\nASSISTANT:', images: [photo], maxTokens: 10, ...greedy })
    expect(raw.text.trimStart()).toBe(result.text)
    await s.dispose()
  })

  test('reset() forgets the cache', async () => {
    const s = model.createSession()
    const msgs: ChatMessage[] = [{ role: 'user', content: 'hello there' }]
    await s.chat(msgs, { maxTokens: 3, ...greedy })
    const again = await s.chat(msgs, { maxTokens: 3, ...greedy })
    expect(again.timings.reusedTokens).toBeGreaterThan(0)
    await s.reset()
    const afterReset = await s.chat(msgs, { maxTokens: 3, ...greedy })
    expect(afterReset.timings.reusedTokens).toBe(0)
    expect(afterReset.tokens).toEqual(again.tokens)
    await s.dispose()
  })

  test('countTokens counts text and image tokens without encoding', async () => {
    const before = model.imageEncodeCount
    const other = bmpFile(dir, 'count.bmp', 32, 32, 77).file
    const counted = await model.countTokens('USER: <image>\ncount me\nASSISTANT:', { images: [other] })
    expect(counted.imageTokens).toBe(16)
    expect(model.imageEncodeCount).toBe(before)
    const s = model.createSession()
    const r = await s.complete({ prompt: 'USER: <image>\ncount me\nASSISTANT:', images: [other], maxTokens: 1 })
    expect(r.timings.promptTokens).toBe(counted.tokens)
    const chatCount = await model.countTokens([{ role: 'user', content: [{ type: 'image', image: other }, { type: 'text', text: 'x' }] }])
    const chatRun = await s.chat([{ role: 'user', content: [{ type: 'image', image: other }, { type: 'text', text: 'x' }] }], { maxTokens: 1 })
    expect(chatCount.tokens).toBe(chatRun.timings.promptTokens)
    expect((await model.countTokens('the cat')).imageTokens).toBe(0)
    await expect(model.countTokens('USER: <image>\nASSISTANT:', { images: [path.join(dir, 'nope.png')] })).rejects.toMatchObject({
      code: 'ERR_FILE_NOT_FOUND',
    })
    await s.dispose()
  })

  test('save → new process → restore → continue gives the same tokens as never stopping', async () => {
    const file = path.join(dir, 'session.bin')
    const turn1: ChatMessage[] = [{ role: 'user', content: [{ type: 'image', image: photo }, { type: 'text', text: 'look' }] }]
    const s = model.createSession()
    const r1 = await s.chat(turn1, { maxTokens: 8, ...greedy })
    await s.save(file)
    expect(fs.statSync(file).size).toBeGreaterThan(0)
    const turn2: ChatMessage[] = [...turn1, { role: 'assistant', content: r1.text }, { role: 'user', content: 'more' }]
    const continued = await s.chat(turn2, { maxTokens: 8, ...greedy })

    const script = `
      const { loadModel } = require('llava-native')
      ;(async () => {
        const model = await loadModel({ model: process.env.MODEL, mmproj: process.env.MMPROJ, threads: 1 })
        const s = model.createSession()
        await s.load(process.env.STATE)
        const turn2 = JSON.parse(process.env.TURN2)
        const r = await s.chat(turn2, { maxTokens: 8, temperature: 0 })
        console.log(JSON.stringify({ tokens: r.tokens, reused: r.timings.reusedTokens, encodes: r.timings.imageEncodes }))
        await model.dispose()
      })().catch((e) => { console.error(e); process.exit(1) })
    `
    const run = spawnSync(process.execPath, ['-e', script], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, MODEL: pair.model, MMPROJ: pair.mmproj, STATE: file, TURN2: JSON.stringify(turn2) },
    })
    expect(run.stderr).toBe('')
    const restored = JSON.parse(run.stdout) as { tokens: number[]; reused: number; encodes: number }
    expect(restored.tokens).toEqual(continued.tokens)
    expect(restored.reused).toBeGreaterThanOrEqual(r1.timings.promptTokens)
    expect(restored.encodes).toBe(0)

    const bad = path.join(dir, 'bad.bin')
    fs.writeFileSync(bad, 'not a session')
    await expect(s.load(bad)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    fs.writeFileSync(bad, fs.readFileSync(file).subarray(0, 40))
    await expect(s.load(bad)).rejects.toBeInstanceOf(LlavaError)
    await expect(s.load(path.join(dir, 'missing.bin'))).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND' })
    await s.dispose()
  })
})
