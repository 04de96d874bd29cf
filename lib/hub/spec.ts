// What a model string names: a file on disk, a URL, or a Hugging Face repository (with a quant tag
// or an exact file). Repository names follow the rules llama.cpp's hub cache applies.
import { LlavaError } from '../errors'

export type ModelSpec =
  | { kind: 'path'; path: string }
  | { kind: 'url'; url: URL }
  | { kind: 'hf'; repo: string; tag: string; file: string }

const TAG = /^[A-Za-z0-9_.-]{1,64}$/
const MAX_FILE_PATH = 1024

/** True for the strings resolveModel downloads rather than opens. */
export function isRemoteSpec(s: string): boolean {
  return s.startsWith('hf:') || s.startsWith('https://') || s.startsWith('http://')
}

/**
 * llama.cpp's is_valid_repo_id (common/hf-cache.cpp): `[A-Za-z0-9_]` runs joined by single `/`, `.`
 * or `-`, exactly one `/`, at most 256 characters.
 */
export function isValidRepoId(repo: string): boolean {
  return repo.length > 0 && repo.length <= 256 && /^[A-Za-z0-9_]+(?:[/.-][A-Za-z0-9_]+)*$/.test(repo) && repo.split('/').length === 2
}

function bad(spec: string, why: string): LlavaError {
  return new LlavaError('ERR_INVALID_ARGUMENT', `${JSON.stringify(spec)} is not a model name llava-native understands: ${why}`, {
    details: { option: 'model' },
  })
}

/** Splits a remote model string into its parts; anything else is a local path. */
export function parseModelSpec(spec: string): ModelSpec {
  if (spec.startsWith('http://') || spec.startsWith('https://')) {
    let url: URL
    try {
      url = new URL(spec)
    } catch {
      throw bad(spec, 'the URL does not parse')
    }
    if (!url.pathname.toLowerCase().endsWith('.gguf')) throw bad(spec, 'a model URL must name a .gguf file')
    return { kind: 'url', url }
  }
  if (!spec.startsWith('hf:')) return { kind: 'path', path: spec }
  const rest = spec.slice(3)
  const parts = rest.split('/')
  if (parts.length < 2) throw bad(spec, "expected 'hf:owner/repo', 'hf:owner/repo:QUANT' or 'hf:owner/repo/path/to/file.gguf'")
  if (parts.length > 2) {
    // hf:owner/repo/path/to/file.gguf
    const repo = parts.slice(0, 2).join('/')
    const file = parts.slice(2).join('/')
    if (!isValidRepoId(repo)) throw bad(spec, `${JSON.stringify(repo)} is not a valid repository name (owner/name, letters, digits, _ . -)`)
    if (!file.toLowerCase().endsWith('.gguf') || file.length > MAX_FILE_PATH || file.split('/').some((s) => s === '' || s === '.' || s === '..')) {
      throw bad(spec, 'the file part must be a relative path to a .gguf file inside the repository')
    }
    return { kind: 'hf', repo, tag: '', file }
  }
  const colon = parts[1].split(':')
  if (colon.length > 2) throw bad(spec, "one ':' at most, before the quant tag")
  const repo = `${parts[0]}/${colon[0]}`
  const tag = colon.length === 2 ? colon[1] : ''
  if (!isValidRepoId(repo)) throw bad(spec, `${JSON.stringify(repo)} is not a valid repository name (owner/name, letters, digits, _ . -)`)
  if (colon.length === 2 && !TAG.test(tag)) throw bad(spec, `the quant tag ${JSON.stringify(tag)} may only hold letters, digits, '_', '.' and '-' (e.g. Q4_K_M)`)
  return { kind: 'hf', repo, tag, file: '' }
}

/** `owner/repo[:tag]`, the form llama.cpp's -hf takes. */
export function repoWithTag(spec: { repo: string; tag: string }): string {
  return spec.tag ? `${spec.repo}:${spec.tag}` : spec.repo
}
