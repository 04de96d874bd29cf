// The options that shape how a conversation is rendered and its answer read: template, template
// variables, thinking, tools. Named as OpenAI names them where OpenAI has a name.
import { LlavaError } from '../errors'
import * as v from '../validate'

/** A function the model may call (OpenAI's tool shape; `{ name, description, parameters }` alone is accepted too). */
export type ChatTool =
  | { type: 'function'; function: { name: string; description?: string; parameters?: Record<string, unknown> } }
  | { name: string; description?: string; parameters?: Record<string, unknown> }

export interface ReasoningOptions {
  /**
   * OpenAI's `reasoning_effort`, passed to templates that read it (gpt-oss: 'low' | 'medium' |
   * 'high'); 'none' turns thinking off.
   */
  effort?: string
  /** At most this many tokens of thinking; then the template's end-of-thinking tag is forced. Default: unlimited. */
  budget?: number
  /** Text written before the forced end of thinking when the budget runs out. */
  budgetMessage?: string
  /**
   * Whether the thinking is taken out of the answer into `result.reasoning` (default true), or
   * left in `text` as the model wrote it.
   */
  extract?: boolean
}

/** How a conversation is rendered; accepted by chat(), chatStream(), countTokens() and renderChat(). */
export interface ChatRenderOptions {
  /**
   * A chat template to use instead of the model's: Jinja source, or the name of one of
   * llama.cpp's built-in templates ('chatml', 'vicuna', 'gemma', 'llama3', …), which its
   * built-in engine renders (no tools or thinking there).
   */
  chatTemplate?: string
  /** Extra template variables (llama-server's `chat_template_kwargs`), e.g. `{ enable_thinking: false }`. */
  chatTemplateKwargs?: Record<string, unknown>
  /** Think before answering, for templates that can switch it. Default: on where the template supports it (as llama-server). */
  enableThinking?: boolean
  reasoning?: ReasoningOptions
  /** Functions the model may call; calls come back in `result.toolCalls`. */
  tools?: ChatTool[]
  /** 'auto' (default): the model decides; 'required': it must call one; 'none': it must not. */
  toolChoice?: 'auto' | 'required' | 'none'
  /** Let the model call several tools in one answer. Default: where the template supports it. */
  parallelToolCalls?: boolean
}

export const CHAT_RENDER_KEYS = ['chatTemplate', 'chatTemplateKwargs', 'enableThinking', 'reasoning', 'tools', 'toolChoice', 'parallelToolCalls'] as const

/** The fields of the native renderChat request these options set. */
export interface RenderRequestOptions {
  template?: string
  use_jinja: boolean
  chat_template_kwargs?: Record<string, unknown>
  enable_thinking?: boolean
  reasoning_effort?: string
  reasoning_format: 'deepseek' | 'none'
  tools?: unknown[]
  tool_choice?: string
  parallel_tool_calls?: boolean
}

export interface CheckedRenderOptions {
  request: RenderRequestOptions
  budget: number
  budgetMessage: string
}

const isJinja = (template: string): boolean => /\{[%{#]/.test(template)

function toolJson(tool: unknown, where: string): unknown {
  if (tool === null || typeof tool !== 'object' || Array.isArray(tool)) throw v.invalid(where, 'a tool { type: "function", function: { name, … } }', tool)
  const t = tool as Record<string, unknown>
  const f = (t.type === 'function' ? t.function : t) as Record<string, unknown> | undefined
  if (f === null || typeof f !== 'object') throw v.invalid(`${where}.function`, 'a function { name, description?, parameters? }', f)
  const name = v.str(`${where}.function.name`, f.name)
  if (f.description !== undefined && typeof f.description !== 'string') throw v.invalid(`${where}.function.description`, 'a string', f.description)
  const p = f.parameters
  if (p !== undefined && (p === null || typeof p !== 'object' || Array.isArray(p))) throw v.invalid(`${where}.function.parameters`, 'a JSON Schema object', p)
  const fn: Record<string, unknown> = { name }
  if (f.description !== undefined) fn.description = f.description
  if (p !== undefined) fn.parameters = p
  return { type: 'function', function: fn }
}

/** Checks the render options; throws synchronously on bad input. */
export function checkRenderOptions(o: ChatRenderOptions & Record<string, unknown>): CheckedRenderOptions {
  const request: RenderRequestOptions = { use_jinja: true, reasoning_format: 'deepseek' }
  if (o.chatTemplate !== undefined) {
    const t = v.str('chatTemplate', o.chatTemplate)
    request.template = t
    request.use_jinja = isJinja(t)
  }
  if (o.chatTemplateKwargs !== undefined) {
    const k = o.chatTemplateKwargs
    if (k === null || typeof k !== 'object' || Array.isArray(k)) throw v.invalid('chatTemplateKwargs', 'an object of template variables', k)
    request.chat_template_kwargs = JSON.parse(JSON.stringify(k)) as Record<string, unknown>
  }
  if (o.enableThinking !== undefined) request.enable_thinking = v.bool('enableThinking', o.enableThinking, true)
  let budget = -1
  let budgetMessage = ''
  if (o.reasoning !== undefined) {
    const r = v.optionsObject('reasoning', o.reasoning)
    v.checkKeys('reasoning', r, ['effort', 'budget', 'budgetMessage', 'extract'])
    if (r.effort !== undefined) request.reasoning_effort = v.str('reasoning.effort', r.effort)
    budget = v.int('reasoning.budget', r.budget, 0, 1 << 24, -1)
    if (r.budgetMessage !== undefined) {
      if (typeof r.budgetMessage !== 'string') throw v.invalid('reasoning.budgetMessage', 'a string', r.budgetMessage)
      budgetMessage = r.budgetMessage
    }
    if (!v.bool('reasoning.extract', r.extract, true)) request.reasoning_format = 'none'
  }
  if (o.tools !== undefined) {
    if (!Array.isArray(o.tools)) throw v.invalid('tools', 'an array of tools', o.tools)
    if (o.tools.length > 0) request.tools = o.tools.map((t, i) => toolJson(t, `tools[${i}]`))
  }
  if (o.toolChoice !== undefined) {
    if (!['auto', 'required', 'none'].includes(o.toolChoice as string)) throw v.invalid('toolChoice', "'auto', 'required' or 'none'", o.toolChoice)
    request.tool_choice = o.toolChoice
  }
  if (o.parallelToolCalls !== undefined) request.parallel_tool_calls = v.bool('parallelToolCalls', o.parallelToolCalls, false)
  if (!request.use_jinja && (request.tools !== undefined || request.tool_choice !== undefined && request.tool_choice !== 'auto')) {
    throw new LlavaError(
      'ERR_INVALID_ARGUMENT',
      `Tools need a Jinja chat template; the built-in template '${request.template}' has none. Use the model's template or pass a Jinja one.`,
      { details: { option: 'tools' } },
    )
  }
  return { request, budget, budgetMessage }
}
