// Answers are read as llama-server reads them: the model outputs of llama.cpp's own chat tests
// (tests/test-chat.cpp in the pinned tree: tool calls, thinking, content of every family it
// covers) give the same message through llava-native's answer parser, fed one character at a time
// as a stream is, and the streamed pieces add up to the same message.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { type Model, loadModel } from '../lib'
import { prepareChat, renderChat } from '../lib/chat'
import { binding } from '../lib/native'
import { readParserCases } from './helpers/cpp-cases'
import { root, tinyPair } from './helpers/fixtures'

const llamaDir = path.join(root, 'deps', 'llama.cpp')

const normalize = (args: string): string => {
  try {
    return JSON.stringify(JSON.parse(args))
  } catch {
    return args
  }
}

describe("answer parsing equals llama.cpp's chat tests", () => {
  let model: Model

  beforeAll(async () => {
    model = await loadModel({ ...tinyPair(), threads: 1 })
  })
  afterAll(async () => {
    await model.dispose()
  })

  test('every case of test-chat.cpp that names a template parses to the expected message', async () => {
    const { cases, skipped } = readParserCases(fs.readFileSync(path.join(llamaDir, 'tests', 'test-chat.cpp'), 'utf8'))
    const templates = new Map<string, string>()
    const failures: string[] = []
    const families = new Set<string>()
    let withCalls = 0
    let grammarChecked = 0
    for (const c of cases) {
      if (!templates.has(c.template)) templates.set(c.template, fs.readFileSync(path.join(llamaDir, c.template), 'utf8'))
      const chat = prepareChat(model, [{ role: 'user', content: 'Hey there!' }], {
        chatTemplate: templates.get(c.template)!,
        tools: c.tools.map((t) => ({ type: 'function' as const, function: t as { name: string; description: string; parameters: Record<string, unknown> } })),
        enableThinking: c.enableThinking,
        parallelToolCalls: c.parallelToolCalls,
      })
      // The test's own reasoning format (the server's default is 'deepseek').
      chat.request.reasoning_format = c.reasoningFormat
      ;(chat.options.request as { reasoning_format: string }).reasoning_format = c.reasoningFormat
      const where = `${c.template} ${JSON.stringify(c.input).slice(0, 80)}`
      try {
        const rendered = await renderChat(model, chat)
        const got = binding().chatParseStreamed(rendered.spec, c.input)
        const calls = (m: typeof got) => m.toolCalls.map((t) => `${t.name}(${normalize(t.arguments)})`)
        const want = c.expect.toolCalls.map((t) => `${t.name}(${normalize(t.arguments)})`)
        const ids = got.toolCalls.map((t, i) => (c.expect.toolCalls[i]?.id ? t.id === c.expect.toolCalls[i].id : true))
        // As llama.cpp's test compares (assert_msg_equals with whitespace differences ignored).
        if (got.content.trim() !== c.expect.content.trim() || got.reasoning.trim() !== c.expect.reasoning.trim() || JSON.stringify(calls(got)) !== JSON.stringify(want) || ids.includes(false)) {
          failures.push(`${where}\n  got  ${JSON.stringify({ content: got.content, reasoning: got.reasoning, calls: calls(got), parseError: got.parseError })}\n  want ${JSON.stringify({ ...c.expect, toolCalls: want })}`)
        } else if (got.streamed.content.trim() !== got.content.trim() || got.streamed.reasoning.trim() !== got.reasoning.trim() || JSON.stringify(calls(got.streamed as typeof got)) !== JSON.stringify(want)) {
          failures.push(`${where}: the streamed pieces do not add up\n  ${JSON.stringify(got.streamed)}`)
        } else {
          families.add(c.template)
          if (want.length > 0) withCalls++
        }
        // The sampler generation builds for this chat (grammar, lazy triggers, generation prompt,
        // reasoning budget) takes the model's output, token by token.
        // (Text the test model's vocabulary cannot spell token for token, such as a leading space
        // its SentencePiece tokenizer merges, is not a model output it could give.)
        if (rendered.grammar) {
          const g = binding().chatGrammarAccepts(model.native, rendered.spec, rendered.grammar, c.input)
          if (g.roundTrip) {
            grammarChecked++
            if (!g.accepted) failures.push(`${where}: the grammar refused token ${g.tokens}: ${g.error}`)
          }
        }
      } catch (err) {
        failures.push(`${where}: ${(err as Error).message}`)
      } finally {
        chat.release()
      }
    }
    expect(failures).toEqual([])
    console.log(`test-chat.cpp: ${cases.length} cases read (${withCalls} with tool calls) over ${families.size} templates, ${grammarChecked} through the sampler's grammar; ${skipped} use test-builder options this reader does not take`)
    expect(cases.length).toBeGreaterThanOrEqual(200)
    expect(withCalls).toBeGreaterThanOrEqual(140)
    expect(families.size).toBeGreaterThanOrEqual(30)
    expect(grammarChecked).toBeGreaterThanOrEqual(140)
  }, 300_000)
})
