import type { EncodeImageOptions, ImageEmbedding, Model } from '../../lib'
import type { Rgb } from './images'

/**
 * Whether `candidate` decodes to exactly `expected`'s pixels, told by the model's content ids: an
 * image whose pixels equal those of a live embedding is not encoded again.
 */
export async function samePixels(model: Model, expected: Rgb, candidate: Buffer | string, options?: EncodeImageOptions): Promise<{ same: boolean; embedding: ImageEmbedding }> {
  const reference = await model.encodeImage({ data: expected.rgb, width: expected.width, height: expected.height, format: 'rgb' })
  const before = model.imageEncodeCount
  const embedding = await model.encodeImage(candidate, options)
  const same = model.imageEncodeCount === before
  await reference.dispose()
  return { same, embedding }
}
