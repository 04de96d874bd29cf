// One file from the hub (or a URL) to its place on disk, never half: bytes go to `<dest>.incomplete`,
// an interrupted transfer resumes there with a Range request, the size and checksum the hub lists
// are checked, and only a verified file is renamed to `dest`.
import * as fs from 'node:fs'
import { finished } from 'node:stream/promises'
import { LlavaError } from '../errors'
import { OffThreadHash } from './hasher'
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
  /** Where the finished file's ETag goes (llama.cpp's `<file>.etag` beside a URL download). */
  etagFile?: string
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

/** The hash whose digest is `oid`: SHA-256 for LFS files, git's blob id (sha1 of "blob <size>\0" + content) otherwise. */
function newHasher(oid: string | undefined, size: number): OffThreadHash | undefined {
  if (!oid) return undefined
  return oid.length === 64 ? new OffThreadHash('sha256') : new OffThreadHash('sha1', `blob ${size}\0`)
}

/** Feeds the file's bytes (the part already on disk, before a resume) to the hash. */
async function hashFile(file: string, hash: OffThreadHash, signal: AbortSignal | undefined): Promise<void> {
  const stream = fs.createReadStream(file, { highWaterMark: 1 << 20 })
  try {
    for await (const chunk of stream) {
      if (signal?.aborted) throw signal.reason
      await hash.update(chunk as Buffer)
    }
  } finally {
    stream.destroy()
  }
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

/** A write stream whose failures are collected, with a wait for room that also ends on failure. */
class FileSink {
  private readonly ws: fs.WriteStream
  failure: Error | undefined

  constructor(readonly file: string, append: boolean) {
    this.ws = fs.createWriteStream(file, { flags: append ? 'a' : 'w', highWaterMark: 4 << 20 })
    this.ws.on('error', (e) => (this.failure ??= e))
  }

  /** Queues `bytes`; resolves at once, or once the queue has room again. */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.failure) throw writeError(this.failure, this.file)
    if (!this.ws.write(bytes)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.ws.off('drain', done).off('close', done)
          resolve()
        }
        this.ws.on('drain', done).on('close', done)
      })
    }
    if (this.failure) throw writeError(this.failure, this.file)
  }

  /** Flushes and closes; a write that failed on the way is thrown here. */
  async close(): Promise<void> {
    // (end()'s callback can run before the 'error' event of a failed final write: wait for the stream's own verdict)
    this.ws.end()
    try {
      await finished(this.ws)
    } catch (err) {
      this.failure ??= err as Error
    }
    if (this.failure) throw writeError(this.failure, this.file)
  }
}

interface Receiving {
  file: FileToFetch
  url: string
  partial: string
  /** Bytes already in the partial file. */
  have: number
  expected: number | undefined
  hasher: OffThreadHash | undefined
  deadline: Deadline
  cb: FetchCallbacks
}

/** Streams a response body onto the end of the partial file, checking its length as it comes. */
async function receive(body: ReadableStream<Uint8Array>, r: Receiving): Promise<void> {
  const { file, url, partial, expected, hasher, deadline, cb } = r
  let have = r.have
  const sink = new FileSink(partial, have > 0)
  const reader = body.getReader()
  try {
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
        throw new LlavaError('ERR_DOWNLOAD', `${file.label}: the server sent more than the ${expected} bytes it listed; refusing it`, {
          details: { url, listed: expected },
        })
      }
      await hasher?.update(bytes)
      await sink.write(bytes)
      have += bytes.length
      cb.progress(have, expected, 'download')
    }
  } catch (err) {
    await reader.cancel().catch(() => undefined)
    throw err
  } finally {
    await sink.close().catch((err: unknown) => {
      sink.failure ??= err as Error
    })
  }
  if (sink.failure) throw writeError(sink.failure, partial)
  // Whatever the write path said, the bytes must be on disk before they are verified and kept.
  const onDisk = sizeOnDisk(partial)
  if (onDisk !== have) {
    throw new LlavaError('ERR_DOWNLOAD', `could not write ${partial}: ${have} bytes were received but ${onDisk} are on disk`, { details: { path: partial } })
  }
  if (expected !== undefined && have < expected) {
    throw new TransientError(`${file.label}: the connection closed at byte ${have} of ${expected}`)
  }
}

