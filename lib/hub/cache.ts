// The hub cache layout (https://huggingface.co/docs/huggingface_hub/guides/manage-cache), read and
// written the way llama.cpp's common/hf-cache.cpp and huggingface_hub do:
//   models--owner--repo/refs/main              the commit `main` points at
//   models--owner--repo/blobs/<sha256|git oid> file contents, named by the hub's checksum
//   models--owner--repo/snapshots/<commit>/<path> -> ../../blobs/<oid> (relative symlinks)
import * as fs from 'node:fs'
import * as path from 'node:path'

const COMMIT = /^[0-9a-fA-F]{40}$/
const OID = /^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/

export function isValidCommit(s: string): boolean {
  return COMMIT.test(s)
}

export function isValidOid(s: string): boolean {
  return OID.test(s)
}

export function repoFolderName(repo: string): string {
  return 'models--' + repo.split('/').join('--')
}

export function repoFromFolderName(folder: string): string | undefined {
  if (!folder.startsWith('models--')) return undefined
  return folder.slice('models--'.length).split('--').join('/')
}

export function repoDir(cacheDir: string, repo: string): string {
  return path.join(cacheDir, repoFolderName(repo))
}

/** True when `sub` stays inside `base` (no absolute path, no `..` escape): hf-cache.cpp's is_valid_subpath. */
export function isSafeSubpath(sub: string): boolean {
  if (sub === '' || path.posix.isAbsolute(sub) || path.win32.isAbsolute(sub) || sub.includes('\\') || sub.includes('\0')) return false
  const normal = path.posix.normalize(sub)
  return normal !== '..' && !normal.startsWith('../') && normal !== '.'
}

/** The commit a cached repository points at: refs/main, else the first valid ref (as llama.cpp). */
export function readCachedRef(repoPath: string): string | undefined {
  const refs = path.join(repoPath, 'refs')
  let names: string[]
  try {
    names = fs.readdirSync(refs)
  } catch {
    return undefined
  }
  let fallback: string | undefined
  for (const name of names) {
    let commit: string
    try {
      const p = path.join(refs, name)
      if (!fs.statSync(p).isFile()) continue
      commit = fs.readFileSync(p, 'utf8').split('\n')[0].trim()
    } catch {
      continue
    }
    if (!isValidCommit(commit)) continue
    if (name === 'main') return commit
    fallback ??= commit
  }
  return fallback
}

export function writeRef(repoPath: string, name: string, commit: string): void {
  const file = path.join(repoPath, 'refs', name)
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, commit)
  fs.renameSync(tmp, file)
}

/** Every file (or link) under a snapshot, as repository paths with '/', in directory order. */
export function listSnapshot(snapshotDir: string): string[] {
  const out: string[] = []
  const walk = (dir: string, prefix: string, depth: number): void => {
    if (depth > 32) return
    let entries: fs.Dirent[]
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name
      if (e.isDirectory()) walk(path.join(dir, e.name), rel, depth + 1)
      else if (e.isFile() || e.isSymbolicLink()) out.push(rel)
    }
  }
  walk(snapshotDir, '', 0)
  return out
}

export interface CachedSnapshot {
  repo: string
  commit: string
  dir: string
  files: string[]
}

/** The snapshot the cache's ref points at, or undefined when the repository is not cached. */
export function cachedSnapshot(cacheDir: string, repo: string): CachedSnapshot | undefined {
  const rp = repoDir(cacheDir, repo)
  const commit = readCachedRef(rp)
  if (!commit) return undefined
  const dir = path.join(rp, 'snapshots', commit)
  try {
    if (!fs.statSync(dir).isDirectory()) return undefined
  } catch {
    return undefined
  }
  return { repo, commit, dir, files: listSnapshot(dir) }
}

/** A complete file: exists, and a link resolves to a regular file. */
export function isPresent(p: string): boolean {
  try {
    return fs.statSync(p).isFile()
  } catch {
    return false
  }
}

/**
 * Puts a verified blob at its snapshot path: a relative symlink, or (where links are not allowed,
 * e.g. Windows without developer mode) the blob itself moved there, as huggingface_hub and
 * llama.cpp degrade.
 */
export function linkIntoSnapshot(blob: string, finalPath: string): void {
  if (isPresent(finalPath)) return
  fs.mkdirSync(path.dirname(finalPath), { recursive: true })
  try {
    fs.rmSync(finalPath, { force: true }) // a dangling link left by a removed blob
  } catch {
    // nothing there
  }
  const target = path.relative(path.dirname(finalPath), blob)
  try {
    fs.symlinkSync(target, finalPath)
    return
  } catch (e) {
    // another process linked it first
    if ((e as NodeJS.ErrnoException).code === 'EEXIST' && isPresent(finalPath)) return
    // otherwise: no symlinks here
  }
  try {
    fs.renameSync(blob, finalPath)
  } catch {
    // a copy lands under a temporary name first: an interrupted copy is never taken for the file
    const tmp = `${finalPath}.${process.pid}.copy`
    fs.copyFileSync(blob, tmp)
    fs.renameSync(tmp, finalPath)
  }
}

