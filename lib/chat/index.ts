// Chat messages → one prompt through the model's chat template, with mtmd's media marker where
// each image goes. Jinja templates run in @huggingface/jinja off the JS thread (template-worker.ts);
// llama.cpp's built-in engine is the fallback for templates it cannot run.
import { LlavaError } from '../errors'
import { ImageEmbedding, type ImageInput, type NativeBytesImage } from '../image'
import type { NativeEmbedding } from '../native-types'
import * as v from '../validate'
import { decodeDataUrl } from './data-url'
import { TemplateError, renderTemplate } from './template-worker'

export { DEFAULT_TEMPLATE_TIMEOUT_MS } from './template-worker'

/** What rendering needs of a model (kept to an interface, so this module does not import Model). */
export interface ChatHost {
  readonly info: { chatTemplate: string | null; bosToken: number; eosToken: number; vision: { marker: string } | null }
  readonly defaults: { templateTimeoutMs: number }
  detokenize(tokens: number[], options: { renderSpecial: boolean }): string
  readonly native: { applyChatTemplate(template: string | null, messages: Array<{ role: string; content: string }>, addAssistant: boolean): string }
}

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
  /** Inputs (large data: URLs already in native memory), and the call's own handles on embeddings (see PreparedChat). */
  images: Array<ImageInput | NativeEmbedding | NativeBytesImage>
  /** The media marker used in `prompt`. */
  marker: string
  /** Whether the tokenizer should add BOS (false when the template already wrote it). */
  addSpecial: boolean
}

const ROLES: readonly string[] = ['system', 'user', 'assistant']

/** An image part of a message: an input, an embedding, or a data: URL still to decode. */
type PendingImage = ImageInput | ImageEmbedding | NativeEmbedding | { dataUrl: string; option: string }

/**
 * Messages checked and flattened to text with media markers; what can throw synchronously has.
 * Embeddings are already the call's own handles (taken when the call was made, so the caller may
 * dispose theirs at once); release() drops them when the call is over.
 */
export interface PreparedChat {
  flat: Array<{ role: string; content: string }>
  images: PendingImage[]
  marker: string
  template: string
  release(): void
}

function flatten(messages: unknown, marker: string): { flat: PreparedChat['flat']; images: PendingImage[] } {
  if (!Array.isArray(messages) || messages.length === 0) throw v.invalid('messages', 'a non-empty array of chat messages', messages)
  const images: PendingImage[] = []
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
        images.push({ dataUrl: url, option: `${pw}.image_url.url` })
        text += marker
      } else {
        throw v.invalid(`${pw}.type`, "'text', 'image' or 'image_url'", (p as { type?: unknown }).type)
      }
    })
    return { role, content: text }
  })
  return { flat, images }
}

/** @internal Checks and flattens the messages; throws synchronously on bad input. */
export function prepareChat(host: ChatHost, messages: unknown, chatTemplate: string | undefined): PreparedChat {
  const marker = host.info.vision?.marker ?? '<__media__>'
  const { flat, images } = flatten(messages, marker)
  const template = chatTemplate ?? host.info.chatTemplate
  if (!template) {
    throw new LlavaError(
      'ERR_NO_CHAT_TEMPLATE',
      'The model has no chat template. Pass one with the chatTemplate option (a Jinja template, or a llama.cpp built-in name such as "vicuna", "chatml", "gemma").',
    )
  }
  const retained: NativeEmbedding[] = []
  const release = (): void => {
    for (const h of retained.splice(0)) h.dispose()
  }
  try {
    images.forEach((img, i) => {
      if (!(img instanceof ImageEmbedding)) return
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
  return { flat, images, marker, template, release }
}

/** @internal Decodes data: URLs and renders the template, both without holding the event loop. */
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
    images.push(img !== null && typeof img === 'object' && 'dataUrl' in img ? await decodeDataUrl(img.dataUrl, img.option) : (img as ImageInput | NativeEmbedding))
  }
  const bos = host.info.bosToken >= 0 ? host.detokenize([host.info.bosToken], { renderSpecial: true }) : ''
  const eos = host.info.eosToken >= 0 ? host.detokenize([host.info.eosToken], { renderSpecial: true }) : ''
  let prompt: string
  if (/\{[%{]/.test(chat.template)) {
    try {
      prompt = await renderTemplate(
        chat.template,
        { messages: chat.flat, add_generation_prompt: true, bos_token: bos, eos_token: eos },
        host.defaults.templateTimeoutMs,
      )
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err
      prompt = builtIn(host, chat.template, chat.flat, err)
    }
  } else {
    prompt = builtIn(host, chat.template, chat.flat, undefined)
  }
  // A template that writes BOS itself must not get a second one from the tokenizer.
  return { prompt, images, marker: chat.marker, addSpecial: !(bos.length > 0 && prompt.startsWith(bos)) }
}

function builtIn(host: ChatHost, template: string, flat: Array<{ role: string; content: string }>, cause: unknown): string {
  try {
    return host.native.applyChatTemplate(template, flat, true)
  } catch (err) {
    throw new LlavaError('ERR_NO_CHAT_TEMPLATE', `The chat template could not be applied: ${(cause as Error)?.message ?? (err as Error).message}`, {
      cause: cause ?? err,
    })
  }
}
