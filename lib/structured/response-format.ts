// Structured output: an answer constrained to JSON, or to a JSON Schema, by a grammar that
// llama.cpp's own converter (common/json-schema-to-grammar, what its server uses for
// response_format) makes from the schema.
import { LlavaError } from '../errors'
import { binding } from '../native'

/**
 * What shape the answer takes (OpenAI's `response_format`):
 * - `{ type: 'text' }`: unconstrained (the default).
 * - `{ type: 'json_object' }`: a JSON object; with `schema`, one that satisfies it.
 * - `{ type: 'json_schema', schema }`, or as OpenAI's API sends it,
 *   `{ type: 'json_schema', json_schema: { name, schema, strict } }`: JSON that satisfies the schema.
 */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object'; schema?: object }
  | { type: 'json_schema'; schema: object; strict?: boolean }
  | { type: 'json_schema'; json_schema: { name?: string; schema: object; strict?: boolean; description?: string } }

/** Limits on a schema, checked before it reaches the converter. */
export const SCHEMA_LIMITS = {
  /** Bytes of the schema as JSON. */
  maxBytes: 1 << 20,
  /** Nesting of objects and arrays in the schema document. */
  maxDepth: 64,
  /** Characters of any key or string in it (property names and patterns go through std::regex). */
  maxString: 4096,
} as const

function invalid(message: string): LlavaError {
  return new LlavaError('ERR_INVALID_ARGUMENT', message)
}

// A JSON pointer's escaping of a key (RFC 6901).
const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1')

function checkDocument(value: unknown, pointer: string, depth: number): void {
  if (depth > SCHEMA_LIMITS.maxDepth) throw invalid(`responseFormat: the schema nests deeper than ${SCHEMA_LIMITS.maxDepth} levels at ${pointer || '/'}`)
  if (typeof value === 'string') {
    if (value.length > SCHEMA_LIMITS.maxString) throw invalid(`responseFormat: a string longer than ${SCHEMA_LIMITS.maxString} characters at ${pointer}`)
    return
  }
  if (value === null || typeof value !== 'object') return
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkDocument(item, `${pointer}/${i}`, depth + 1))
    return
  }
  for (const [key, item] of Object.entries(value)) {
    if (key.length > SCHEMA_LIMITS.maxString) throw invalid(`responseFormat: a key longer than ${SCHEMA_LIMITS.maxString} characters in ${pointer || '/'}`)
    checkDocument(item, `${pointer}/${escapePointer(key)}`, depth + 1)
  }
}

// Keywords llama.cpp's converter does not enforce. A schema with one would get a grammar that lets
// through what the schema forbids, so it is refused, naming the keyword and where it is.
const UNENFORCED = new Set([
  'not', 'if', 'then', 'else', 'dependentRequired', 'dependentSchemas', 'dependencies', 'patternProperties',
  'propertyNames', 'unevaluatedProperties', 'unevaluatedItems', 'contains', 'minContains', 'maxContains',
  'uniqueItems', 'minProperties', 'maxProperties', 'multipleOf', 'nullable', 'contentSchema', '$dynamicRef',
])
const BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']
const FORMATS = new Set(['date', 'time', 'date-time', 'uuid', 'uuid1', 'uuid2', 'uuid3', 'uuid4', 'uuid5'])
const SCHEMA_MAPS = ['properties', '$defs', 'definitions']
const SCHEMA_LISTS = ['anyOf', 'oneOf', 'allOf', 'prefixItems']

