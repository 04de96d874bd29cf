// Session groups: sessions sharing one context whose tokens are decoded together. Each session
// must give exactly the tokens it gives alone, whatever the others do at the same time.
import * as path from 'node:path'
import { LlavaError, type Model, loadModel } from '../lib'
import { bmpFile, greedy, tempDir, tinyGemma3Pair, tinyPair } from './helpers/fixtures'

const prompts = [
  'USER: tell me a story\nASSISTANT:',
  'USER: what is a cat?\nASSISTANT:',
  'USER: count to ten, please, slowly\nASSISTANT:',
  'USER: hi\nASSISTANT:',
]

describe('session groups', () => {
  const pair = tinyPair()
  let model: Model
  let dir: string
  let photo: string

  beforeAll(async () => {
    model = await loadModel({ ...pair, threads: 1 })
    dir = tempDir('llava-group-')
    photo = bmpFile(dir, 'photo.bmp', 32, 32, 5).file
  })
  afterAll(async () => {
    await model.dispose()
  })

  async function alone(prompt: string, maxTokens: number, images: string[] = []): Promise<number[]> {
    const s = model.createSession({ contextSize: 512 })
    try {
      return (await s.complete({ prompt, images, maxTokens, ...greedy })).tokens
    } finally {
      await s.dispose()
    }
  }

  test('four sessions generating at once give the tokens each gives alone, decoded together', async () => {
    const expected = await Promise.all(prompts.map((p) => alone(p, 64)))
    await using group = model.createSessionGroup({ sessions: 4, contextSize: 512 })
    const sessions = prompts.map(() => group.createSession())
    const results = await Promise.all(sessions.map((s, i) => s.complete({ prompt: prompts[i], maxTokens: 64, ...greedy })))
    results.forEach((r, i) => expect(r.tokens).toEqual(expected[i]))
    // Sessions that run at the same time share their decode steps. On the tiny model a session
    // generates in a few milliseconds, so how much the four overlap depends on when the thread
    // pool starts each; that at least two of them shared steps does not.
    expect(results.filter((r) => r.timings.sharedDecodes > 0).length).toBeGreaterThanOrEqual(2)
  })

  test('a session alone in its group decodes alone, and follow-up turns reuse its cache', async () => {
    await using group = model.createSessionGroup({ sessions: 2, contextSize: 512 })
    const s = group.createSession()
    const first = await s.complete({ prompt: 'USER: <image>describe\nASSISTANT:', images: [photo], maxTokens: 8, ...greedy })
    expect(first.timings.sharedDecodes).toBe(0)
    const follow = `USER: <image>describe\nASSISTANT:${first.text}</s>USER: more\nASSISTANT:`
    const second = await s.complete({ prompt: follow, images: [photo], maxTokens: 8, ...greedy })
    expect(second.timings.imageEncodes).toBe(0)
    expect(second.timings.reusedTokens).toBeGreaterThan(second.timings.promptTokens / 2)
    expect(second.tokens).toEqual(await alone(follow, 8, [photo]))
  })

  test('images and text in different sessions of a group at once', async () => {
    const imagePrompt = 'USER: <image>what is this?\nASSISTANT:'
    const [expectImage, expectText] = await Promise.all([alone(imagePrompt, 16, [photo]), alone(prompts[0], 16)])
    await using group = model.createSessionGroup({ sessions: 2, contextSize: 512 })
    const a = group.createSession()
    const b = group.createSession()
    const [ra, rb] = await Promise.all([
      a.complete({ prompt: imagePrompt, images: [photo], maxTokens: 16, ...greedy }),
      b.complete({ prompt: prompts[0], maxTokens: 16, ...greedy }),
    ])
    expect(ra.tokens).toEqual(expectImage)
    expect(rb.tokens).toEqual(expectText)
  })

  test('non-causal image attention (Gemma 3) in a group', async () => {
    const gemma = await loadModel({ ...tinyGemma3Pair(), threads: 1 })
    try {
      const prompt = '<start_of_turn>user\n<image>describe<end_of_turn>\n<start_of_turn>model\n'
      const solo = gemma.createSession({ contextSize: 1024 })
      const expected = (await solo.complete({ prompt, images: [photo], maxTokens: 8, ...greedy })).tokens
      await solo.dispose()
      const group = gemma.createSessionGroup({ sessions: 2, contextSize: 1024 })
      const [ra, rb] = await Promise.all(
        [group.createSession(), group.createSession()].map((s) => s.complete({ prompt, images: [photo], maxTokens: 8, ...greedy })),
      )
      expect(ra.tokens).toEqual(expected)
      expect(rb.tokens).toEqual(expected)
      await group.dispose()
    } finally {
      await gemma.dispose()
    }
  })

  test('aborting one session does not disturb the others', async () => {
    const expected = await alone(prompts[1], 40)
    await using group = model.createSessionGroup({ sessions: 2, contextSize: 512 })
    const a = group.createSession()
    const b = group.createSession()
    const controller = new AbortController()
    let pieces = 0
    const aborted = a.complete({
      prompt: prompts[0],
      maxTokens: 200,
      ...greedy,
      signal: controller.signal,
      onToken: () => {
        if (++pieces === 3) controller.abort(new Error('enough'))
      },
    })
    const rb = await b.complete({ prompt: prompts[1], maxTokens: 40, ...greedy })
    await expect(aborted).rejects.toThrow('enough')
    expect(rb.tokens).toEqual(expected)
    // The aborted session is still usable.
    expect((await a.complete({ prompt: prompts[1], maxTokens: 40, ...greedy })).tokens).toEqual(expected)
  })

  test('ERR_GROUP_FULL past its size; disposing a session frees its place for a clean one', async () => {
    const group = model.createSessionGroup({ sessions: 2, contextSize: 256 })
    expect(group.size).toBe(2)
    expect(group.available).toBe(2)
    const a = group.createSession()
    const b = group.createSession()
    expect(group.available).toBe(0)
    let err: unknown
    try {
      group.createSession()
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(LlavaError)
    expect((err as LlavaError).code).toBe('ERR_GROUP_FULL')
    await a.complete({ prompt: prompts[0], maxTokens: 8, ...greedy })
    await a.dispose()
    expect(group.available).toBe(1)
    // The new session gets the freed sequence; what the old one left there must not leak in.
    const c = group.createSession()
    expect(c.cacheInfo().positions).toBe(0)
    const rc = await c.complete({ prompt: prompts[2], maxTokens: 12, ...greedy })
    expect(rc.timings.reusedTokens).toBe(0)
    expect(rc.tokens).toEqual(await alone(prompts[2], 12))
    expect(c.contextSize).toBe(256)
    await group.dispose()
    expect(b.disposed).toBe(true)
    expect(c.disposed).toBe(true)
    expect(group.available).toBe(0)
    expect(() => group.createSession()).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }))
  })

  test('reset() in a group: the next call evaluates from scratch', async () => {
    await using group = model.createSessionGroup({ sessions: 2, contextSize: 512 })
    const s = group.createSession()
    await s.complete({ prompt: prompts[0], maxTokens: 8, ...greedy })
    await s.reset()
    expect(s.cacheInfo().positions).toBe(0)
    const r = await s.complete({ prompt: prompts[3], maxTokens: 12, ...greedy })
    expect(r.timings.reusedTokens).toBe(0)
    expect(r.tokens).toEqual(await alone(prompts[3], 12))
  })

  test('save from a group session, restore into a plain session and into another group slot', async () => {
    const prompt = 'USER: <image>describe\nASSISTANT:'
    const file = path.join(dir, 'group.session')
    await using group = model.createSessionGroup({ sessions: 3, contextSize: 512 })
    const a = group.createSession()
    const b = group.createSession()
    await b.complete({ prompt: prompts[2], maxTokens: 6, ...greedy }) // occupies another sequence
    const first = await a.complete({ prompt, images: [photo], maxTokens: 6, ...greedy })
    const cont = `${prompt}${first.text} and`
    await a.save(file)
    const never = await a.complete({ prompt: cont, images: [photo], maxTokens: 10, ...greedy })

    const plain = model.createSession({ contextSize: 512 })
    await plain.load(file)
    const p = await plain.complete({ prompt: cont, images: [photo], maxTokens: 10, ...greedy })
    expect(p.tokens).toEqual(never.tokens)
    expect(p.timings.imageEncodes).toBe(0)
    expect(p.timings.reusedTokens).toBeGreaterThan(0)
    await plain.dispose()

    const c = group.createSession()
    await c.load(file)
    const rc = await c.complete({ prompt: cont, images: [photo], maxTokens: 10, ...greedy })
    expect(rc.tokens).toEqual(never.tokens)
    expect(rc.timings.reusedTokens).toBe(p.timings.reusedTokens)
  })

  test('options are checked', () => {
    expect(() => model.createSessionGroup({ sessions: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => model.createSessionGroup({ sessions: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    // @ts-expect-error sessions is required
    expect(() => model.createSessionGroup({ contextSize: 256 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    // @ts-expect-error unknown option
    expect(() => model.createSessionGroup({ sessions: 2, sesions: 3 })).toThrow(/sesions/)
  })

  test('model.dispose() disposes its groups and their sessions', async () => {
    const m = await loadModel({ ...pair, threads: 1 })
    const group = m.createSessionGroup({ sessions: 2, contextSize: 256 })
    const s = group.createSession()
    const running = s.complete({ prompt: prompts[0], maxTokens: 50, ...greedy })
    await m.dispose()
    await running.catch(() => undefined)
    expect(group.disposed).toBe(true)
    expect(s.disposed).toBe(true)
  })
})