/** llama.cpp's get_gguf_split_info: the file's prefix (tag included), its quant tag and split numbers. */
export function ggufSplitInfo(file: string): { prefix: string; tag: string; index: number; count: number } | undefined {
  if (!file.endsWith('.gguf')) return undefined
  let prefix = file.slice(0, -'.gguf'.length)
  let index = 1
  let count = 1
  const m = /^(.+)-([0-9]{5})-of-([0-9]{5})$/i.exec(prefix)
  if (m) {
    index = Number(m[2])
    count = Number(m[3])
    prefix = m[1]
  }
  const t = /[-.]([A-Z0-9_]+)$/i.exec(prefix)
  return { prefix, tag: t ? t[1].toUpperCase() : '', index, count }
}

const SIDECARS = ['mmproj', 'mtp-', 'eagle3-', 'dflash-', 'dspark-']

export interface CachedModel {
  /** `owner/repo` */
  repo: string
  /** The quant tag, upper-case, as llama.cpp lists it (`owner/repo:TAG`). */
  tag: string
  /** `hf:owner/repo:TAG`: what to pass to loadModel or the CLI. */
  name: string
  commit: string
  /** Snapshot paths of the model's files (every split part), first part first. */
  files: string[]
  /** Bytes on disk of those files. */
  size: number
}

function sizeOf(p: string): number {
  try {
    return fs.statSync(p).size
  } catch {
    return 0
  }
}

/** The models in the cache, as llama.cpp's common_list_cached_models sees them, with their sizes. */
export function listCachedModels(cacheDir: string): CachedModel[] {
  let folders: string[]
  try {
    folders = fs.readdirSync(cacheDir)
  } catch {
    return []
  }
  const out: CachedModel[] = []
  for (const folder of folders) {
    const repo = repoFromFolderName(folder)
    if (!repo) continue
    const snap = cachedSnapshot(cacheDir, repo)
    if (!snap) continue
    // the model files (llama.cpp's list skips the projector and the draft sidecars), split info once
    const parts = snap.files.flatMap((f) => {
      const s = ggufSplitInfo(f)
      return s && s.tag && !SIDECARS.some((k) => s.prefix.includes(k)) ? [{ f, s }] : []
    })
    // one entry per tag that has a first part, in listing order
    const seen = new Map<string, CachedModel>()
    for (const { s } of parts) {
      if (s.index !== 1 || seen.has(s.tag)) continue
      const entry: CachedModel = { repo, tag: s.tag, name: `hf:${repo}:${s.tag}`, commit: snap.commit, files: [], size: 0 }
      seen.set(s.tag, entry)
      out.push(entry)
    }
    // every part of every listed model, and its size
    for (const { f, s } of parts) {
      const entry = seen.get(s.tag)
      if (!entry) continue
      const p = path.join(snap.dir, f)
      if (s.index === 1) entry.files.unshift(p)
      else entry.files.push(p)
      entry.size += sizeOf(p)
    }
  }
  return out
}

/**
 * llama.cpp's common_download_remove: without a tag the whole repository folder goes; with one,
 * the snapshot entries of that tag and the blobs nothing else links to. Returns the paths removed.
 */
export function removeCached(cacheDir: string, repo: string, tag: string): string[] {
  const rp = repoDir(cacheDir, repo)
  if (!tag) {
    if (!fs.existsSync(rp)) return []
    fs.rmSync(rp, { recursive: true, force: true })
    return [rp]
  }
  const snap = cachedSnapshot(cacheDir, repo)
  if (!snap) return []
  const upper = tag.toUpperCase()
  const doomed = snap.files.filter((f) => ggufSplitInfo(f)?.tag === upper).map((f) => path.join(snap.dir, f))
  const blobs = new Set<string>()
  for (const p of doomed) {
    try {
      if (fs.lstatSync(p).isSymbolicLink()) blobs.add(path.resolve(path.dirname(p), fs.readlinkSync(p)))
    } catch {
      // already gone
    }
  }
  for (const p of doomed) fs.rmSync(p, { force: true })
  const stillLinked = new Set<string>()
  const rest = cachedSnapshot(cacheDir, repo)
  for (const f of rest?.files ?? []) {
    const p = path.join(rest!.dir, f)
    try {
      if (fs.lstatSync(p).isSymbolicLink()) stillLinked.add(path.resolve(path.dirname(p), fs.readlinkSync(p)))
    } catch {
      // gone
    }
  }
  const removed = [...doomed]
  for (const b of blobs) {
    if (stillLinked.has(b)) continue
    fs.rmSync(b, { force: true })
    removed.push(b)
  }
  return removed
}
