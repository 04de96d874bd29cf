// Loading a model for a command: a progress bar on a terminal, llama.cpp's log with --verbose, and
// load failures turned into the model exit code.
import ProgressBar from 'progress'
import { LlavaError, type Model, loadModel, setLogger } from '../index'
import { downloadProgress } from './download-bar'
import { CliError, EXIT } from './exit'
import { type ModelFlags, type RuntimeFlags, loadOptions } from './flags'
import { formatMs } from './format'

/** With --verbose, llama.cpp's messages (info and above) go to stderr as they come. */
export function routeLog(verbose: boolean | undefined): void {
  if (verbose) setLogger((_level, message) => process.stderr.write(`${message}\n`), { level: 'info' })
}

/** A loading bar on stderr when it is a terminal; nothing otherwise. */
function progressBar(label: string): { onProgress?: (f: number) => void; finish(): void } {
  if (!process.stderr.isTTY) return { finish: () => undefined }
  const bar = new ProgressBar(`${label} [:bar] :percent :elapseds`, { total: 100, width: 30, clear: true, stream: process.stderr })
  return {
    onProgress: (f) => {
      if (!bar.complete) bar.update(Math.min(1, Math.max(0, f)))
    },
    finish: () => {
      if (!bar.complete) bar.terminate()
    },
  }
}

/** Loads `flags.model` (and `flags.mmproj`). A missing or unloadable file is a CliError with exit code 3. */
export async function openModel(flags: RuntimeFlags & Partial<ModelFlags> & { model: string }, signal: AbortSignal): Promise<Model> {
  routeLog(flags.verbose)
  const download = downloadProgress()
  const bar = progressBar('loading model')
  const start = performance.now()
  let model: Model
  try {
    model = await loadModel({ model: flags.model, ...loadOptions(flags), onProgress: bar.onProgress, signal, download: { onProgress: download.onProgress } })
  } catch (err) {
    if (err instanceof LlavaError && err.code === 'ERR_FILE_NOT_FOUND') throw new CliError(EXIT.MODEL, err.message, { cause: err })
    throw err
  } finally {
    download.finish()
    bar.finish()
  }
  if (flags.verbose) process.stderr.write(`loaded ${flags.model} in ${formatMs(performance.now() - start)}\n`)
  return model
}
