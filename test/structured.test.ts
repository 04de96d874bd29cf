// Structured output: llama.cpp's own JSON-schema converter is linked and used (its test cases from
// the pinned tree give the very grammars it expects), and answers constrained by a schema parse
// and validate against it, with images, greedy and sampled, plain and chat.
import * as fs from 'node:fs'
import * as path from 'node:path'
import Ajv from 'ajv'
import addFormats from 'ajv-formats'
import { type CompletionResult, type Model, type ResponseFormat, loadModel } from '../lib'
import { binding } from '../lib/native'
import { bmpFile, root, tempDir, tinyPair } from './helpers/fixtures'

interface ConverterCase {
  status: 'SUCCESS' | 'FAILURE'
  name: string
  schema: string
  grammar: string
}

// The test cases of llama.cpp's tests/test-json-schema-to-grammar.cpp, read from its source: each
// `test({ STATUS, "name", schema, grammar })`, the strings raw (R"""(...)""") or quoted.
function converterCases(): ConverterCase[] {
  const source = fs.readFileSync(path.join(root, 'deps', 'llama.cpp', 'tests', 'test-json-schema-to-grammar.cpp'), 'utf8')
  const literal = String.raw`(?:R"""\(([\s\S]*?)\)"""|"((?:[^"\\]|\\.)*)")`
  const one = new RegExp(String.raw`^\s*(SUCCESS|FAILURE),\s*"((?:[^"\\]|\\.)*)",\s*${literal},\s*${literal}\s*\}\);`)
  const unquote = (s: string): string => s.replace(/\\(.)/g, (_m, c: string) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c)
  const cases: ConverterCase[] = []
  for (const chunk of source.split('test({').slice(1)) {
    const m = one.exec(chunk)
    if (!m) throw new Error(`unparsed test case: ${chunk.slice(0, 120)}`)
    cases.push({ status: m[1] as ConverterCase['status'], name: m[2], schema: m[3] ?? unquote(m[4]), grammar: m[5] ?? unquote(m[6]) })
  }
  return cases
}

// As the C++ test compares: outer whitespace and each line's indentation do not count.
const trim = (s: string): string => s.trim().replace(/(^|\n)[ \t]+/g, '$1')

describe("llama.cpp's JSON schema converter", () => {
  const cases = converterCases()

  test('the pinned tree has the converter test cases', () => {
    expect(cases.length).toBeGreaterThan(60)
    expect(cases.some((c) => c.status === 'FAILURE')).toBe(true)
  })

  test('every case gives the grammar llama.cpp expects, or is refused as it expects', async () => {
    const wrong: string[] = []
    for (const c of cases) {
      let grammar: string | undefined
      let error: { code?: string } | undefined
      try {
        grammar = (await binding().jsonSchemaToGrammar(c.schema)).grammar
      } catch (err) {
        error = err as { code?: string }
      }
      if (c.status === 'SUCCESS') {
        if (grammar === undefined || trim(grammar) !== trim(c.grammar)) wrong.push(`${c.name}: ${error ? JSON.stringify(error) : 'different grammar'}`)
      } else if (error?.code !== 'ERR_INVALID_ARGUMENT') {
        wrong.push(`${c.name}: expected a refusal`)
      }
    }
    expect(wrong).toEqual([])
  })
})

