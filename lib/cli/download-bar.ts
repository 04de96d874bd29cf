// Download progress for the command line: one bar over every file being fetched on a terminal
// (bytes, rate, time left); elsewhere one line per file, so that logs say why a command is slow.
import ProgressBar from 'progress'
import type { DownloadProgress } from '../index'
import { formatBytes } from './format'

export function downloadProgress(): { onProgress: (p: DownloadProgress) => void; finish(): void } {
  let bar: ProgressBar | undefined
  const announced = new Set<string>()
  const tty = process.stderr.isTTY
  return {
    onProgress: (p) => {
      if (!announced.has(p.file)) {
        announced.add(p.file)
        if (!tty) process.stderr.write(`llava-native: downloading ${p.file}${p.fileTotal ? ` (${formatBytes(p.fileTotal)})` : ''}\n`)
      }
      if (!tty || !p.total) return
      bar ??= new ProgressBar(`downloading [:bar] :percent :got of :size :speed :etas`, { total: p.total, width: 24, clear: true, stream: process.stderr })
      if (!bar.complete) {
        bar.update(Math.min(1, p.downloaded / p.total), {
          got: formatBytes(p.downloaded),
          size: formatBytes(p.total),
          speed: p.phase === 'verify' ? 'verifying' : `${formatBytes(p.bytesPerSecond)}/s`,
        })
      }
    },
    finish: () => {
      if (bar && !bar.complete) bar.terminate()
    },
  }
}
