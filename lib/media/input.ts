// One media concept for prompts: an image or a sound, as an input to decode or already encoded.

import type { AudioInput } from '../audio'
import type { ImageInput } from '../image'
import type { MediaEmbedding } from './embedding'

/**
 * An image or a sound in a prompt's `media` or a chat message: told apart by shape (raw pixels,
 * raw PCM, an embedding) or by the first bytes of a buffer or file (WAV, MP3 and FLAC are sound).
 */
export type MediaInput = ImageInput | AudioInput | MediaEmbedding
