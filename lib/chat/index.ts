// Chat messages → one prompt, rendered by llama.cpp's own chat layer (common/chat.cpp: its Jinja
// engine, the template workarounds and the tool and reasoning formats llama-server uses), off the
// JS thread, with mtmd's media marker where each image goes. The same rendering also says how to
// constrain and parse the answer (grammar, triggers, parser), which generation applies.
import { LlavaError, fromNative } from '../errors'
import { AsAudio } from '../audio'
import { type ImageInput, NativeBytesImage } from '../image'
import { MediaEmbedding } from '../media/embedding'
import type { ModelBinding, NativeEmbedding, NativeModel } from '../native-types'
import { decodeBase64Audio, decodeDataUrl } from './data-url'
import { type PendingImage, toChatJson } from './messages'
import { type CheckedRenderOptions, type ChatRenderOptions, checkRenderOptions } from './options'

export type { ChatMessage, ChatContentPart, ChatRole, ChatMessageToolCall } from './messages'
export type { ChatRenderOptions, ChatTool, ReasoningOptions } from './options'
export { CHAT_RENDER_KEYS } from './options'
export { type ToolCall, type ChatAnswer, type ChatPiece, answerOf, piecesOf } from './answer'

/** Default time budget of one rendering. Real templates render in well under a millisecond. */
export const DEFAULT_TEMPLATE_TIMEOUT_MS = 10000

/** What rendering needs of a model (kept to an interface, so this module does not import Model). */
export interface ChatHost {
  readonly info: { chatTemplate: string | null; vision: { marker: string } | null }
  readonly defaults: { templateTimeoutMs: number }
  readonly native: NativeModel
  readonly binding: ModelBinding
}

/** What generation needs to constrain and read a chat answer (passed to the native generate). */
export interface NativeChatSpec {
  parser: string
  format: number
  generationPrompt: string
  reasoningFormat: string
  parseToolCalls: boolean
  preservedTokens: string[]
  grammarLazy: boolean
  grammarPrefill: boolean
  triggers: Array<{ type: string; value: string; token: number }>
  thinkingStartTag: string
  thinkingEndTags: string[]
  reasoningBudget: number
  reasoningBudgetMessage: string
}

export interface RenderedChat {
  prompt: string
  /** Inputs (large data: URLs already in native memory), and the call's own handles on embeddings (see PreparedChat). */
  images: Array<ImageInput | NativeEmbedding | NativeBytesImage | AsAudio>
  /** The media marker used in `prompt`. */
  marker: string
  /** The grammar the chat layer wrote (tool calls, response format), or '' for none. */
  grammar: string
  /** Stop strings the format adds. */
  stops: string[]
  spec: NativeChatSpec
  /** llama.cpp's name of the answer format (e.g. 'peg-native'). */
  format: string
  supportsThinking: boolean
  thinking: boolean
}

/**
 * Messages checked and turned into llama.cpp's request; what can throw synchronously has.
 * Embeddings are already the call's own handles (taken when the call was made, so the caller may
 * dispose theirs at once); release() drops them when the call is over.
 */
export interface PreparedChat {
  request: Record<string, unknown>
  options: CheckedRenderOptions
  images: Array<PendingImage | NativeEmbedding>
  marker: string
  release(): void
}

