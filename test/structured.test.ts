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

  // 26 more shapes: every keyword the converter enforces, alone and combined (strings bounded, so
  // that a model with random weights ends its answer; object keys beyond `properties` cannot be
  // bounded, so typed additionalProperties stay out of this list).
  const str = (maxLength = 8) => ({ type: 'string', maxLength }) as const
  const more: Array<[string, object]> = [
    ['string', str(10)],
    ['integer range', { type: 'integer', minimum: 10, maximum: 99 }],
    ['negative integer range', { type: 'integer', minimum: -50, maximum: -3 }],
    ['exclusive integer bounds', { type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 10 }],
    ['number', { type: 'number' }],
    ['boolean', { type: 'boolean' }],
    ['null', { type: 'null' }],
    ['string length range', { type: 'string', minLength: 2, maxLength: 5 }],
    ['pattern', { type: 'string', pattern: '^[A-Z]{2}-[0-9]{3}$' }],
    ['pattern alternatives', { type: 'string', pattern: '^(yes|no|maybe)$' }],
    ['date-time', { type: 'string', format: 'date-time' }],
    ['time', { type: 'string', format: 'time' }],
    ['enum of mixed values', { enum: ['a', 1, true, null] }],
    ['const object', { const: { k: 'v', n: 2 } }],
    ['type list', { type: ['integer', 'null'] }],
    ['optional properties', { type: 'object', properties: { a: str(), b: { type: 'integer', minimum: 0, maximum: 9 }, c: { type: 'boolean' } }, required: ['a'], additionalProperties: false }],
    ['uuid', { type: 'string', format: 'uuid' }],
    ['tuple', { type: 'array', prefixItems: [str(4), { type: 'integer', minimum: 0, maximum: 9 }, { type: 'boolean' }] }],
    ['array of objects', { type: 'array', items: { type: 'object', properties: { x: { type: 'integer', minimum: 0, maximum: 9 }, label: str(4) }, required: ['x', 'label'], additionalProperties: false }, minItems: 1, maxItems: 3 }],
    ['exact-length array', { type: 'array', items: { type: 'boolean' }, minItems: 3, maxItems: 3 }],
    ['array of enums', { type: 'array', items: { enum: ['north', 'south', 'east', 'west'] }, maxItems: 4 }],
    ['anyOf of objects', { anyOf: [{ type: 'object', properties: { cat: str() }, required: ['cat'], additionalProperties: false }, { type: 'object', properties: { dog: { type: 'integer', minimum: 0, maximum: 9 } }, required: ['dog'], additionalProperties: false }] }],
    ['allOf merging objects', { allOf: [{ type: 'object', properties: { a: str() }, required: ['a'] }, { type: 'object', properties: { b: { type: 'boolean' } }, required: ['b'] }] }],
    ['recursive $ref', { $ref: '#/$defs/node', $defs: { node: { type: 'object', properties: { v: { type: 'integer', minimum: 0, maximum: 9 }, next: { anyOf: [{ $ref: '#/$defs/node' }, { type: 'null' }] } }, required: ['v', 'next'], additionalProperties: false } } }],
    ['receipt', {
      type: 'object',
      properties: {
        shop: str(12),
        date: { type: 'string', format: 'date' },
        items: { type: 'array', items: { type: 'object', properties: { name: str(10), qty: { type: 'integer', minimum: 1, maximum: 20 }, price: { type: 'number' } }, required: ['name', 'qty', 'price'], additionalProperties: false }, minItems: 1, maxItems: 5 },
        paid: { enum: ['cash', 'card'] },
      },
      required: ['shop', 'date', 'items', 'paid'],
      additionalProperties: false,
    }],
    ['bounding boxes', {
      type: 'object',
      properties: { objects: { type: 'array', maxItems: 4, items: { type: 'object', properties: { label: { enum: ['car', 'person', 'tree'] }, box: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 1023 }, minItems: 4, maxItems: 4 } }, required: ['label', 'box'], additionalProperties: false } } },
      required: ['objects'],
      additionalProperties: false,
    }],
  ]

  test('32 schemas: greedy with an image, 10 sampled seeds, chat streaming: every answer parses and validates', async () => {
    const all = [...schemas, ...more]
    expect(all.length).toBeGreaterThanOrEqual(32)
    const s = model.createSession()
    const failures: string[] = []
    let answers = 0
    try {
      for (const [name, schema] of all) {
        for (const seed of [undefined, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) {
          const sampling = seed === undefined ? { temperature: 0 } : { temperature: 1, seed }
          const withImage = seed === undefined || seed % 2 === 0
          const r = await s.complete({
            prompt: withImage ? 'USER: <image>as JSON\nASSISTANT:' : 'USER: as JSON\nASSISTANT:',
            images: withImage ? [image] : [],
            maxTokens: 400,
            reuseCache: false,
            responseFormat: { type: 'json_schema', schema },
            ...sampling,
          })
          answers++
          try {
            check(r, schema)
          } catch (err) {
            failures.push(`${name} (seed ${seed ?? 'greedy'}): ${(err as Error).message}`)
          }
        }
        await s.reset()
        const pieces: string[] = []
        const chat = await s.chat([{ role: 'user', content: [{ type: 'image', image }, { type: 'text', text: 'as JSON' }] }], {
          maxTokens: 400,
          temperature: 0,
          responseFormat: { type: 'json_schema', schema },
          onToken: (p) => pieces.push(p.text),
        })
        answers++
        try {
          check(chat, schema)
          expect(pieces.join('')).toBe(chat.text)
        } catch (err) {
          failures.push(`${name} (chat): ${(err as Error).message}`)
        }
        await s.reset()
      }
    } finally {
      await s.dispose()
    }
    expect(failures).toEqual([])
    expect(answers).toBe(all.length * 12)
  }, 600_000)

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
      // patterns the converter cannot translate, found by its own report, with where they are
      await refuse({ type: 'json_schema', schema: { type: 'object', properties: { a: { type: 'string', pattern: '^\\w+$' } } } }, /pattern at #\/properties\/a\/pattern is not one llama.cpp's converter can enforce \(unsupported escape: \\w\)/)
      await refuse({ type: 'json_schema', schema: { type: 'string', pattern: '^(a)\\1$' } }, /pattern at #\/pattern .*unsupported escape: \\1/)
      // the same in a chat, where the chat layer converts the schema inside its own grammar
      await expect(s.chat([{ role: 'user', content: 'x' }], { maxTokens: 4, responseFormat: { type: 'json_schema', schema: { type: 'string', pattern: '^\\d+$' } } }))
        .rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/unsupported escape: \\d/) })
      // schemas no value satisfies: generation could only be cut short
      await refuse({ type: 'json_schema', schema: { type: 'string', minLength: 5, maxLength: 2 } }, /can match nothing: 'minLength' 5 is above 'maxLength' 2/)
      await refuse({ type: 'json_schema', schema: { type: 'array', minItems: 3, maxItems: 1 } }, /can match nothing/)
      await refuse({ type: 'json_schema', schema: { enum: [] } }, /can match nothing: 'enum' is empty/)
      await refuse({ type: 'json_schema', schema: { type: 'integer', exclusiveMinimum: 3, exclusiveMaximum: 4 } }, /no integer lies between its bounds/)
      await refuse({ type: 'json_schema', schema: { type: 'object', required: ['x'], additionalProperties: false } }, /'x' is required but 'additionalProperties' is false/)
      await refuse({ type: 'json_schema', schema: { allOf: [{ type: 'string' }, { type: 'integer' }] } }, /'allOf' member #\/allOf\/0 is neither an object schema nor an enum/)
      // a raw grammar with {m,n}, n < m: llama.cpp's parser counted n - m optional copies and
      // wrapped around until memory ran out (deps/patches/0008); now a parse error
      await expect(s.complete({ prompt: 'x', maxTokens: 2, grammar: 'root ::= "a"{5,2}' })).rejects.toMatchObject({ code: 'ERR_GRAMMAR' })
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
