// Download progress over every file of one resolve (they download side by side): bytes, total, a
// rate over the last seconds, delivered at most ten times a second (and always at a file's start,
// verify and end).
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
  private readonly phases = new Map<string, DownloadProgress['phase']>()
  private failure: { error: unknown } | undefined

  constructor(private readonly sizes: Map<string, number | undefined>, private readonly onProgress: ((p: DownloadProgress) => void) | undefined) {}

  /**
   * Records a file's progress and tells the callback. A callback that throws stops the resolve:
   * its error is thrown here, and again to every transfer that reports after it.
   */
  update(file: string, fileDownloaded: number, fileTotal: number | undefined, phase: DownloadProgress['phase']): void {
    this.done.set(file, fileDownloaded)
    if (this.failure) throw this.failure.error
    if (!this.onProgress) return
    const now = performance.now()
    let downloaded = 0
    for (const v of this.done.values()) downloaded += v
    this.samples.push([now, downloaded])
    while (this.samples.length > 2 && now - this.samples[0][0] > WINDOW_MS) this.samples.shift()
    // files download side by side: a file's start, verify and end always go out, its bytes at most every INTERVAL_MS
    const forced = this.phases.get(file) !== phase || fileDownloaded === fileTotal
    this.phases.set(file, phase)
    if (!forced && now - this.last < INTERVAL_MS) return
    this.last = now
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
      throw error
    }
  }
}
