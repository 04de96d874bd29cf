// Chat messages → one prompt through the model's chat template, with mtmd's media marker where
// each image goes. Jinja templates run in @huggingface/jinja; llama.cpp's built-in engine is the
// fallback for templates it cannot run.
import { Template } from '@huggingface/jinja'
import { LlavaError } from './errors'
import { ImageEmbedding, type ImageInput } from './image'
import type { Model } from './model'
import * as v from './validate'

export type ChatRole = 'system' | 'user' | 'assistant'

export type ChatContentPart =
  | { type: 'text'; text: string }
  | { type: 'image'; image: ImageInput | ImageEmbedding }
  | { type: 'image_url'; image_url: { url: string } | string }

export interface ChatMessage {
  role: ChatRole
  content: string | ChatContentPart[]
}

export interface RenderedChat {
  prompt: string
  images: Array<ImageInput | ImageEmbedding>
  /** The media marker used in `prompt`. */
  marker: string
  /** Whether the tokenizer should add BOS (false when the template already wrote it). */
  addSpecial: boolean
}

const ROLES: readonly string[] = ['system', 'user', 'assistant']

function decodeDataUrl(url: string, option: string): Uint8Array {
  const m = /^data:([^;,]*)(;base64)?,(.*)$/s.exec(url)
  if (!m) {
    throw new LlavaError('ERR_INVALID_ARGUMENT', `${option} must be a data: URL (data:image/png;base64,…); remote URLs are not fetched — download the image and pass its bytes`, {
      details: { option },
    })
  }
  return m[2] ? Buffer.from(m[3], 'base64') : Buffer.from(decodeURIComponent(m[3]), 'latin1')
}

function flatten(messages: unknown, marker: string): { flat: Array<{ role: string; content: string }>; images: RenderedChat['images'] } {
  if (!Array.isArray(messages) || messages.length === 0) throw v.invalid('messages', 'a non-empty array of chat messages', messages)
  const images: RenderedChat['images'] = []
  const flat = messages.map((msg: unknown, i) => {
    const where = `messages[${i}]`
    if (msg === null || typeof msg !== 'object') throw v.invalid(where, 'a message { role, content }', msg)
    const { role, content } = msg as ChatMessage
    if (!ROLES.includes(role)) throw v.invalid(`${where}.role`, "'system', 'user' or 'assistant'", role)
    if (typeof content === 'string') {
      if (content.includes(marker)) throw v.invalid(`${where}.content`, `text without the media marker ${marker}`, content)
      return { role, content }
    }
    if (!Array.isArray(content)) throw v.invalid(`${where}.content`, 'a string or an array of content parts', content)
    let text = ''
    content.forEach((part: unknown, k) => {
      const pw = `${where}.content[${k}]`
      const p = part as ChatContentPart
      if (p === null || typeof p !== 'object') throw v.invalid(pw, "a content part { type: 'text' | 'image' | 'image_url', … }", part)
      if (p.type === 'text') {
        if (typeof p.text !== 'string') throw v.invalid(`${pw}.text`, 'a string', p.text)
        if (p.text.includes(marker)) throw v.invalid(`${pw}.text`, `text without the media marker ${marker}`, p.text)
        text += p.text
      } else if (p.type === 'image') {
        if (p.image === undefined) throw v.invalid(`${pw}.image`, 'an image input or ImageEmbedding', p.image)
        images.push(p.image)
        text += marker
      } else if (p.type === 'image_url') {
        const url = typeof p.image_url === 'string' ? p.image_url : p.image_url?.url
        if (typeof url !== 'string') throw v.invalid(`${pw}.image_url.url`, 'a data: URL string', url)
        images.push(decodeDataUrl(url, `${pw}.image_url.url`))
        text += marker
      } else {
        throw v.invalid(`${pw}.type`, "'text', 'image' or 'image_url'", (p as { type?: unknown }).type)
      }
    })
    return { role, content: text }
  })
  return { flat, images }
}

/** @internal */
export function renderChat(model: Model, messages: unknown, chatTemplate: string | undefined): RenderedChat {
  const marker = model.info.vision?.marker ?? '<__media__>'
  const { flat, images } = flatten(messages, marker)
  const template = chatTemplate ?? model.info.chatTemplate
  if (!template) {
    throw new LlavaError(
      'ERR_NO_CHAT_TEMPLATE',
      'The model has no chat template. Pass one with the chatTemplate option (a Jinja template, or a llama.cpp built-in name such as "vicuna", "chatml", "gemma").',
    )
  }
  const bos = model.detokenize([model.info.bosToken], { renderSpecial: true })
  const eos = model.detokenize([model.info.eosToken], { renderSpecial: true })
  let prompt: string
  if (/\{[%{]/.test(template)) {
    try {
      prompt = new Template(template).render({
        messages: flat,
        add_generation_prompt: true,
        bos_token: bos,
        eos_token: eos,
      })
    } catch (jinjaError) {
      prompt = builtIn(model, template, flat, jinjaError)
    }
  } else {
    prompt = builtIn(model, template, flat, undefined)
  }
  // A template that writes BOS itself must not get a second one from the tokenizer.
  return { prompt, images, marker, addSpecial: !(bos.length > 0 && prompt.startsWith(bos)) }
}

function builtIn(model: Model, template: string, flat: Array<{ role: string; content: string }>, cause: unknown): string {
  try {
    return model.native.applyChatTemplate(template, flat, true)
  } catch (err) {
    throw new LlavaError('ERR_NO_CHAT_TEMPLATE', `The chat template could not be applied: ${(cause as Error)?.message ?? (err as Error).message}`, {
      cause: cause ?? err,
    })
  }
}
