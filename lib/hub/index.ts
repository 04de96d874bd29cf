// Models by name: `hf:owner/repo[:QUANT]`, `hf:owner/repo/file.gguf` or a URL, resolved to files in
// the Hugging Face hub cache that llama.cpp and huggingface_hub share.
import * as path from 'node:path'
import { LlavaError } from '../errors'
import { type CachedModel, listCachedModels as listIn, removeCached } from './cache'
import { hubCacheDir } from './cache-dir'
import { parseModelSpec } from './spec'

export { resolveModel } from './resolve'
export type { ResolveModelOptions, ResolvedModel, ResolvedFile } from './resolve'
export type { DownloadProgress } from './progress'
export type { CachedModel } from './cache'
export { isRemoteSpec } from './spec'

/** The models in the hub cache (as `llama-cli` lists them), with their files and sizes. */
export function listCachedModels(options: { cacheDir?: string } = {}): CachedModel[] {
  return listIn(path.resolve(options.cacheDir ?? hubCacheDir()))
}

/**
 * Removes `hf:owner/repo` (the whole repository) or `hf:owner/repo:QUANT` (that quant's files and
 * the blobs nothing else uses) from the cache, as `llama-cli`'s removal does. Returns the paths removed.
 */
export function removeCachedModel(model: string, options: { cacheDir?: string } = {}): string[] {
  const spec = parseModelSpec(model)
  if (spec.kind !== 'hf' || spec.file) {
    throw new LlavaError('ERR_INVALID_ARGUMENT', `removeCachedModel takes 'hf:owner/repo' or 'hf:owner/repo:QUANT', not ${JSON.stringify(model)}`)
  }
  return removeCached(path.resolve(options.cacheDir ?? hubCacheDir()), spec.repo, spec.tag)
}
