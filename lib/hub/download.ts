// One file from the hub (or a URL) to its place on disk, never half: bytes go to `<dest>.incomplete`,
// an interrupted transfer resumes there with a Range request, the size and checksum the hub lists
// are checked, and only a verified file is renamed to `dest`.
import { createHash, type Hash } from 'node:crypto'
import * as fs from 'node:fs'
import { LlavaError } from '../errors'
import { Deadline, type HttpContext, request, sleep, statusError, TransientError } from './http'

export interface FileToFetch {
  url: string
  dest: string
  /** A name for messages and progress (the repository path). */
  label: string
  /** Bytes the hub lists; a transfer that announces or sends another size is refused. */
  size?: number
  /** The hub's checksum: a 64-hex LFS sha256, or a 40-hex git blob sha1. */
  oid?: string
}

export interface FetchCallbacks {
  /** `downloaded` bytes of this file are on disk (resumed bytes included); `total` when known. */
  progress(downloaded: number, total: number | undefined, phase: 'download' | 'verify'): void
}

export interface FetchOptions extends HttpContext {
  retries: number
  retryDelayMs: number
}

const CHECKSUM_RESTARTS = 1

function sizeOnDisk(p: string): number {
  try {
    const st = fs.lstatSync(p)
    if (st.isFile()) return st.size
    fs.rmSync(p, { force: true, recursive: true }) // not ours: a link or a directory is not resumed into
  } catch {
    // nothing yet
  }
  return 0
}

function newHasher(oid: string | undefined, size: number): { hash: Hash; algo: string } | undefined {
  if (!oid) return undefined
  if (oid.length === 64) return { hash: createHash('sha256'), algo: 'sha256' }
  // git's object id of a blob: sha1("blob <size>\0" + content)
  const hash = createHash('sha1')
  hash.update(`blob ${size}\0`)
  return { hash, algo: 'git sha1' }
}

async function checksum(file: string, oid: string, size: number, signal: AbortSignal | undefined): Promise<{ ok: boolean; actual: string; algo: string }> {
  const h = newHasher(oid, size)!
  const stream = fs.createReadStream(file, { highWaterMark: 1 << 20 })
  try {
    for await (const chunk of stream) {
      if (signal?.aborted) throw signal.reason
      h.hash.update(chunk as Buffer)
    }
  } finally {
    stream.destroy()
  }
  const actual = h.hash.digest('hex')
  return { ok: actual === oid.toLowerCase(), actual, algo: h.algo }
}

function writeError(err: unknown, file: string): LlavaError {
  const e = err as NodeJS.ErrnoException
  const why = e.code === 'ENOSPC' ? 'the disk is full' : e.code === 'EFBIG' ? 'the file is larger than this system allows' : e.message
  return new LlavaError('ERR_DOWNLOAD', `could not write ${file}: ${why}. The part already downloaded stays there and the next attempt resumes it.`, {
    cause: err,
    details: { path: file, errno: e.code },
  })
}

/** Content-Range "bytes a-b/total" → [a, total]. */
function contentRange(value: string | null): [number, number | undefined] | undefined {
  const m = value ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim()) : null
  if (!m) return undefined
  return [Number(m[1]), m[3] === '*' ? undefined : Number(m[3])]
}

