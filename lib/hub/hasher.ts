// The checksum of a download, computed on a worker thread as the bytes arrive: hashing costs about
// as much CPU as receiving, so on a second core it hides behind the transfer instead of adding to
// it. The worker's code is inline (no file to locate inside an asar archive or a bundle). At most
// MAX_IN_FLIGHT bytes wait for the worker: a reader faster than the hash waits for it.
import { Worker } from 'node:worker_threads'

const WORKER = `
const { parentPort } = require('node:worker_threads')
const crypto = require('node:crypto')
let hash
parentPort.on('message', (m) => {
  if (m.start) hash = crypto.createHash(m.start.algo).update(m.start.prefix)
  else if (m.chunks) {
    let n = 0
    for (const c of m.chunks) {
      hash.update(c)
      n += c.length
    }
    parentPort.postMessage({ done: n })
  } else if (m.digest) parentPort.postMessage({ digest: hash.digest('hex') })
})
`

const BATCH = 4 << 20
const MAX_IN_FLIGHT = 64 << 20

export class OffThreadHash {
  private readonly worker: Worker
  private pending: Uint8Array[] = []
  private pendingBytes = 0
  private inFlight = 0
  private failure: Error | undefined
  private wake: (() => void) | undefined
  private onDigest: ((hex: string) => void) | undefined

  /** `algo`: 'sha256' or 'sha1'; `prefix` is hashed first (git's blob header). */
  constructor(algo: 'sha256' | 'sha1', prefix = '') {
    this.worker = new Worker(WORKER, { eval: true })
    this.worker.unref()
    this.worker.on('message', (m: { done?: number; digest?: string }) => {
      if (m.done !== undefined) this.inFlight -= m.done
      if (m.digest !== undefined) this.onDigest?.(m.digest)
      this.wake?.()
    })
    const fail = (e: Error): void => {
      this.failure ??= e
      this.wake?.()
    }
    this.worker.on('error', fail)
    this.worker.on('exit', () => fail(new Error('the hashing worker ended early')))
    this.worker.postMessage({ start: { algo, prefix } })
  }

  /** Queues `bytes` for hashing; waits while too many bytes are still queued. */
  async update(bytes: Uint8Array): Promise<void> {
    this.pending.push(bytes)
    this.pendingBytes += bytes.length
    if (this.pendingBytes >= BATCH) this.flush()
    while (this.inFlight > MAX_IN_FLIGHT && !this.failure) await new Promise<void>((resolve) => (this.wake = resolve))
    if (this.failure) throw this.failure
  }

  private flush(): void {
    if (this.pending.length) {
      this.worker.postMessage({ chunks: this.pending })
      this.inFlight += this.pendingBytes
    }
    this.pending = []
    this.pendingBytes = 0
  }

  /** The hex digest of everything given; ends the worker. */
  async digest(): Promise<string> {
    this.flush()
    try {
      return await new Promise<string>((resolve, reject) => {
        if (this.failure) return reject(this.failure)
        this.onDigest = resolve
        this.wake = () => this.failure && reject(this.failure)
        this.worker.postMessage({ digest: true })
      })
    } finally {
      this.dispose()
    }
  }

  /** Ends the worker (a digest that was not asked for is dropped). */
  dispose(): void {
    this.failure ??= new Error('the hash was disposed')
    void this.worker.terminate()
  }
}
