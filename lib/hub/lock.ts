// One download of a file at a time across processes. Node has no flock(), so the lock is a file
// created with O_EXCL holding its owner's pid and host; the owner refreshes its mtime while it
// works, and a lock whose owner is gone (same host, pid dead) or silent for STALE_MS is taken over.
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

/** The lock's inode when its owner is gone (0: released meanwhile), undefined while it is alive. */
function ownerGone(file: string): number | undefined {
  let text: string
  let st: fs.Stats
  try {
    st = fs.statSync(file)
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return 0
  }
  if (Date.now() - st.mtimeMs > STALE_MS) return st.ino
  try {
    const owner = JSON.parse(text) as { pid?: unknown; host?: unknown }
    if (owner.host === os.hostname() && typeof owner.pid === 'number') {
      if (owner.pid === process.pid) return undefined
      try {
        process.kill(owner.pid, 0)
        return undefined
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === 'ESRCH' ? st.ino : undefined
      }
    }
  } catch {
    // half-written by its owner: wait for the heartbeat rule
  }
  return undefined
}

/** Waits (abortably) until this process holds `file`; `onWait` is called once if another holds it. */
export async function acquireLock(file: string, signal: AbortSignal | undefined, onWait?: () => void): Promise<HeldLock> {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  let waited = false
  for (;;) {
    try {
      const fd = fs.openSync(file, 'wx')
      try {
        fs.writeSync(fd, JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() }))
      } finally {
        fs.closeSync(fd)
      }
      break
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code !== 'EEXIST') {
        throw new LlavaError('ERR_DOWNLOAD', `could not create the download lock ${file}: ${(e as Error).message}`, { cause: e, details: { path: file } })
      }
    }
    const stale = ownerGone(file)
    if (stale !== undefined) {
      // Two waiters may both see it stale. Move it aside and look at what was moved: a fresh lock
      // another waiter created meanwhile is put back (link fails if yet another one exists).
      const aside = `${file}.stale-${process.pid}`
      try {
        fs.renameSync(file, aside)
        if (stale !== 0 && fs.statSync(aside).ino !== stale) {
          try {
            fs.linkSync(aside, file)
          } catch {
            // a third lock is there now; it is the live one
          }
        }
        fs.rmSync(aside, { force: true })
      } catch {
        // someone else took it over
      }
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
      // removed under us: the next holder starts over, the verify step still protects the blob
    }
  }, HEARTBEAT_MS)
  beat.unref()
  let released = false
  return {
    release: () => {
      if (released) return
      released = true
      clearInterval(beat)
      fs.rmSync(file, { force: true })
    },
  }
}
