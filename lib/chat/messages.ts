// Chat messages as users write them (OpenAI's shape, plus images and sounds as inputs or
// embeddings) → the OpenAI-format JSON that llama.cpp's chat layer reads, with mtmd's media marker
// where each image or sound goes. Everything that can be refused synchronously is refused here.
import { AsAudio, type AudioEmbedding, type AudioInput } from '../audio'
import type { ImageEmbedding, ImageInput } from '../image'
import { MediaEmbedding } from '../media/embedding'
import * as v from '../validate'

export type ChatRole = 'system' | 'developer' | 'user' | 'assistant' | 'tool'

export type ChatContentPart =
  | { type: 'text'; text: string }
  | { type: 'image'; image: ImageInput | ImageEmbedding }
  | { type: 'image_url'; image_url: { url: string } | string }
  /** A sound: a path, a WAV/MP3/FLAC buffer, raw PCM, or an AudioEmbedding. */
  | { type: 'audio'; audio: AudioInput | AudioEmbedding }
  /** OpenAI's shape: base64 of a WAV or MP3 (FLAC too) file. */
  | { type: 'input_audio'; input_audio: { data: string; format: 'wav' | 'mp3' | 'flac' } }

/** A tool call of an assistant message: as a chat result gives it, or in OpenAI's shape. */
export type ChatMessageToolCall =
  | { id?: string; name: string; arguments: string | Record<string, unknown> }
  | { id?: string; type: 'function'; function: { name: string; arguments: string | Record<string, unknown> } }

export interface ChatMessage {
  role: ChatRole
  /** Text, or parts (text, images and sounds, in order). May be null on an assistant message that only calls tools. */
  content: string | ChatContentPart[] | null
  /** An assistant turn's thinking (a chat result's `reasoning`), for templates that render it. */
  reasoning?: string
  /** An assistant turn's tool calls (a chat result's `toolCalls`, or OpenAI's `tool_calls`). */
  toolCalls?: ChatMessageToolCall[]
  tool_calls?: ChatMessageToolCall[]
  /** A tool message: the id of the call it answers (`toolCallId` or OpenAI's `tool_call_id`). */
  toolCallId?: string
  tool_call_id?: string
  /** A tool message: the tool's name. */
  name?: string
}

const ROLES: readonly string[] = ['system', 'developer', 'user', 'assistant', 'tool']
const MESSAGE_KEYS = ['role', 'content', 'reasoning', 'toolCalls', 'tool_calls', 'toolCallId', 'tool_call_id', 'name', 'reasoning_content']

/**
 * A media part of a message: an input, an embedding, a data: URL still to decode, or base64 sound
 * still to decode.
 */
export type PendingImage =
  | ImageInput
  | ImageEmbedding
  | AudioEmbedding
  | AsAudio
  | { dataUrl: string; option: string }
  | { audioBase64: string; option: string }

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

function noMarker(where: string, text: string, marker: string): string {
  if (text.includes(marker)) throw v.invalid(where, `text without the media marker ${marker}`, text)
  return text
}

function toolCallJson(call: unknown, where: string): Json {
  if (call === null || typeof call !== 'object') throw v.invalid(where, 'a tool call { id?, name, arguments }', call)
  const c = call as Record<string, unknown>
  const fnPart = (c.type === 'function' && c.function !== null && typeof c.function === 'object' ? c.function : c) as Record<string, unknown>
  const name = v.str(`${where}.name`, fnPart.name)
  const args = fnPart.arguments
  let argsText: string
  if (typeof args === 'string') argsText = args
  else if (args !== null && typeof args === 'object' && !Array.isArray(args)) argsText = JSON.stringify(args)
  else throw v.invalid(`${where}.arguments`, 'a JSON object or its text', args)
  const out: { [k: string]: Json } = { type: 'function', function: { name, arguments: argsText } }
  if (c.id !== undefined) out.id = v.str(`${where}.id`, c.id)
  return out
}

