// Exit codes, the CLI's own error, and turning any error into one line on stderr.
import { LlavaError } from '../index'

/** The process exit codes, as documented in `llava-native --help`. */
export const EXIT = {
  OK: 0,
  /** anything not covered below (a bug, the native binary not loading, …) */
  FAILURE: 1,
  /** bad flags, missing arguments */
  USAGE: 2,
  /** the model or projector: not found, not loadable, not downloadable, mismatched, no chat template */
  MODEL: 3,
  /** an image or prompt: not found, undecodable, too large for the context */
  INPUT: 4,
  /** stopped with Ctrl-C (SIGINT) */
  INTERRUPTED: 130,
} as const

export const EXIT_CODES_HELP = `Exit codes:
  0    success
  1    other failures (the native binary did not load, an internal error)
  2    usage error: unknown or bad flags, missing arguments
  3    model error: model or projector not found, not loadable or not downloadable
       (ERR_MODEL_LOAD, ERR_MMPROJ_*, ERR_NOT_FOUND_REMOTE, ERR_AUTH, ERR_DOWNLOAD)
  4    input error: image or sound not found or undecodable, prompt too long (ERR_CONTEXT_OVERFLOW)
  130  interrupted (Ctrl-C)`

/** An error the CLI raises itself, with the exit code it ends the process with. */
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'CliError'
  }
}

/** The abort reason used for Ctrl-C. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted')
    this.name = 'Interrupted'
  }
}

const MODEL_CODES = new Set([
  'ERR_MODEL_LOAD', 'ERR_MMPROJ_LOAD', 'ERR_MMPROJ_MISMATCH', 'ERR_NO_CHAT_TEMPLATE', 'ERR_NOT_FOUND_REMOTE', 'ERR_AUTH', 'ERR_DOWNLOAD',
])
const INPUT_CODES = new Set([
  'ERR_FILE_NOT_FOUND', 'ERR_IMAGE_DECODE', 'ERR_IMAGE_ENCODE', 'ERR_AUDIO_DECODE', 'ERR_AUDIO_ENCODE', 'ERR_NO_AUDIO', 'ERR_CONTEXT_OVERFLOW', 'ERR_NO_VISION', 'ERR_TOKENIZE', 'ERR_GRAMMAR',
])

export function exitCodeOf(err: unknown): number {
  if (err instanceof CliError) return err.exitCode
  if (err instanceof Interrupted) return EXIT.INTERRUPTED
  if (err instanceof LlavaError) {
    if (err.code === 'ERR_INVALID_ARGUMENT') return EXIT.USAGE
    if (MODEL_CODES.has(err.code)) return EXIT.MODEL
    if (INPUT_CODES.has(err.code)) return EXIT.INPUT
    if (err.code === 'ERR_ABORTED') return EXIT.INTERRUPTED
  }
  return EXIT.FAILURE
}

/** The error as one line: its message with line breaks folded, and the library's code. */
export function errorLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  const oneLine = message.replace(/\s*\n\s*/g, ' ').trim()
  return err instanceof LlavaError ? `${oneLine} (${err.code})` : oneLine
}

/** Writes `llava-native: error: …` (plus the stack and causes when verbose) and returns the exit code. */
export function reportError(err: unknown, verbose: boolean): number {
  const code = exitCodeOf(err)
  if (err instanceof Interrupted) return code
  process.stderr.write(`llava-native: error: ${errorLine(err)}\n`)
  if (verbose) {
    for (let e: unknown = err; e instanceof Error; e = e.cause) {
      process.stderr.write(`${e.stack ?? e.message}\n`)
      if (e.cause !== undefined) process.stderr.write('caused by: ')
    }
  }
  return code
}
