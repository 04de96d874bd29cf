// The TypeScript type of a JSON Schema written as a literal (`as const`): what a constrained
// answer's `json` holds. Schemas that are not literals, and keywords without a static meaning
// here ($ref, patterns), give `unknown` (or the type without the refinement).
import type { ResponseFormat } from './response-format'

type Primitive<T, S> = T extends 'string'
  ? string
  : T extends 'integer' | 'number'
    ? number
    : T extends 'boolean'
      ? boolean
      : T extends 'null'
        ? null
        : T extends 'array'
          ? ArrayOf<S>
          : T extends 'object'
            ? ObjectOf<S>
            : unknown

type ArrayOf<S> = S extends { prefixItems: infer P extends readonly unknown[] }
  ? { -readonly [K in keyof P]: JsonSchemaToType<P[K]> }
  : S extends { items: infer I }
    ? Array<JsonSchemaToType<I>>
    : unknown[]

type Simplify<T> = { [K in keyof T]: T[K] } & {}

type ObjectOf<S> = S extends { properties: infer P }
  ? Simplify<
      {
        -readonly [K in keyof P as K extends RequiredKeys<S> ? K : never]: JsonSchemaToType<P[K]>
      } & {
        -readonly [K in keyof P as K extends RequiredKeys<S> ? never : K]?: JsonSchemaToType<P[K]>
      } & (S extends { additionalProperties: false } ? unknown : { [key: string]: unknown })
    >
  : Record<string, unknown>

type RequiredKeys<S> = S extends { required: readonly (infer R)[] } ? R : never

/** The type of the values a JSON Schema literal (`as const`) admits; `unknown` when it cannot be told. */
export type JsonSchemaToType<S> = S extends { const: infer C }
  ? C
  : S extends { enum: readonly (infer E)[] }
    ? E
    : S extends { anyOf: readonly (infer A)[] }
      ? JsonSchemaToType<A>
      : S extends { oneOf: readonly (infer A)[] }
        ? JsonSchemaToType<A>
        : S extends { type: readonly (infer T)[] }
          ? T extends unknown
            ? Primitive<T, S>
            : never
          : S extends { type: infer T }
            ? Primitive<T, S>
            : unknown

/** What `json` holds for a response format: the schema's type, any JSON object, or unknown. */
export type ResponseJson<F extends ResponseFormat | undefined> = F extends { type: 'json_schema'; json_schema: { schema: infer S } }
  ? JsonSchemaToType<S>
  : F extends { type: 'json_schema'; schema: infer S }
    ? JsonSchemaToType<S>
    : F extends { type: 'json_object'; schema: infer S }
      ? JsonSchemaToType<S>
      : F extends { type: 'json_object' }
        ? Record<string, unknown>
        : unknown
