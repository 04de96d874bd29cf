// Bridges an AbortSignal to the native cancellation flag of one operation.
import { LlavaError, fromNative } from './errors'
import type { ModelBinding, NativeAbortHandle } from './native-types'

export interface AbortLink {
  handle: NativeAbortHandle
  /** Sets the native flag without a signal (dispose, a throwing callback, an early `break`). */
  abort(): void
  release(): void
}

/** `b`: the binding of the model the operation runs on (in-process or in its child process). */
export function linkSignal(signal: AbortSignal | undefined, b: Pick<ModelBinding, 'AbortHandle'>): AbortLink {
  const handle = new b.AbortHandle()
  const onAbort = (): void => handle.abort()
  signal?.addEventListener('abort', onAbort, { once: true })
  return {
    handle,
    abort: () => handle.abort(),
    release: () => signal?.removeEventListener('abort', onAbort),
  }
}

/** The error an operation rejects with: the signal's reason when it was aborted through it. */
export function abortError(signal: AbortSignal | undefined, err: unknown, what: string): unknown {
  if (signal?.aborted) return signal.reason
  const e = fromNative(err)
  if (e.code === 'ERR_ABORTED') return new LlavaError('ERR_ABORTED', `${what} was aborted`, { cause: err })
  return e
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason
}