/** @internal Checks the messages and options; throws synchronously on bad input. */
export function prepareChat(
  host: ChatHost,
  messages: unknown,
  options: ChatRenderOptions & Record<string, unknown>,
  answer: { jsonSchema?: unknown; grammar?: string } = {},
): PreparedChat {
  const marker = host.info.vision?.marker ?? '<__media__>'
  const checked = checkRenderOptions(options)
  const { json, images: pending } = toChatJson(messages, marker)
  if (checked.request.template === undefined && !host.info.chatTemplate) {
    throw new LlavaError(
      'ERR_NO_CHAT_TEMPLATE',
      'The model has no chat template. Pass one with the chatTemplate option (a Jinja template, or a llama.cpp built-in name such as "vicuna", "chatml", "gemma").',
    )
  }
  if (answer.grammar !== undefined && checked.request.tools !== undefined && checked.request.tool_choice !== 'none') {
    throw new LlavaError('ERR_INVALID_ARGUMENT', 'A grammar cannot be combined with tools: the tool calls have a grammar of their own.', {
      details: { option: 'grammar' },
    })
  }
  const request: Record<string, unknown> = { ...checked.request, messages: json }
  if (answer.jsonSchema !== undefined) request.json_schema = answer.jsonSchema
  if (answer.grammar !== undefined) request.grammar = answer.grammar
  const images: PreparedChat['images'] = [...pending]
  const retained: NativeEmbedding[] = []
  const release = (): void => {
    for (const h of retained.splice(0)) h.dispose()
  }
  try {
    images.forEach((img, i) => {
      if (!(img instanceof MediaEmbedding)) return
      if (img.owner !== host) throw new LlavaError('ERR_INVALID_ARGUMENT', `image ${i} of the messages was encoded by another model; encode it with this model`)
      img.assertAlive()
      const handle = img.native.retain()
      retained.push(handle)
      images[i] = handle
    })
  } catch (err) {
    release()
    throw err
  }
  return { request, options: checked, images, marker, release }
}

/** The native renderChat result (binding/chat_render.cpp). */
interface NativeRendered {
  prompt: string
  format: string
  format_id: number
  grammar: string
  grammar_lazy: boolean
  generation_prompt: string
  supports_thinking: boolean
  enable_thinking: boolean
  thinking_start_tag: string
  thinking_end_tags: string[]
  preserved_tokens: string[]
  additional_stops: string[]
  parser: string
  parse_tool_calls: boolean
  grammar_triggers: Array<{ type: string; value: string; token: number }>
}

/** @internal Decodes data: URLs and renders the conversation, both without holding the event loop. */
export async function renderChat(host: ChatHost, chat: PreparedChat): Promise<RenderedChat> {
  try {
    return await render(host, chat)
  } catch (err) {
    chat.release()
    throw err
  }
}

async function render(host: ChatHost, chat: PreparedChat): Promise<RenderedChat> {
  const images: RenderedChat['images'] = []
  for (const img of chat.images) {
    // prepareChat() has replaced every ImageEmbedding with the call's own handle.
    if (img !== null && typeof img === 'object' && 'dataUrl' in img) images.push(await decodeDataUrl(img.dataUrl, img.option, host.binding.ImageBytes))
    else if (img !== null && typeof img === 'object' && 'audioBase64' in img) images.push(new AsAudio(await decodeBase64Audio(img.audioBase64, img.option, host.binding.ImageBytes)))
    else images.push(img as ImageInput | NativeEmbedding)
  }
  let raw: string
  try {
    raw = await host.binding.renderChat(host.native, JSON.stringify(chat.request), host.defaults.templateTimeoutMs)
  } catch (err) {
    throw fromNative(err)
  }
  const r = JSON.parse(raw) as NativeRendered
  const spec: NativeChatSpec = {
    parser: r.parser,
    format: r.format_id,
    generationPrompt: r.generation_prompt,
    reasoningFormat: chat.options.request.reasoning_format,
    parseToolCalls: r.parse_tool_calls,
    preservedTokens: r.preserved_tokens,
    grammarLazy: r.grammar_lazy,
    // A grammar the chat layer wrote for tools or a response format starts at the generation
    // prompt; a user's own grammar starts at the answer (common_grammar_needs_prefill).
    grammarPrefill: chat.request.grammar === undefined,
    triggers: r.grammar_triggers,
    thinkingStartTag: r.thinking_start_tag,
    thinkingEndTags: r.thinking_end_tags,
    reasoningBudget: chat.options.budget,
    reasoningBudgetMessage: chat.options.budgetMessage,
  }
  return {
    prompt: r.prompt,
    images,
    marker: chat.marker,
    grammar: r.grammar,
    stops: r.additional_stops,
    spec,
    format: r.format,
    supportsThinking: r.supports_thinking,
    thinking: r.enable_thinking && r.supports_thinking,
  }
}
