// Reads the model-output cases of llama.cpp's tests/test-chat.cpp (the pinned tree's) without
// compiling them: a small reader for the part of C++ those cases are written in (string literals,
// raw strings, brace lists, calls of the test's message helpers, named constants).

export type Value = string | boolean | number | Value[] | Message | { ident: string }

export interface ToolCallSpec {
  name: string
  arguments: string
  id: string
}

export interface Message {
  content: string
  reasoning: string
  toolCalls: ToolCallSpec[]
}

export interface ParserCase {
  template: string
  input: string
  tools: Array<{ name: string; description: string; parameters: unknown }>
  reasoningFormat: 'none' | 'auto' | 'deepseek' | 'deepseek-legacy'
  enableThinking: boolean
  parallelToolCalls: boolean
  expect: Message
}

class Reader {
  i = 0
  constructor(readonly s: string) {}

  ws(): void {
    for (;;) {
      while (/\s/.test(this.s[this.i] ?? '')) this.i++
      if (this.s.startsWith('//', this.i)) this.i = this.s.indexOf('\n', this.i) + 1 || this.s.length
      else if (this.s.startsWith('/*', this.i)) this.i = this.s.indexOf('*/', this.i) + 2
      else return
    }
  }

  peek(t: string): boolean {
    this.ws()
    return this.s.startsWith(t, this.i)
  }

  eat(t: string): void {
    if (!this.peek(t)) throw new Error(`expected ${t} at ${this.s.slice(this.i, this.i + 40)}`)
    this.i += t.length
  }