/** One attempt: appends to the partial file from where it ends. Transient failures throw TransientError. */
async function transfer(file: FileToFetch, partial: string, opts: FetchOptions, cb: FetchCallbacks): Promise<void> {
  let have = sizeOnDisk(partial)
  if (file.size !== undefined && have > file.size) {
    fs.rmSync(partial, { force: true })
    have = 0
  }
  if (file.size !== undefined && have === file.size) return
  const deadline = new Deadline(opts.timeoutMs, opts.signal)
  try {
    const { response, url } = await request(file.url, opts, deadline, { headers: have > 0 ? { range: `bytes=${have}-` } : {} })
    let total: number | undefined
    if (response.status === 206) {
      const range = contentRange(response.headers.get('content-range'))
      if (!range || range[0] !== have) {
        await response.body?.cancel().catch(() => undefined)
        fs.rmSync(partial, { force: true })
        throw new TransientError(`${file.label}: the server answered the resume from byte ${have} with another range; starting over`)
      }
      total = range[1]
    } else if (response.status === 200) {
      if (have > 0) {
        fs.truncateSync(partial, 0) // the server does not resume: start over
        have = 0
      }
      const len = response.headers.get('content-length')
      total = len !== null && /^\d+$/.test(len) ? Number(len) : undefined
    } else if (response.status === 416 && have > 0) {
      await response.body?.cancel().catch(() => undefined)
      fs.rmSync(partial, { force: true })
      throw new TransientError(`${file.label}: the server refused to resume from byte ${have}; starting over`)
    } else {
      throw await statusError(response, file.label, url)
    }
    if (file.size !== undefined && total !== undefined && total !== file.size) {
      await response.body?.cancel().catch(() => undefined)
      throw new LlavaError(
        'ERR_DOWNLOAD',
        `${file.label}: the server announces ${total} bytes but the hub lists the file at ${file.size} bytes; refusing it`,
        { details: { url, announced: total, listed: file.size } },
      )
    }
    const expected = file.size ?? total
    cb.progress(have, expected, 'download')
    if (!response.body) throw new TransientError(`${file.label}: the response has no body`)

    let fd: fs.promises.FileHandle
    try {
      fd = await fs.promises.open(partial, have > 0 ? 'a' : 'w')
    } catch (err) {
      throw writeError(err, partial)
    }
    try {
      const reader = response.body.getReader()
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>
        try {
          chunk = await reader.read()
        } catch (err) {
          throw deadline.explain(err, `${file.label}: the transfer broke off at byte ${have}`)
        }
        deadline.touch()
        if (chunk.done) break
        const bytes = chunk.value
        if (expected !== undefined && have + bytes.length > expected) {
          await reader.cancel().catch(() => undefined)
          throw new LlavaError('ERR_DOWNLOAD', `${file.label}: the server sent more than the ${expected} bytes it listed; refusing it`, {
            details: { url, listed: expected },
          })
        }
        try {
          await fd.write(bytes)
        } catch (err) {
          await reader.cancel().catch(() => undefined)
          throw writeError(err, partial)
        }
        have += bytes.length
        cb.progress(have, expected, 'download')
      }
    } finally {
      await fd.close().catch(() => undefined)
    }
    if (expected !== undefined && have < expected) {
      throw new TransientError(`${file.label}: the connection closed at byte ${have} of ${expected}`)
    }
  } finally {
    deadline.done()
  }
}

/** Fetches `file` to `file.dest`, resuming, verifying, retrying; resolves once `dest` holds the verified bytes. */
export async function fetchFile(file: FileToFetch, opts: FetchOptions, cb: FetchCallbacks): Promise<void> {
  const partial = `${file.dest}.incomplete`
  let restarts = 0
  let attempt = 0
  let delay = opts.retryDelayMs
  for (;;) {
    try {
      await transfer(file, partial, opts, cb)
    } catch (err) {
      if (!(err instanceof TransientError)) throw err
      if (attempt >= opts.retries) {
        throw new LlavaError('ERR_DOWNLOAD', `${file.label}: download failed after ${attempt + 1} attempts: ${err.message}`, {
          cause: err,
          details: { url: file.url, path: partial },
        })
      }
      attempt++
      await sleep(delay, opts.signal)
      delay = Math.min(delay * 2, 30_000)
      continue
    }
    const size = sizeOnDisk(partial)
    if (file.oid) {
      cb.progress(size, file.size ?? size, 'verify')
      const sum = await checksum(partial, file.oid, size, opts.signal)
      if (!sum.ok) {
        fs.rmSync(partial, { force: true })
        if (restarts < CHECKSUM_RESTARTS) {
          restarts++
          continue
        }
        throw new LlavaError(
          'ERR_DOWNLOAD',
          `${file.label}: the downloaded bytes do not match the hub's checksum (${sum.algo} ${sum.actual}, expected ${file.oid}); nothing was kept`,
          { details: { url: file.url, expected: file.oid, actual: sum.actual } },
        )
      }
    }
    fs.renameSync(partial, file.dest)
    return
  }
}