// Walks the schema as a schema (not as any JSON: `enum` values and property names are data).
function checkKeywords(node: unknown, pointer: string): void {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return
  const schema = node as Record<string, unknown>
  const at = (key: string): string => `${pointer}/${escapePointer(key)}`
  for (const key of Object.keys(schema)) {
    if (UNENFORCED.has(key)) {
      const hint = key === 'nullable' ? " (write the type as [\"<type>\", \"null\"] instead)" : ''
      throw invalid(`responseFormat: the schema keyword '${key}' at ${at(key)} is not supported by llama.cpp's converter and would not be enforced${hint}; remove it`)
    }
  }
  const types = Array.isArray(schema.type) ? schema.type : [schema.type]
  for (const key of BOUNDS) {
    if (key in schema && !(types.length === 1 && types[0] === 'integer')) {
      throw invalid(`responseFormat: '${key}' at ${at(key)} is enforced only for { type: 'integer' } by llama.cpp's converter; a number's bounds would be ignored`)
    }
  }
  // Patterns llama.cpp's converter cannot translate become "any string": refused here where that is
  // plain from the text, and by the converter's own report for the rest (see convert()).
  if (typeof schema.pattern === 'string') {
    const pattern = schema.pattern
    if (pattern.length < 2 || !pattern.startsWith('^') || !pattern.endsWith('$')) {
      throw invalid(`responseFormat: the pattern at ${at('pattern')} must be anchored with ^ and $ for llama.cpp's converter; unanchored it would accept any string`)
    }
    if (/\((?!\?:)\?/.test(pattern.replace(/\\./g, ''))) {
      throw invalid(`responseFormat: the pattern at ${at('pattern')} uses group syntax llama.cpp's converter does not support (lookaround, named groups, flags); it would accept any string`)
    }
  }
  // A schema that no value satisfies: generation could only ever be cut short.
  const nothing = (why: string, key: string): LlavaError =>
    invalid(`responseFormat: the schema at ${pointer} can match nothing: ${why} (${at(key)}); fix the bounds`)
  const num = (key: string): number | undefined => (typeof schema[key] === 'number' ? (schema[key] as number) : undefined)
  for (const [lo, hi] of [['minLength', 'maxLength'], ['minItems', 'maxItems'], ['minimum', 'maximum']] as const) {
    const a = num(lo)
    const b = num(hi)
    if (a !== undefined && b !== undefined && a > b) throw nothing(`'${lo}' ${a} is above '${hi}' ${b}`, lo)
  }
  const exMin = num('exclusiveMinimum')
  const exMax = num('exclusiveMaximum')
  const min = num('minimum')
  const max = num('maximum')
  const low = Math.max(min ?? -Infinity, exMin === undefined ? -Infinity : Math.floor(exMin) + 1)
  const high = Math.min(max ?? Infinity, exMax === undefined ? Infinity : Math.ceil(exMax) - 1)
  if (low > high) throw nothing(`no integer lies between its bounds`, exMin !== undefined ? 'exclusiveMinimum' : 'exclusiveMaximum')
  if (Array.isArray(schema.enum) && schema.enum.length === 0) throw nothing("'enum' is empty", 'enum')
  if (Array.isArray(schema.type) && schema.type.length === 0) throw nothing("'type' is an empty list", 'type')
  if (schema.additionalProperties === false && Array.isArray(schema.required)) {
    const props = schema.properties !== null && typeof schema.properties === 'object' ? (schema.properties as Record<string, unknown>) : {}
    const missing = schema.required.find((name) => typeof name === 'string' && !(name in props))
    if (missing !== undefined) throw nothing(`property '${missing}' is required but 'additionalProperties' is false and it is not in 'properties'`, 'required')
  }
  // allOf: llama.cpp's converter merges the properties of object members and intersects enums; any
  // other member (a type, a bound) would be dropped.
  if (Array.isArray(schema.allOf)) {
    schema.allOf.forEach((member: unknown, i) => {
      const m = (member ?? {}) as Record<string, unknown>
      const merged = m.type === 'object' || 'properties' in m || 'enum' in m || '$ref' in m || 'anyOf' in m
      if (!merged) {
        throw invalid(`responseFormat: 'allOf' member ${at('allOf')}/${i} is neither an object schema nor an enum; llama.cpp's converter merges only those and would drop it`)
      }
    })
  }
  if (typeof schema.format === 'string' && !FORMATS.has(schema.format)) {
    throw invalid(`responseFormat: the format '${schema.format}' at ${at('format')} is not supported by llama.cpp's converter (date, time, date-time, uuid are); remove it or use a pattern`)
  }
  for (const key of SCHEMA_MAPS) {
    const map = schema[key]
    if (map !== null && typeof map === 'object' && !Array.isArray(map)) {
      for (const [name, sub] of Object.entries(map)) checkKeywords(sub, `${at(key)}/${escapePointer(name)}`)
    }
  }
  for (const key of SCHEMA_LISTS) {
    const list = schema[key]
    if (Array.isArray(list)) list.forEach((sub, i) => checkKeywords(sub, `${at(key)}/${i}`))
  }
  if (Array.isArray(schema.items)) schema.items.forEach((sub, i) => checkKeywords(sub, `${at('items')}/${i}`))
  else checkKeywords(schema.items, at('items'))
  checkKeywords(schema.additionalProperties, at('additionalProperties'))
}

/** Checks `responseFormat` and returns the schema (as JSON) to constrain to, or undefined for text. */
export function checkResponseFormat(value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`responseFormat must be an object such as { type: 'json_schema', schema }, got ${JSON.stringify(value)}`)
  }
  const f = value as Record<string, unknown>
  let schema: unknown
  if (f.type === 'text') return undefined
  if (f.type === 'json_object') {
    // "A JSON object" as OpenAI means it (llama.cpp's server would take any JSON value here).
    schema = f.schema ?? { type: 'object' }
  } else if (f.type === 'json_schema') {
    const wrapped = f.json_schema
    if (wrapped !== undefined) {
      if (wrapped === null || typeof wrapped !== 'object') throw invalid('responseFormat.json_schema must be an object { name, schema }')
      schema = (wrapped as Record<string, unknown>).schema
    } else {
      schema = f.schema
    }
    if (schema === undefined) throw invalid("responseFormat: { type: 'json_schema' } needs `schema` (or `json_schema.schema`)")
  } else {
    throw invalid(`responseFormat.type must be 'text', 'json_object' or 'json_schema', got ${JSON.stringify(f.type)}`)
  }
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    throw invalid(`responseFormat: the schema must be a JSON Schema object, got ${JSON.stringify(schema)}`)
  }
  checkDocument(schema, '', 0)
  checkKeywords(schema, '#')
  let text: string
  try {
    text = JSON.stringify(schema)
  } catch (err) {
    throw invalid(`responseFormat: the schema cannot be written as JSON (${err instanceof Error ? err.message : String(err)})`)
  }
  if (Buffer.byteLength(text) > SCHEMA_LIMITS.maxBytes) throw invalid(`responseFormat: the schema is larger than ${SCHEMA_LIMITS.maxBytes} bytes`)
  return text
}

