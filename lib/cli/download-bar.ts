// Download progress for the command line: one bar per file on a terminal (file, bytes, rate, time
// left); elsewhere one line per file, so that logs say why a command is slow.
import ProgressBar from 'progress'
import type { DownloadProgress } from '../index'
import { formatBytes } from './format'

export function downloadProgress(): { onProgress: (p: DownloadProgress) => void; finish(): void } {
  let bar: ProgressBar | undefined
  let file = ''
  const tty = process.stderr.isTTY
  return {
    onProgress: (p) => {
      if (p.file !== file) {
        bar?.terminate()
        bar = undefined
        file = p.file
        if (!tty) process.stderr.write(`llava-native: downloading ${p.file}${p.fileTotal ? ` (${formatBytes(p.fileTotal)})` : ''}\n`)
      }
      if (!tty || !p.fileTotal) return
      bar ??= new ProgressBar(`${p.file.length > 40 ? '…' + p.file.slice(-39) : p.file} [:bar] :percent :got :speed :etas`, {
        total: p.fileTotal,
        width: 24,
        clear: true,
        stream: process.stderr,
      })
      if (!bar.complete) {
        bar.update(Math.min(1, p.fileDownloaded / p.fileTotal), {
          got: formatBytes(p.fileDownloaded),
          speed: p.phase === 'verify' ? 'verifying' : `${formatBytes(p.bytesPerSecond)}/s`,
        })
      }
    },
    finish: () => {
      if (bar && !bar.complete) bar.terminate()
    },
  }
}