  stringLiteral(): string {
    this.ws()
    if (this.s[this.i] === 'R' && this.s[this.i + 1] === '"') {
      const open = this.s.indexOf('(', this.i)
      const delim = this.s.slice(this.i + 2, open)
      const close = this.s.indexOf(`)${delim}"`, open)
      const v = this.s.slice(open + 1, close)
      this.i = close + delim.length + 2
      return v
    }
    let j = this.i + 1
    while (this.s[j] !== '"') j += this.s[j] === '\\' ? 2 : 1
    const raw = this.s.slice(this.i, j + 1)
    this.i = j + 1
    return JSON.parse(raw.replace(/\\'/g, "'").replace(/\\\?/g, '?').replace(/\\x([0-9a-fA-F]{2})/g, '\\u00$1')) as string
  }

  value(): Value {
    this.ws()
    const c = this.s[this.i]
    if (c === '"' || (c === 'R' && this.s[this.i + 1] === '"')) {
      let v = this.stringLiteral()
      while (this.peek('"') || this.peek('R"')) v += this.stringLiteral()
      return v
    }
    if (c === '{') {
      this.i++
      const items: Value[] = []
      while (!this.peek('}')) {
        items.push(this.value())
        if (this.peek(',')) this.eat(',')
      }
      this.eat('}')
      return items
    }
    const m = /^[A-Za-z_][A-Za-z0-9_:]*/.exec(this.s.slice(this.i))
    if (m) {
      this.i += m[0].length
      if (m[0] === 'true' || m[0] === 'false') return m[0] === 'true'
      if (this.peek('(')) {
        this.eat('(')
        const args: Value[] = []
        while (!this.peek(')')) {
          args.push(this.value())
          if (this.peek(',')) this.eat(',')
        }
        this.eat(')')
        return call(m[0], args)
      }
      return { ident: m[0] }
    }
    const n = /^-?\d+/.exec(this.s.slice(this.i))
    if (n) {
      this.i += n[0].length
      return Number(n[0])
    }
    throw new Error(`cannot read ${this.s.slice(this.i, this.i + 40)}`)
  }
}

const str = (v: Value | undefined): string => (v === undefined ? '' : typeof v === 'string' ? v : Array.isArray(v) && v.length === 0 ? '' : fail(v))

function fail(v: unknown): never {
  throw new Error(`unsupported value ${JSON.stringify(v)}`)
}

function msg(content: string, reasoning: string, calls: ToolCallSpec[]): Message {
  return { content, reasoning, toolCalls: calls }
}

// The message helpers of test-chat.cpp.
function call(name: string, a: Value[]): Value {
  switch (name) {
    case 'simple_assist_msg': {
      const toolName = str(a[2])
      const id = str(a[4])
      return msg(str(a[0]), str(a[1]), toolName || id ? [{ name: toolName, arguments: str(a[3]), id }] : [])
    }
    case 'message_with_tool_calls':
      return msg('', '', [{ name: str(a[0]), arguments: str(a[1]), id: '' }])
    case 'message_with_tool_calls_and_reasoning':
    case 'message_with_reasoning_and_tool_call':
      return name === 'message_with_tool_calls_and_reasoning'
        ? msg('', str(a[2]), [{ name: str(a[0]), arguments: str(a[1]), id: '' }])
        : msg('', str(a[0]), [{ name: str(a[1]), arguments: str(a[2]), id: '' }])
    case 'message_with_content_and_tool_call':
      return msg(str(a[0]), '', [{ name: str(a[1]), arguments: str(a[2]), id: '' }])
    case 'message_with_reasoning_content_and_multiple_tool_calls':
      return msg(str(a[1]), str(a[0]), (a[2] as Value[][]).map((p) => ({ name: str(p[0]), arguments: str(p[1]), id: '' })))
    default:
      throw new Error(`unknown helper ${name}`)
  }
}

const FORMATS: Record<string, ParserCase['reasoningFormat']> = {
  COMMON_REASONING_FORMAT_NONE: 'none',
  COMMON_REASONING_FORMAT_AUTO: 'auto',
  COMMON_REASONING_FORMAT_DEEPSEEK: 'deepseek',
  COMMON_REASONING_FORMAT_DEEPSEEK_LEGACY: 'deepseek-legacy',
}

/** The peg_tester cases of test-chat.cpp that use only what can be read here; and how many could not be. */
export function readParserCases(src: string): { cases: ParserCase[]; skipped: number } {
  const tools = new Map<string, ParserCase['tools'][number]>()
  for (const m of src.matchAll(/static common_chat_tool (\w+)\s*\{/g)) {
    try {
      const r = new Reader(src)
      r.i = m.index! + m[0].length - 1
      const v = r.value() as Value[]
      tools.set(m[1], { name: str(v[0]), description: str(v[1]), parameters: JSON.parse(str(v[2])) })
    } catch {
      // a tool written differently is simply not available to the cases
    }
  }
  const messages = new Map<string, Message>()
  for (const m of src.matchAll(/^const common_chat_msg (\w+)\s*=/gm)) {
    try {
      const r = new Reader(src)
      r.i = m.index! + m[0].length
      const v = r.value()
      if (typeof v === 'object' && v !== null && 'toolCalls' in v) messages.set(m[1], v)
    } catch {
      // not one of the helper forms
    }
  }

  const cases: ParserCase[] = []
  let skipped = 0
  const testers = [...src.matchAll(/peg_tester\(\s*("models\/templates\/[^"]+")|peg_tester\(\s*([A-Za-z_]\w*)/g)].map((m) => ({
    at: m.index!,
    template: m[1] ? (JSON.parse(m[1]) as string) : undefined,
  }))
  for (const m of src.matchAll(/tst\.test\(/g)) {
    const tester = testers.filter((t) => t.at < m.index!).pop()
    try {
      if (!tester?.template) throw new Error('template from a variable')
      const r = new Reader(src)
      r.i = m.index! + m[0].length
      const input = r.value()
      if (typeof input !== 'string') throw new Error('input is not a literal')
      r.eat(')')
      const c: ParserCase = {
        template: tester.template,
        input,
        tools: [],
        reasoningFormat: 'none',
        enableThinking: true,
        parallelToolCalls: false,
        expect: msg('', '', []),
      }
      for (;;) {
        r.eat('.')
        const name = /^\w+/.exec(r.s.slice(r.i))![0]
        r.i += name.length
        r.eat('(')
        const args: Value[] = []
        while (!r.peek(')')) {
          args.push(r.value())
          if (r.peek(',')) r.eat(',')
        }
        r.eat(')')
        if (name === 'run') break
        const a = args[0]
        if (name === 'tools') {
          c.tools = (a as Value[]).map((t) => {
            const tool = tools.get((t as { ident: string }).ident)
            if (!tool) throw new Error('unknown tool')
            return tool
          })
        } else if (name === 'reasoning_format') {
          const f = FORMATS[(a as { ident: string }).ident]
          if (!f) throw new Error('unknown reasoning format')
          c.reasoningFormat = f
        } else if (name === 'enable_thinking') c.enableThinking = a as boolean
        else if (name === 'parallel_tool_calls') c.parallelToolCalls = a as boolean
        else if (name === 'expect') {
          const e = typeof a === 'object' && a !== null && 'ident' in a ? messages.get(a.ident) : (a as Message)
          if (!e) throw new Error('unknown message')
          c.expect = { ...e, toolCalls: [...e.toolCalls] }
        } else if (name === 'expect_content') c.expect.content = str(a)
        else if (name === 'expect_reasoning') c.expect.reasoning = str(a)
        else if (name === 'expect_tool_calls') {
          c.expect.toolCalls = (a as Value[][]).map((t) => ({ name: str(t[0]), arguments: str(t[1]), id: str(t[2]) }))
        } else throw new Error(`builder ${name} not read`)
      }
      cases.push(c)
    } catch {
      skipped++
    }
  }
  return { cases, skipped }
}