describe('responseFormat', () => {
  let model: Model
  let image: string
  const ajv = new Ajv({ strict: false })
  // ajv's 'fast' formats check the shape (a date is YYYY-MM-DD with a month 01-12 and a day 01-31),
  // which is what llama.cpp's converter constrains to: not a calendar (2024-09-31 passes both).
  addFormats(ajv, { mode: 'fast' })

  beforeAll(async () => {
    model = await loadModel({ ...tinyPair(), contextSize: 2048 })
    image = bmpFile(tempDir('llava-structured-'), 'q.bmp', 32, 32, 5).file
  })
  afterAll(async () => {
    await model.dispose()
  })

  const schemas: Array<[string, object]> = [
    ['flat object', { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 } }, required: ['name', 'age'], additionalProperties: false }],
    ['enum and const', { type: 'object', properties: { colour: { enum: ['red', 'green', 'blue'] }, kind: { const: 'disc' } }, required: ['colour', 'kind'], additionalProperties: false }],
    ['bounded array', { type: 'array', items: { type: 'integer', minimum: -5, maximum: 5 }, minItems: 1, maxItems: 4 }],
    ['nested with $ref', {
      type: 'object',
      properties: { box: { $ref: '#/$defs/box' }, tags: { type: 'array', items: { type: 'string', maxLength: 6 }, maxItems: 3 } },
      required: ['box', 'tags'],
      additionalProperties: false,
      $defs: { box: { type: 'object', properties: { x: { type: 'integer', minimum: 0, maximum: 640 }, y: { type: 'number' } }, required: ['x', 'y'], additionalProperties: false } },
    }],
    ['oneOf and nullable', { type: 'object', properties: { v: { oneOf: [{ type: 'boolean' }, { type: 'null' }, { type: 'string', pattern: '^[a-c]{1,3}$' }] } }, required: ['v'], additionalProperties: false }],
    ['formats', { type: 'object', properties: { when: { type: 'string', format: 'date' }, id: { type: 'string', format: 'uuid' } }, required: ['when', 'id'], additionalProperties: false }],
  ]

  function check(r: CompletionResult, schema: object): void {
    expect(r.stopReason).toBe('eos')
    expect(r.json).toBeDefined()
    expect(JSON.parse(r.text)).toEqual(r.json)
    const validate = ajv.compile(schema)
    if (!validate(r.json)) throw new Error(`${r.text} does not satisfy the schema: ${ajv.errorsText(validate.errors)}`)
  }

  test.each(schemas)('%s: greedy and sampled answers, with an image, parse and validate', async (_name, schema) => {
    const s = model.createSession()
    try {
      for (const seed of [undefined, 1, 2, 3]) {
        const sampling = seed === undefined ? { temperature: 0 } : { temperature: 1, seed }
        const r = await s.complete({
          prompt: 'USER: <image>describe it as JSON\nASSISTANT:',
          images: [image],
          maxTokens: 400,
          reuseCache: false,
          responseFormat: { type: 'json_schema', schema },
          ...sampling,
        })
        check(r, schema)
      }
    } finally {
      await s.dispose()
    }
  })

  test("OpenAI's wrapped form, json_object, chat and streaming give the same kind of answer", async () => {
    const schema = schemas[0][1]
    const s = model.createSession()
    try {
      const wrapped = await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 300, temperature: 0, reuseCache: false, responseFormat: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } } })
      check(wrapped, schema)
      const object = await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 300, temperature: 0, reuseCache: false, responseFormat: { type: 'json_object' } })
      expect(object.stopReason).toBe('eos')
      expect(typeof object.json).toBe('object')
      expect(Array.isArray(object.json)).toBe(false)
      await s.reset()
      const pieces: string[] = []
      const chat = await s.chat([{ role: 'user', content: [{ type: 'image', image }, { type: 'text', text: 'as JSON' }] }], {
        maxTokens: 300,
        temperature: 0,
        responseFormat: { type: 'json_schema', schema },
        onToken: (p) => pieces.push(p.text),
      })
      check(chat, schema)
      expect(pieces.join('')).toBe(chat.text)
    } finally {
      await s.dispose()
    }
  })

  test('in a session group, two schemas at once: each answer satisfies its own', async () => {
    const group = model.createSessionGroup({ sessions: 2, contextSize: 1024 })
    try {
      const [a, b] = [group.createSession(), group.createSession()]
      const [ra, rb] = await Promise.all([
        a.complete({ prompt: 'USER: <image>as JSON\nASSISTANT:', images: [image], maxTokens: 400, temperature: 0, responseFormat: { type: 'json_schema', schema: schemas[0][1] } }),
        b.complete({ prompt: 'USER: list\nASSISTANT:', maxTokens: 400, temperature: 1, seed: 9, responseFormat: { type: 'json_schema', schema: schemas[2][1] } }),
      ])
      check(ra, schemas[0][1])
      check(rb, schemas[2][1])
    } finally {
      await group.dispose()
    }
  })

  test('cut short: stopReason says so, json is undefined, nothing throws', async () => {
    const s = model.createSession()
    try {
      const r = await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 3, temperature: 0, responseFormat: { type: 'json_schema', schema: schemas[3][1] } })
      expect(r.stopReason).toBe('maxTokens')
      expect(r.json).toBeUndefined()
      expect('json' in r).toBe(true)
      const plain = await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 3, temperature: 0 })
      expect('json' in plain).toBe(false)
    } finally {
      await s.dispose()
    }
  })

  test('bad formats and hostile schemas are typed errors before anything runs', async () => {
    const s = model.createSession()
    const refuse = async (responseFormat: unknown, message: RegExp, extra: object = {}): Promise<void> => {
      await expect(
        s.complete({ prompt: 'x', maxTokens: 4, responseFormat: responseFormat as ResponseFormat, ...extra }),
      ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(message) })
    }
    try {
      await refuse('json', /must be an object/)
      await refuse({ type: 'yaml' }, /type must be 'text', 'json_object' or 'json_schema'/)
      await refuse({ type: 'json_schema' }, /needs `schema`/)
      await refuse({ type: 'json_schema', schema: [1] }, /must be a JSON Schema object/)
      await refuse({ type: 'json_schema', schema: { type: 'object' } }, /either `grammar` or `responseFormat`/, { grammar: 'root ::= "a"' })
      // deeper than the limit: refused before the converter (and its recursion) sees it
      let deep: object = { type: 'string' }
      for (let i = 0; i < 200; i++) deep = { type: 'array', items: deep }
      await refuse({ type: 'json_schema', schema: deep }, /nests deeper than 64 levels/)
      // names that would feed std::regex a long run
      await refuse({ type: 'json_schema', schema: { type: 'object', properties: { ['p'.repeat(5000)]: { type: 'string' } } } }, /a key longer than 4096/)
      await refuse({ type: 'json_schema', schema: { type: 'string', pattern: 'a'.repeat(5000) } }, /a string longer than 4096/)
      // what the converter would let through unenforced: refused, with the keyword and where it is
      await refuse({ type: 'json_schema', schema: { type: 'object', properties: { p: { type: 'number', maximum: 1 } } } }, /'maximum' at #\/properties\/p\/maximum is enforced only for \{ type: 'integer' \}/)
      await refuse({ type: 'json_schema', schema: { type: 'string', format: 'email' } }, /the format 'email' at #\/format is not supported/)
      await refuse({ type: 'json_schema', schema: { type: 'array', items: { not: { type: 'null' } } } }, /'not' at #\/items\/not/)
      await refuse({ type: 'json_schema', schema: { $defs: { a: { type: 'string', nullable: true } } } }, /'nullable' at #\/\$defs\/a\/nullable .*\["<type>", "null"\]/)
      await refuse({ type: 'json_schema', schema: { type: 'array', uniqueItems: true } }, /'uniqueItems' at #\/uniqueItems/)
      await refuse({ type: 'json_schema', schema: { type: 'string', pattern: '[0-9]+' } }, /pattern at #\/pattern must be anchored/)
      await refuse({ type: 'json_schema', schema: { type: 'string', pattern: '^(?=a)a$' } }, /group syntax .* does not support/)
      // property names and enum values are data, not keywords
      const data = await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 300, temperature: 0, reuseCache: false,
        responseFormat: { type: 'json_schema', schema: { type: 'object', properties: { not: { enum: ['multipleOf', 'if'] } }, required: ['not'], additionalProperties: false } } })
      expect(['multipleOf', 'if']).toContain((data.json as { not: string }).not)
      // what llama.cpp's converter itself refuses, with its reason
      await refuse({ type: 'json_schema', schema: { $ref: '#/$defs/missing' } }, /converter refused the schema: .*missing/s)
      // a cycle in the schema object cannot be written as JSON
      const cyclic: Record<string, unknown> = { type: 'object' }
      cyclic.self = cyclic
      await expect(s.complete({ prompt: 'x', maxTokens: 4, responseFormat: { type: 'json_schema', schema: cyclic } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      // the session still works
      const r = await s.complete({ prompt: 'USER: hi\nASSISTANT:', maxTokens: 300, temperature: 0, responseFormat: { type: 'json_object' } })
      expect(r.json).toBeDefined()
    } finally {
      await s.dispose()
    }
  })
})
