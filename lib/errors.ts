/**
 * Stable error codes. Match on `error.code`, never on the message text.
 */
export type LlavaErrorCode =
  | 'ERR_BINARY_LOAD'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_FILE_NOT_FOUND'
  | 'ERR_MODEL_LOAD'
  | 'ERR_MMPROJ_LOAD'
  | 'ERR_MMPROJ_MISMATCH'
  | 'ERR_NO_VISION'
  | 'ERR_IMAGE_DECODE'
  | 'ERR_IMAGE_ENCODE'
  | 'ERR_NO_AUDIO'
  | 'ERR_AUDIO_DECODE'
  | 'ERR_AUDIO_ENCODE'
  | 'ERR_CONTEXT_OVERFLOW'
  | 'ERR_TOKENIZE'
  | 'ERR_DECODE'
  | 'ERR_GRAMMAR'
  | 'ERR_NO_CHAT_TEMPLATE'
  | 'ERR_DISPOSED'
  | 'ERR_ABORTED'
  | 'ERR_BUSY'
  | 'ERR_GROUP_FULL'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_CHAT_TEMPLATE'
  | 'ERR_DOWNLOAD'
  | 'ERR_NOT_FOUND_REMOTE'
  | 'ERR_AUTH'
  /** The child process of a model loaded with `isolation: 'process'` has ended (details: exitCode, signal, stderr). */
  | 'ERR_PROCESS_EXITED'
  /**
   * An RPC server of the model failed: it could not be reached, its connection dropped, it
   * stopped answering within `rpcTimeouts.callMs`, or it replied with something malformed. The
   * model is unusable from then on (its calls reject with ERR_RPC) until it is disposed and loaded
   * again; the process and other models are unaffected.
   */
  | 'ERR_RPC'
  | 'ERR_INTERNAL'

/** The one error class this library throws or rejects with (besides `signal.reason` on abort). */
export class LlavaError extends Error {
  readonly code: LlavaErrorCode
  /** Extra facts about the failure (the file, the option, the limits), when there are any. */
  readonly details?: Record<string, unknown>

  constructor(code: LlavaErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined)
    this.name = 'LlavaError'
    this.code = code
    if (options?.details) this.details = options.details
  }
}

const NATIVE_CODES = new Set<string>([
  'ERR_INVALID_ARGUMENT', 'ERR_FILE_NOT_FOUND', 'ERR_MODEL_LOAD', 'ERR_MMPROJ_LOAD', 'ERR_MMPROJ_MISMATCH',
  'ERR_NO_VISION', 'ERR_IMAGE_DECODE', 'ERR_IMAGE_ENCODE', 'ERR_NO_AUDIO', 'ERR_AUDIO_DECODE', 'ERR_AUDIO_ENCODE', 'ERR_CONTEXT_OVERFLOW', 'ERR_TOKENIZE', 'ERR_DECODE',
  'ERR_GRAMMAR', 'ERR_NO_CHAT_TEMPLATE', 'ERR_DISPOSED', 'ERR_ABORTED', 'ERR_BUSY', 'ERR_GROUP_FULL', 'ERR_OUT_OF_MEMORY',
  'ERR_CHAT_TEMPLATE', 'ERR_INTERNAL', 'ERR_PROCESS_EXITED', 'ERR_RPC',
])

/** Turns an error thrown by the native layer (a plain Error with a string `code`) into a LlavaError. */
export function fromNative(err: unknown): LlavaError {
  if (err instanceof LlavaError) return err
  const e = err as { code?: unknown; message?: unknown }
  const code = typeof e?.code === 'string' && NATIVE_CODES.has(e.code) ? (e.code as LlavaErrorCode) : 'ERR_INTERNAL'
  const message = typeof e?.message === 'string' ? e.message : String(err)
  return new LlavaError(code, message, { cause: err })
}
