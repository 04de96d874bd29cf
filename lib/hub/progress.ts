// Download progress over every file of one resolve: bytes, total, a rate over the last seconds,
// delivered at most ten times a second (and always at a file's start, verify and end).
export interface DownloadProgress {
  /** The file being fetched (its path in the repository, or its URL's file name). */
  file: string
  phase: 'download' | 'verify' | 'done'
  /** Bytes of this file on disk, resumed bytes included. */
  fileDownloaded: number
  fileTotal?: number
  /** Bytes over every file this call fetches. */
  downloaded: number
  total?: number
  /** Transfer rate over the last few seconds, in bytes per second. */
  bytesPerSecond: number
}

const INTERVAL_MS = 100
const WINDOW_MS = 3000

export class ProgressMeter {
  private readonly done = new Map<string, number>()
  private samples: Array<[number, number]> = []
  private last = 0
  private lastPhase = ''
  private lastFile = ''
  private failure: { error: unknown } | undefined

  constructor(private readonly sizes: Map<string, number | undefined>, private readonly onProgress: ((p: DownloadProgress) => void) | undefined) {}

  /** An error a throwing callback raised: the resolve rejects with it. */
  get callbackError(): { error: unknown } | undefined {
    return this.failure
  }

  update(file: string, fileDownloaded: number, fileTotal: number | undefined, phase: DownloadProgress['phase']): void {
    this.done.set(file, fileDownloaded)
    if (!this.onProgress || this.failure) return
    const now = performance.now()
    let downloaded = 0
    for (const v of this.done.values()) downloaded += v
    this.samples.push([now, downloaded])
    while (this.samples.length > 2 && now - this.samples[0][0] > WINDOW_MS) this.samples.shift()
    const forced = phase !== this.lastPhase || file !== this.lastFile || phase === 'done' || fileDownloaded === fileTotal
    if (!forced && now - this.last < INTERVAL_MS) return
    this.last = now
    this.lastPhase = phase
    this.lastFile = file
    const [t0, b0] = this.samples[0]
    const bytesPerSecond = now > t0 ? Math.max(0, ((downloaded - b0) * 1000) / (now - t0)) : 0
    let total: number | undefined = 0
    for (const [name, size] of this.sizes) {
      const s = size ?? (name === file ? fileTotal : undefined)
      if (s === undefined) {
        total = undefined
        break
      }
      total += s
    }
    try {
      this.onProgress({ file, phase, fileDownloaded, fileTotal, downloaded, total, bytesPerSecond: Math.round(bytesPerSecond) })
    } catch (error) {
      this.failure = { error }
    }
  }
}
