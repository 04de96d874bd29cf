// data: URLs of images, decoded in slices: a 50 MB URL decoded in one go (a regular expression over
// all of it, then base64) held the event loop for 0.4-1.3 s.
import { LlavaError } from '../errors'
import { AsAudio, looksLikeAudio } from '../audio'
import { NativeBytesImage } from '../image'
import { otherFormatOfMime, sniffOtherFormat } from '../media/sniff'
import type { BytesMaker } from '../native-types'

/** Characters of the URL decoded between two turns of the event loop (768 KB of bytes). */
const SLICE = 1 << 20
/** Decoded images from this size up go to native memory. */
const NATIVE_FROM = 1 << 20

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

function refuse(option: string, why: string): LlavaError {
  return new LlavaError('ERR_INVALID_ARGUMENT', `${option} is not a valid data: URL: ${why}`, { details: { option } })
}

/**
 * The bytes of a `data:[<type>][;base64],<data>` URL (RFC 2397); large ones in native memory. A
 * sound (an audio/* type, or WAV/MP3/FLAC bytes) comes back marked as one, whatever its size.
 */
export async function decodeDataUrl(url: string, option: string, bytesIn: BytesMaker): Promise<Buffer | NativeBytesImage | AsAudio> {
  // Only the header is looked at as text; the body is never scanned by a regular expression whole.
  const head = url.slice(0, 512)
  const comma = head.indexOf(',')
  if (!/^data:/i.test(head) || comma < 0) {
    throw new LlavaError(
      'ERR_INVALID_ARGUMENT',
      `${option} must be a data: URL (data:image/png;base64,…); remote URLs are not fetched — download the image and pass its bytes`,
      { details: { option } },
    )
  }
  const base64 = /;base64$/i.test(head.slice(0, comma))
  // formats decoded in JS (lib/media/other-formats.ts) stay in JS memory, where they are read: told by the
  // media type, or by the first bytes (a type may be missing or wrong)
  const first = base64 ? Buffer.from(url.slice(comma + 1, comma + 1 + 88).replace(/\s+/g, ''), 'base64') : Buffer.alloc(0)
  const mime = head.slice(5, comma).split(';')[0]
  const inJs = otherFormatOfMime(mime) !== undefined || sniffOtherFormat(first) !== undefined
  const bytes = await (base64 ? decodeBase64(url, comma + 1, option, inJs, bytesIn) : decodePercent(url, comma + 1, option))
  const audio = /^audio\//i.test(mime) || looksLikeAudio(base64 ? first : bytes instanceof Buffer ? bytes.subarray(0, 12) : first)
  return audio ? new AsAudio(bytes) : bytes
}

/** The bytes of base64 text (an OpenAI `input_audio` part's data), decoded the same way. */
export async function decodeBase64Audio(text: string, option: string, bytesIn: BytesMaker): Promise<Buffer | NativeBytesImage> {
  if (text.length === 0) throw new LlavaError('ERR_INVALID_ARGUMENT', `${option} is empty: give base64 of a WAV, MP3 or FLAC file`, { details: { option } })
  return decodeBase64(text, 0, option, false, bytesIn).catch((err: unknown) => {
    if (err instanceof LlavaError) throw new LlavaError('ERR_INVALID_ARGUMENT', `${option} is not valid base64: its data holds characters that base64 does not use`, { details: { option } })
    throw err
  })
}

// Large images are decoded straight into native memory, a slice at a time through one small
// buffer: a JS allocation of the whole image would only be copied again, and tens of megabytes of
// new external memory make V8 collect garbage, a pause on the JS thread.
async function decodeBase64(url: string, start: number, option: string, inJs: boolean, bytesIn: BytesMaker): Promise<Buffer | NativeBytesImage> {
  const bound = Math.ceil(((url.length - start) * 3) / 4) + 3
  const native = bound >= NATIVE_FROM && !inJs ? new bytesIn(bound) : undefined
  const out = native ? Buffer.allocUnsafe(Math.ceil((SLICE * 3) / 4) + 3) : Buffer.allocUnsafe(bound)
  let written = 0
  let carry = ''
  for (let i = start; i < url.length; i += SLICE) {
    if (i > start) await yieldToLoop()
    let part = carry + url.slice(i, i + SLICE)
    if (/[^A-Za-z0-9+/=_-]/.test(part)) {
      part = part.replace(/\s+/g, '')
      if (/[^A-Za-z0-9+/=_-]/.test(part)) throw refuse(option, 'its base64 data holds characters that base64 does not use')
    }
    const last = i + SLICE >= url.length
    const usable = last ? part.length : part.length - (part.length % 4)
    carry = part.slice(usable)
    if (native) native.copyFrom(out, 0, out.write(part.slice(0, usable), 0, 'base64'))
    else written += out.write(part.slice(0, usable), written, 'base64')
  }
  if (!native) return out.subarray(0, written)
  native.seal()
  return new NativeBytesImage(native)
}

const HEX = /^[0-9A-Fa-f]{2}$/

async function decodePercent(url: string, start: number, option: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let i = start
  while (i < url.length) {
    if (i > start) await yieldToLoop()
    let end = Math.min(url.length, i + SLICE)
    // Never split a %XX escape or a surrogate pair.
    if (end < url.length) {
      if (url[end - 1] === '%') end -= 1
      else if (url[end - 2] === '%') end -= 2
      const code = url.charCodeAt(end - 1)
      if (code >= 0xd800 && code <= 0xdbff) end--
    }
    const bytes = Buffer.from(url.slice(i, end), 'utf8')
    const outPart = Buffer.allocUnsafe(bytes.length)
    let n = 0
    for (let k = 0; k < bytes.length; k++) {
      if (bytes[k] !== 0x25) {
        outPart[n++] = bytes[k]
        continue
      }
      const hex = bytes.toString('latin1', k + 1, k + 3)
      if (!HEX.test(hex)) throw refuse(option, "a '%' in its data is not followed by two hexadecimal digits")
      outPart[n++] = parseInt(hex, 16)
      k += 2
    }
    parts.push(outPart.subarray(0, n))
    i = end
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts)
}
