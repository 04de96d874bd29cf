// One download of a file at a time across processes. Node has no flock(), so the lock is a file
// created with O_EXCL holding its owner's pid, host and a random nonce; the owner refreshes its
// mtime while it works, and a lock whose owner is gone (same host, pid dead) or silent for
// STALE_MS is taken over. The nonce makes takeover and release act on one lock only: a lock is
// removed only by whoever finds their own nonce in it.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { LlavaError } from '../errors'
import { sleep } from './http'

const HEARTBEAT_MS = 2_000
const STALE_MS = 30_000
const POLL_MS = 100

export interface HeldLock {
  release(): void
}

interface Owner {
  pid?: unknown
  host?: unknown
  nonce?: unknown
}

function readOwner(file: string): { owner: Owner; mtimeMs: number } | undefined {
  try {
    const mtimeMs = fs.statSync(file).mtimeMs
    let owner: Owner = {}
    try {
      owner = JSON.parse(fs.readFileSync(file, 'utf8')) as Owner
    } catch {
      // half-written by its owner, or not ours: only the heartbeat rule applies
    }
    return { owner, mtimeMs }
  } catch {
    return undefined
  }
}

/** The nonce of a lock whose owner is gone ('' when it has none); undefined while it is alive or absent. */
function staleNonce(file: string): string | undefined {
  const seen = readOwner(file)
  if (!seen) return undefined
  const nonce = typeof seen.owner.nonce === 'string' ? seen.owner.nonce : ''
  if (Date.now() - seen.mtimeMs > STALE_MS) return nonce
  const { pid, host } = seen.owner
  if (host === os.hostname() && typeof pid === 'number' && pid !== process.pid) {
    try {
      process.kill(pid, 0)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return nonce
    }
  }
  return undefined
}

/** Removes `file` if it still carries `nonce`; a lock created meanwhile by someone else is put back. */
function removeIfNonce(file: string, nonce: string): void {
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`
  try {
    fs.renameSync(file, aside)
  } catch {
    return // already gone
  }
  const moved = readOwner(aside)
  const movedNonce = typeof moved?.owner.nonce === 'string' ? moved.owner.nonce : ''
  if (movedNonce !== nonce) {
    try {
      fs.linkSync(aside, file) // fails if a third lock exists: that one is live
    } catch {
      // leave the third one
    }
  }
  fs.rmSync(aside, { force: true })
}

/** Waits (abortably) until this process holds `file`; `onWait` is called once if another holds it. */
export async function acquireLock(file: string, signal: AbortSignal | undefined, onWait?: () => void): Promise<HeldLock> {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const nonce = randomBytes(16).toString('hex')
  let waited = false
  for (;;) {
    if (signal?.aborted) throw signal.reason
    try {
      const fd = fs.openSync(file, 'wx')
      try {
        fs.writeSync(fd, JSON.stringify({ pid: process.pid, host: os.hostname(), nonce, since: new Date().toISOString() }))
      } finally {
        fs.closeSync(fd)
      }
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new LlavaError('ERR_DOWNLOAD', `could not create the download lock ${file}: ${(e as Error).message}`, { cause: e, details: { path: file } })
      }
    }
    const stale = staleNonce(file)
    if (stale !== undefined) {
      removeIfNonce(file, stale)
      continue
    }
    if (!waited) {
      waited = true
      onWait?.()
    }
    await sleep(POLL_MS, signal)
  }
  const beat = setInterval(() => {
    const now = new Date()
    try {
      fs.utimesSync(file, now, now)
    } catch {
      // removed under us: the verify step still protects the blob
    }
  }, HEARTBEAT_MS)
  beat.unref()
  let released = false
  return {
    release: () => {
      if (released) return
      released = true
      clearInterval(beat)
      removeIfNonce(file, nonce)
    },
  }
}
