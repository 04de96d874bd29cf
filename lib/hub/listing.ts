// What a repository holds at a commit, asked the way llama.cpp asks (common/hf-cache.cpp):
// GET api/models/<repo>/refs for the commit of `main`, then api/models/<repo>/tree/<commit>?recursive=true.
import { LlavaError } from '../errors'
import { isSafeSubpath, isValidCommit, isValidOid } from './cache'
import { getJson, type HttpContext } from './http'

export interface RemoteFile {
  /** Path inside the repository, with '/'. */
  path: string
  /** The blob name: the LFS sha256 for large files, the git object id otherwise. */
  oid?: string
  size?: number
}

const MAX_FILES = 100_000
const MAX_PAGES = 200
const MAX_PATH = 1024

/** The commit a repository's `main` branch points at (or its first branch), with the branch's name. */
export async function remoteCommit(endpoint: string, repo: string, ctx: HttpContext): Promise<{ branch: string; commit: string }> {
  const url = `${endpoint}api/models/${repo}/refs`
  const { json } = await getJson(url, ctx, `the repository ${repo}`)
  const branches = (json as { branches?: unknown })?.branches
  if (!Array.isArray(branches)) throw new LlavaError('ERR_DOWNLOAD', `the hub's refs for ${repo} have no branches list`, { details: { url } })
  let found: { branch: string; commit: string } | undefined
  for (const b of branches as Array<{ name?: unknown; targetCommit?: unknown }>) {
    if (typeof b?.name !== 'string' || typeof b.targetCommit !== 'string') continue
    if (!isSafeSubpath(b.name) || !isValidCommit(b.targetCommit)) continue
    if (b.name === 'main') return { branch: 'main', commit: b.targetCommit }
    found ??= { branch: b.name, commit: b.targetCommit }
  }
  if (!found) throw new LlavaError('ERR_NOT_FOUND_REMOTE', `the repository ${repo} has no branch to download from`, { details: { url } })
  return found
}

function nextLink(header: string | null): string | undefined {
  if (!header) return undefined
  for (const part of header.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part)
    if (m) return m[1]
  }
  return undefined
}

/** Every file of the repository at `commit`, in the hub's order, with llama.cpp's entry checks. */
export async function remoteFiles(endpoint: string, repo: string, commit: string, ctx: HttpContext): Promise<RemoteFile[]> {
  let url: string | undefined = `${endpoint}api/models/${repo}/tree/${commit}?recursive=true`
  const files: RemoteFile[] = []
  const origin = new URL(endpoint).origin
  for (let page = 0; url && page < MAX_PAGES; page++) {
    const { json, response } = await getJson(url, ctx, `the file list of ${repo}`)
    if (!Array.isArray(json)) throw new LlavaError('ERR_DOWNLOAD', `the hub's file list for ${repo} is not an array`, { details: { url } })
    for (const item of json as Array<Record<string, unknown>>) {
      if (item?.type !== 'file' || typeof item.path !== 'string') continue
      // (a path is matched with std::regex, whose recursion grows with the input: hub paths are short)
      if (item.path.length > MAX_PATH || !isSafeSubpath(item.path)) continue
      const lfs = item.lfs as { oid?: unknown; size?: unknown } | undefined
      let oid: string | undefined
      let size: number | undefined
      if (lfs && typeof lfs === 'object') {
        if (typeof lfs.oid === 'string') oid = lfs.oid
        if (typeof lfs.size === 'number') size = lfs.size
      } else if (typeof item.oid === 'string') {
        oid = item.oid
      }
      if (size === undefined && typeof item.size === 'number') size = item.size
      if (oid !== undefined && !isValidOid(oid)) continue
      if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) size = undefined
      files.push({ path: item.path, oid: oid?.toLowerCase(), size })
      if (files.length > MAX_FILES) throw new LlavaError('ERR_DOWNLOAD', `${repo} lists more than ${MAX_FILES} files`)
    }
    const next = nextLink(response.headers.get('link'))
    url = next && new URL(next, url).origin === origin ? new URL(next, url).href : undefined
  }
  return files
}
