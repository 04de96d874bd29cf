// The checksum of a download, computed on a worker thread as the bytes arrive: hashing costs about
// as much CPU as receiving, so on a second core it hides behind the transfer instead of adding to
// it. The worker's code is inline (no file to locate inside an asar archive or a bundle).
import { Worker } from 'node:worker_threads'

const WORKER = `
const { parentPort } = require('node:worker_threads')
const crypto = require('node:crypto')
let hash
parentPort.on('message', (m) => {
  if (m.start) hash = crypto.createHash(m.start.algo).update(m.start.prefix)
  else if (m.chunks) for (const c of m.chunks) hash.update(c)
  else if (m.digest) parentPort.postMessage(hash.digest('hex'))
})
`

const BATCH = 4 << 20

export class OffThreadHash {
  private readonly worker: Worker
  private pending: Uint8Array[] = []
  private pendingBytes = 0
  private failure: Error | undefined

  /** `algo`: 'sha256' or 'sha1'; `prefix` is hashed first (git's blob header). */
  constructor(algo: 'sha256' | 'sha1', prefix = '') {
    this.worker = new Worker(WORKER, { eval: true })
    this.worker.unref()
    this.worker.on('error', (e) => (this.failure ??= e))
    this.worker.postMessage({ start: { algo, prefix } })
  }

  update(bytes: Uint8Array): void {
    this.pending.push(bytes)
    this.pendingBytes += bytes.length
    if (this.pendingBytes >= BATCH) this.flush()
  }

  private flush(): void {
    if (this.pending.length) this.worker.postMessage({ chunks: this.pending })
    this.pending = []
    this.pendingBytes = 0
  }

  /** The hex digest of everything given; ends the worker. */
  async digest(): Promise<string> {
    this.flush()
    try {
      return await new Promise<string>((resolve, reject) => {
        if (this.failure) return reject(this.failure)
        this.worker.once('message', resolve)
        this.worker.once('error', reject)
        this.worker.once('exit', () => reject(this.failure ?? new Error('the hashing worker ended early')))
        this.worker.postMessage({ digest: true })
      })
    } finally {
      void this.worker.terminate()
    }
  }

  /** Ends the worker without a digest (a failed or aborted transfer). */
  dispose(): void {
    void this.worker.terminate()
  }
}