/**
 * One attempt: appends to the partial file from where it ends, hashing as the bytes arrive (the
 * part already there first). Resolves with the whole file's digest, or undefined when the file was
 * already complete. Transient failures throw TransientError.
 */
async function transfer(file: FileToFetch, partial: string, opts: FetchOptions, cb: FetchCallbacks): Promise<string | undefined> {
  let have = sizeOnDisk(partial)
  if (file.size !== undefined && have > file.size) {
    fs.rmSync(partial, { force: true })
    have = 0
  }
  if (file.size !== undefined && have === file.size) return undefined
  const etagFile = `${partial}.etag`
  const etag = have > 0 ? readEtag(etagFile) : undefined
  // The part on disk is hashed before the request: no deadline runs while a large part is read.
  let hasher = newHasher(file.oid, file.size ?? 0)
  let deadline: Deadline | undefined
  try {
    if (hasher && have > 0) await hashFile(partial, hasher, opts.signal)
    deadline = new Deadline(opts.timeoutMs, opts.signal)
    const headers: Record<string, string> = { 'accept-encoding': 'identity' }
    if (have > 0) headers.range = `bytes=${have}-`
    // without a checksum (a plain URL), a resume only continues the same version of the file
    if (have > 0 && !file.oid && etag) headers['if-range'] = etag
    const { response, url } = await request(file.url, opts, deadline, { headers })
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
        // the server does not resume (or the file changed): start over
        fs.truncateSync(partial, 0)
        have = 0
        hasher?.dispose()
        hasher = newHasher(file.oid, file.size ?? 0)
      }
      const len = response.headers.get('content-length')
      total = len !== null && /^\d+$/.test(len) ? Number(len) : undefined
      if (!file.oid) {
        const tag = response.headers.get('etag')
        if (tag) fs.writeFileSync(etagFile, tag)
        else fs.rmSync(etagFile, { force: true })
      }
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
    await receive(response.body, { file, url, partial, have, expected, hasher, deadline, cb })
    return await hasher?.digest()
  } catch (err) {
    hasher?.dispose()
    throw err
  } finally {
    deadline?.done()
  }
}

function readEtag(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined
  } catch {
    return undefined
  }
}

/** Fetches `file` to `file.dest`, resuming, verifying, retrying; resolves once `dest` holds the verified bytes. */
export async function fetchFile(file: FileToFetch, opts: FetchOptions, cb: FetchCallbacks): Promise<void> {
  // (not huggingface_hub's `.incomplete`: it takes another lock, so the two must not share a part)
  const partial = `${file.dest}.llava-native.incomplete`
  let restarts = 0
  let attempt = 0
  let delay = opts.retryDelayMs
  for (;;) {
    let digest: string | undefined
    try {
      digest = await transfer(file, partial, opts, cb)
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
      if (digest === undefined) {
        // complete on disk before this call (an earlier run stopped between download and rename)
        const h = newHasher(file.oid, size)!
        try {
          await hashFile(partial, h, opts.signal)
        } catch (err) {
          h.dispose()
          throw err
        }
        digest = await h.digest()
      }
      if (digest !== file.oid.toLowerCase()) {
        fs.rmSync(partial, { force: true })
        if (restarts < CHECKSUM_RESTARTS) {
          restarts++
          continue
        }
        const algo = file.oid.length === 64 ? 'sha256' : 'git sha1'
        throw new LlavaError(
          'ERR_DOWNLOAD',
          `${file.label}: the downloaded bytes do not match the hub's checksum (${algo} ${digest}, expected ${file.oid}); nothing was kept`,
          { details: { url: file.url, expected: file.oid, actual: digest } },
        )
      }
    }
    if (file.size !== undefined && size !== file.size) {
      throw new LlavaError('ERR_DOWNLOAD', `${file.label}: ${size} bytes on disk, the hub lists ${file.size}; nothing was kept`, {
        details: { path: partial },
      })
    }
    fs.renameSync(partial, file.dest)
    const etag = `${partial}.etag`
    if (file.etagFile && fs.existsSync(etag)) fs.renameSync(etag, file.etagFile)
    else fs.rmSync(etag, { force: true })
    return
  }
}