// Compiled grammars by schema text: an application asks with the same few schemas again and again.
const cache = new Map<string, Promise<string>>()
const CACHE_SIZE = 64

// Where in the schema a pattern is (the first place), as a JSON pointer.
function patternPointer(node: unknown, pattern: string, pointer: string): string | undefined {
  if (node === null || typeof node !== 'object') return undefined
  if (!Array.isArray(node) && (node as Record<string, unknown>).pattern === pattern) return `${pointer}/pattern`
  for (const [key, item] of Object.entries(node)) {
    const found = patternPointer(item, pattern, `${pointer}/${escapePointer(key)}`)
    if (found) return found
  }
  return undefined
}

// llama.cpp's converter accepts any string where it cannot translate a pattern (an escape such
// as \w, a back-reference): a grammar that lets through what the schema forbids is refused.
async function convert(schemaJson: string): Promise<string> {
  const { grammar, warnings } = await binding().jsonSchemaToGrammar(schemaJson)
  if (warnings.length > 0) {
    const m = /^pattern ([\s\S]*) is not supported \(([\s\S]*)\), accepting any string$/.exec(warnings[0])
    const where = m ? patternPointer(JSON.parse(schemaJson), m[1], '#') : undefined
    throw invalid(
      m
        ? `responseFormat: the pattern at ${where ?? m[1]} is not one llama.cpp's converter can enforce (${m[2]}); it would accept any string`
        : `responseFormat: llama.cpp's converter would not enforce all of the schema: ${warnings.join('; ')}`,
    )
  }
  return grammar
}

/** The GBNF grammar for a schema (JSON text), from llama.cpp's converter, off the JS thread. */
export function grammarForSchema(schemaJson: string): Promise<string> {
  const hit = cache.get(schemaJson)
  if (hit) {
    cache.delete(schemaJson) // most recently used goes last
    cache.set(schemaJson, hit)
    return hit
  }
  const made = convert(schemaJson)
  made.catch(() => cache.delete(schemaJson)) // a refusal is not remembered: the message may change with limits
  cache.set(schemaJson, made)
  while (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string)
  return made
}

/** The value of JSON text, or undefined when it is not JSON; never throws. */
export function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

/** The parsed answer, when generation ended by itself and the text is JSON; never throws. */
export function parseJsonAnswer(text: string, stopReason: string): unknown {
  return stopReason === 'eos' || stopReason === 'stop' ? tryParseJson(text) : undefined
}
