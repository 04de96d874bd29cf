// Media the model's projector has no encoder for, refused before any work: sound without an
// audio encoder, images without a projector. A path is told image or sound only when its file is
// opened; the native side then says which encoder is missing.

import { LlavaError } from '../errors'
import type { NativeEmbedding, NativeMediaInput } from '../native-types'
import type { MediaEmbedding } from './embedding'

interface Projector {
  supportsAudio: boolean
}

/** Throws ERR_NO_AUDIO when `input`, named `where`, is a sound the projector cannot hear. */
export function refuseUnheard(projector: Projector | null, input: NativeMediaInput, where: string): void {
  if (input.kind !== 'audio' || projector?.supportsAudio) return
  throw new LlavaError(
    'ERR_NO_AUDIO',
    projector
      ? `${where} is a sound, but this projector has no audio encoder (it takes images only).`
      : `${where} is a sound, but the model was loaded without a projector: pass the \`mmproj\` of an audio model to loadModel().`,
  )
}

/** Throws ERR_NO_VISION when there is no projector for inputs known to be images. */
export function refuseUnseen(projector: Projector | null, inputs: ReadonlyArray<NativeMediaInput | MediaEmbedding | NativeEmbedding>): void {
  if (projector || !inputs.some((x) => !('kind' in x) || x.kind !== 'path')) return
  throw new LlavaError('ERR_NO_VISION', 'Images were given but the model was loaded without a projector: pass `mmproj` to loadModel().')
}