/** The messages as OpenAI JSON for llama.cpp's chat layer, and their images in order. */
export function toChatJson(messages: unknown, marker: string): { json: Json[]; images: PendingImage[] } {
  if (!Array.isArray(messages) || messages.length === 0) throw v.invalid('messages', 'a non-empty array of chat messages', messages)
  const images: PendingImage[] = []
  const json = messages.map((msg: unknown, i): Json => {
    const where = `messages[${i}]`
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw v.invalid(where, 'a message { role, content }', msg)
    v.checkKeys(where, msg, MESSAGE_KEYS)
    const m = msg as ChatMessage & { reasoning_content?: string }
    if (!ROLES.includes(m.role)) throw v.invalid(`${where}.role`, "'system', 'developer', 'user', 'assistant' or 'tool'", m.role)
    const out: { [k: string]: Json } = { role: m.role }
    const calls = m.toolCalls ?? m.tool_calls
    if (calls !== undefined) {
      if (m.role !== 'assistant') throw v.invalid(`${where}.toolCalls`, 'tool calls on assistant messages only', calls)
      if (!Array.isArray(calls)) throw v.invalid(`${where}.toolCalls`, 'an array of tool calls', calls)
      out.tool_calls = calls.map((c, k) => toolCallJson(c, `${where}.toolCalls[${k}]`))
    }
    const content: unknown = m.content
    if (content === null || content === undefined) {
      if (m.role !== 'assistant' || calls === undefined) throw v.invalid(`${where}.content`, 'a string or an array of content parts', content)
      out.content = null
    } else if (typeof content === 'string') {
      out.content = noMarker(`${where}.content`, content, marker)
    } else if (Array.isArray(content)) {
      out.content = content.map((part: unknown, k): Json => {
        const pw = `${where}.content[${k}]`
        const p = part as ChatContentPart
        if (p === null || typeof p !== 'object') throw v.invalid(pw, "a content part { type: 'text' | 'image' | 'image_url' | 'audio' | 'input_audio', … }", part)
        if (p.type === 'text') {
          if (typeof p.text !== 'string') throw v.invalid(`${pw}.text`, 'a string', p.text)
          return { type: 'text', text: noMarker(`${pw}.text`, p.text, marker) }
        }
        if (p.type === 'image') {
          if (p.image === undefined) throw v.invalid(`${pw}.image`, 'an image input or ImageEmbedding', p.image)
          images.push(p.image)
          return { type: 'media_marker', text: marker }
        }
        if (p.type === 'image_url') {
          const url = typeof p.image_url === 'string' ? p.image_url : p.image_url?.url
          if (typeof url !== 'string') throw v.invalid(`${pw}.image_url.url`, 'a data: URL string', url)
          images.push({ dataUrl: url, option: `${pw}.image_url.url` })
          return { type: 'media_marker', text: marker }
        }
        if (p.type === 'audio') {
          if (p.audio === undefined) throw v.invalid(`${pw}.audio`, 'an audio input or AudioEmbedding', p.audio)
          // an embedding is told by its class; anything else is decoded as sound, whatever it looks like
          images.push(p.audio instanceof MediaEmbedding ? (p.audio as AudioEmbedding) : new AsAudio(p.audio))
          return { type: 'media_marker', text: marker }
        }
        if (p.type === 'input_audio') {
          const a = p.input_audio
          if (a === null || typeof a !== 'object' || typeof a.data !== 'string') throw v.invalid(`${pw}.input_audio.data`, 'base64 of a WAV, MP3 or FLAC file', a?.data)
          if (!['wav', 'mp3', 'flac'].includes(a.format)) throw v.invalid(`${pw}.input_audio.format`, "'wav', 'mp3' or 'flac'", a.format)
          images.push({ audioBase64: a.data, option: `${pw}.input_audio.data` })
          return { type: 'media_marker', text: marker }
        }
        throw v.invalid(`${pw}.type`, "'text', 'image', 'image_url', 'audio' or 'input_audio'", (p as { type?: unknown }).type)
      })
    } else {
      throw v.invalid(`${where}.content`, 'a string or an array of content parts', content)
    }
    const reasoning = m.reasoning ?? m.reasoning_content
    if (reasoning !== undefined) {
      if (typeof reasoning !== 'string') throw v.invalid(`${where}.reasoning`, 'a string', reasoning)
      out.reasoning_content = noMarker(`${where}.reasoning`, reasoning, marker)
    }
    const callId = m.toolCallId ?? m.tool_call_id
    if (callId !== undefined) out.tool_call_id = v.str(`${where}.toolCallId`, callId)
    if (m.name !== undefined) out.name = v.str(`${where}.name`, m.name)
    return out
  })
  return { json, images }
}
