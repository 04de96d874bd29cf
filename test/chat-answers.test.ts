// Chat answers end to end on the tiny model with real templates from the pinned tree: tool calls
// constrained by the grammar llama.cpp writes for the template, thinking separated from the answer
// and cut by a budget, streamed pieces labelled, tool turns in the history, and refusals.
import * as fs from 'node:fs'
import * as path from 'node:path'
import Ajv from 'ajv'
import { type ChatMessage, type ChatPiece, type Model, loadModel } from '../lib'
import { codeOf } from './helpers/errors'
import { root, tinyPair } from './helpers/fixtures'

const templates = path.join(root, 'deps', 'llama.cpp', 'models', 'templates')
const template = (name: string): string => fs.readFileSync(path.join(templates, name), 'utf8')

const weather = {
  type: 'object',
  properties: { city: { type: 'string', enum: ['Paris', 'London', 'Tokyo'] }, celsius: { type: 'boolean' } },
  required: ['city', 'celsius'],
  additionalProperties: false,
} as const
const tools = [
  { type: 'function' as const, function: { name: 'get_weather', description: 'Weather now in a city', parameters: weather } },
  { type: 'function' as const, function: { name: 'get_time', description: 'Time now in a city', parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Oslo'] } }, required: ['city'] } } },
]

describe('chat answers', () => {
  let model: Model
  const ajv = new Ajv({ strict: false })
  const validWeather = ajv.compile(weather)

  beforeAll(async () => {
    model = await loadModel({ ...tinyPair(), threads: 1 })
  })
  afterAll(async () => {
    await model.dispose()
  })

  // The tiny model's weights are random: in formats that allow free text before a call, it mostly
  // rambles until maxTokens. Every answer must still read cleanly, and every one that ends by
  // itself must hold calls that parse and match their schemas.
  test("toolChoice 'required': every answer that ends holds calls that parse and match their schema", async () => {
    const s = model.createSession({ contextSize: 2048 })
    let ended = 0
    for (const name of ['meta-llama-Llama-3.1-8B-Instruct.jinja', 'meta-llama-Llama-3.3-70B-Instruct.jinja', 'meetkai-functionary-medium-v3.2.jinja', 'Cohere2MoE.jinja']) {
      for (const seed of [1, 2, 3]) {
        const pieces: ChatPiece[] = []
        const r = await s.chat([{ role: 'user', content: 'What is the weather in Paris?' }], {
          chatTemplate: template(name),
          tools,
          toolChoice: 'required',
          maxTokens: 120,
          temperature: 0.8,
          seed,
          onToken: (p) => pieces.push(p),
        })
        expect(r.parseError).toBeUndefined()
        const streamedCalls = pieces.filter((p) => p.kind === 'toolCall')
        if (r.stopReason !== 'eos' && r.stopReason !== 'stop') continue
        ended++
        expect(r.toolCalls.length).toBeGreaterThanOrEqual(1)
        r.toolCalls.forEach((call, i) => {
          expect(['get_weather', 'get_time']).toContain(call.name)
          expect(call.id.length).toBeGreaterThan(0)
          expect(call.parsedArguments).toEqual(JSON.parse(call.arguments))
          if (call.name === 'get_weather') expect(validWeather(call.parsedArguments)).toBe(true)
          // The streamed pieces say which call they belong to and add up to its arguments.
          const own = streamedCalls.filter((p) => p.toolCall?.index === i)
          expect(own[0].toolCall?.name).toBe(call.name)
          expect(JSON.parse(own.map((p) => p.text).join(''))).toEqual(call.parsedArguments)
        })
      }
    }
    // Some answers end by themselves (at the pinned fixtures: Llama 3.x seed 1, functionary seed 3).
    expect(ended).toBeGreaterThanOrEqual(2)
    await s.dispose()
  }, 300_000)

  test('thinking: reasoning comes apart from the answer, the budget ends it, pieces say which part they are', async () => {
    const s = model.createSession({ contextSize: 2048 })
    const qwq = template('Qwen-QwQ-32B.jinja')
    const rendered = await model.renderChat([{ role: 'user', content: 'why?' }], { chatTemplate: qwq })
    expect(rendered.supportsThinking).toBe(true)
    expect(rendered.thinking).toBe(true)
    expect(rendered.generationPrompt.endsWith('<think>\n')).toBe(true)

    const pieces: ChatPiece[] = []
    const r = await s.chat([{ role: 'user', content: 'why?' }], {
      chatTemplate: qwq,
      reasoning: { budget: 6 },
      maxTokens: 40,
      temperature: 0,
      onToken: (p) => pieces.push(p),
    })
    expect(r.reasoning.length).toBeGreaterThan(0)
    // The budget forced the end of thinking after 6 tokens: the end tag's tokens follow them.
    expect(model.detokenize(r.tokens.slice(6), { renderSpecial: true }).startsWith('</think>')).toBe(true)
    expect(model.detokenize(r.tokens.slice(0, 6), { renderSpecial: true })).not.toContain('</think>')
    expect(r.text).not.toContain('</think>')
    const kinds = pieces.map((p) => p.kind)
    expect(kinds[0]).toBe('reasoning')
    expect(kinds.lastIndexOf('reasoning')).toBeLessThan(kinds.indexOf('text') === -1 ? Infinity : kinds.indexOf('text'))
    expect(pieces.filter((p) => p.kind === 'reasoning').map((p) => p.text).join('').trim()).toBe(r.reasoning.trim())
    expect(pieces.filter((p) => p.kind === 'text').map((p) => p.text).join('')).toBe(r.text)
    expect(pieces.flatMap((p) => p.tokens)).toEqual(r.tokens.slice(0, pieces.flatMap((p) => p.tokens).length))

    // Thinking off: the template renders without the open thinking block, and nothing is reasoning.
    const off = await model.renderChat([{ role: 'user', content: 'why?' }], { chatTemplate: template('Qwen-Qwen3-0.6B.jinja'), enableThinking: false })
    expect(off.thinking).toBe(false)
    expect(off.prompt).toContain('<think>\n\n</think>')
    // reasoning.extract false: the thinking stays in the text, as the model wrote it.
    const raw = await s.chat([{ role: 'user', content: 'why?' }], { chatTemplate: qwq, reasoning: { budget: 3, extract: false }, maxTokens: 12, temperature: 0 })
    expect(raw.reasoning).toBe('')
    expect(raw.text).toContain('</think>')
    await s.dispose()
  }, 120_000)

  test('a conversation with tool calls and tool answers renders and continues', async () => {
    const s = model.createSession({ contextSize: 2048 })
    const history: ChatMessage[] = [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: { city: 'Paris', celsius: true } }] },
      { role: 'tool', toolCallId: 'call_1', name: 'get_weather', content: '{"temperature": 21}' },
    ]
    const hermes = template('NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja')
    const rendered = await model.renderChat(history, { chatTemplate: hermes, tools })
    expect(rendered.prompt).toContain('"city": "Paris"')
    expect(rendered.prompt).toContain('{"temperature": 21}')
    const r = await s.chat(history, { chatTemplate: hermes, tools, maxTokens: 8, temperature: 0 })
    expect(r.timings.promptTokens).toBe((await model.countTokens(history, { chatTemplate: hermes, tools })).tokens)
    // OpenAI's shapes are accepted as well.
    const openAi = await model.renderChat(
      [
        history[0],
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris", "celsius": true}' } }] },
        { role: 'tool', tool_call_id: 'call_1', name: 'get_weather', content: '{"temperature": 21}' },
      ],
      { chatTemplate: hermes, tools },
    )
    expect(openAi.prompt).toBe(rendered.prompt)
    await s.dispose()
  }, 60_000)

  test('refusals: bad tools, tools with a built-in template, a grammar with tools, a template that raises', async () => {
    const m = [{ role: 'user' as const, content: 'hi' }]
    expect(await codeOf(model.renderChat(m, { tools: [{ type: 'function', function: { name: '' } }] }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(model.renderChat(m, { tools: 'x' as never }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(model.renderChat(m, { toolChoice: 'any' as never }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(model.renderChat(m, { chatTemplate: 'chatml', tools }))).toBe('ERR_INVALID_ARGUMENT')
    const s = model.createSession({ contextSize: 512 })
    expect(await codeOf(s.chat(m, { tools, grammar: 'root ::= "x"' }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(model.renderChat([{ role: 'tool', content: 'x', toolCalls: [] } as never]))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(model.renderChat([{ role: 'robot', content: 'x' } as never]))).toBe('ERR_INVALID_ARGUMENT')
    // The template's own error names the construct that failed, with its position.
    const raising = "{% if messages|length > 0 %}{{ raise_exception('roles must alternate') }}{% endif %}"
    const err = await model.renderChat(m, { chatTemplate: raising }).catch((e: Error) => e)
    expect((err as { code?: string }).code).toBe('ERR_CHAT_TEMPLATE')
    expect((err as Error).message).toContain('roles must alternate')
    expect((err as Error).message).toMatch(/line \d+, column \d+/)
    // A built-in template by name is rendered by llama.cpp's built-in engine (no silent fallback otherwise).
    const chatml = await model.renderChat(m, { chatTemplate: 'chatml' })
    expect(chatml.prompt).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n')
    expect(await codeOf(model.renderChat(m, { chatTemplate: 'no-such-builtin' }))).toBe('ERR_CHAT_TEMPLATE')
    // A conversation ending with an assistant turn is continued (llama-server's prefill).
    const cont = await model.renderChat([...m, { role: 'assistant', content: 'Hel' }])
    expect(cont.prompt.startsWith('USER: hi\nASSISTANT:')).toBe(true)
    expect(cont.prompt.endsWith('Hel')).toBe(true)
    await s.dispose()
  })
})
