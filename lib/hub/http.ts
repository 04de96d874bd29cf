// HTTP for the hub on Node's built-in fetch: redirects followed by hand (http(s) only, the token
// never leaves the hub's origin), a timeout on every wait, and HTTP failures turned into typed
// errors that say what to do.
import { LlavaError } from '../errors'

export interface HttpContext {
  /** Sent as `Authorization: Bearer …` to the hub's own origin only. */
  token?: string
  /** The hub's origin (scheme://host:port): where the token may go. */
  tokenOrigin: string
  signal?: AbortSignal
  /** Longest wait for a response's headers, or between two chunks of a body. */
  timeoutMs: number
}

const MAX_REDIRECTS = 10
const USER_AGENT = `llava-native (Node.js ${process.version})`

/** A transfer failure worth another try (network, timeout, 5xx, 429), as opposed to a refusal. */
export class TransientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'TransientError'
  }
}

/** An AbortController that fires on the caller's signal and on a restartable idle timer. */
export class Deadline {
  readonly controller = new AbortController()
  private timer: NodeJS.Timeout | undefined
  private timedOut = false
  private readonly onAbort: () => void

  constructor(private readonly ms: number, private readonly outer: AbortSignal | undefined) {
    this.onAbort = () => this.controller.abort(outer!.reason)
    if (outer?.aborted) this.controller.abort(outer.reason)
    else outer?.addEventListener('abort', this.onAbort, { once: true })
    this.touch()
  }

  get signal(): AbortSignal {
    return this.controller.signal
  }

  /** Restarts the idle timer: call on every sign of life. */
  touch(): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timedOut = true
      this.controller.abort(new TransientError(`no data for ${this.ms} ms`))
    }, this.ms)
    this.timer.unref?.()
  }

  /** The error to throw for a failure seen while this deadline was armed. */
  explain(err: unknown, what: string): unknown {
    if (this.outer?.aborted) return this.outer.reason
    if (this.timedOut) return new TransientError(`${what}: timed out after ${this.ms} ms without data`, { cause: err })
    if (err instanceof LlavaError || err instanceof TransientError) return err
    const e = err as { message?: string; cause?: { code?: string; message?: string } }
    const detail = e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err)
    return new TransientError(`${what}: ${detail}`, { cause: err })
  }

  /** Ends the wait; a response body not read to its end is released with it. */
  done(): void {
    clearTimeout(this.timer)
    this.outer?.removeEventListener('abort', this.onAbort)
    if (!this.controller.signal.aborted) this.controller.abort(new Error('done'))
  }
}

function originOf(url: string): string {
  return new URL(url).origin
}

/**
 * GET or HEAD with redirects followed by hand. The response's body is not read; the deadline stays
 * armed for the caller to read it under.
 */
export async function request(
  url: string,
  ctx: HttpContext,
  deadline: Deadline,
  init: { method?: 'GET' | 'HEAD'; headers?: Record<string, string>; accept?: string } = {},
): Promise<{ response: Response; url: string }> {
  let current = url
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...init.headers }
    if (init.accept) headers.accept = init.accept
    if (ctx.token && originOf(current) === ctx.tokenOrigin) headers.authorization = `Bearer ${ctx.token}`
    let response: Response
    try {
      response = await fetch(current, { method: init.method ?? 'GET', headers, redirect: 'manual', signal: deadline.signal })
    } catch (err) {
      throw deadline.explain(err, `could not reach ${new URL(current).host}`)
    }
    deadline.touch()
    if (response.status >= 300 && response.status < 400 && response.status !== 304) {
      const location = response.headers.get('location')
      await response.body?.cancel().catch(() => undefined)
      if (!location) throw new LlavaError('ERR_DOWNLOAD', `${current} answered ${response.status} without a Location to follow`)
      const next = new URL(location, current)
      if (new URL(current).protocol === 'https:' && next.protocol === 'http:') {
        throw new LlavaError('ERR_DOWNLOAD', `${current} redirected from https to plain http (${next.host}); refusing the downgrade`, {
          details: { url: current, location: next.href },
        })
      }
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new LlavaError('ERR_DOWNLOAD', `${current} redirected to a ${next.protocol} URL; only http and https are followed`, {
          details: { url: current, location: next.href },
        })
      }
      current = next.href
      continue
    }
    return { response, url: current }
  }
  throw new LlavaError('ERR_DOWNLOAD', `${url} redirected more than ${MAX_REDIRECTS} times`)
}

/** The typed error for a response that is not a success. `what` names the repository or file. */
export async function statusError(response: Response, what: string, url: string): Promise<Error> {
  const code = response.headers.get('x-error-code') ?? ''
  let message = response.headers.get('x-error-message') ?? ''
  if (!message) {
    try {
      const text = (await response.text()).slice(0, 2000)
      try {
        const j = JSON.parse(text) as { error?: unknown }
        if (typeof j.error === 'string') message = j.error
      } catch {
        message = text.split('\n')[0].slice(0, 200)
      }
    } catch {
      // no body
    }
  }
  const s = response.status
  const details = { url, status: s, ...(code ? { hubErrorCode: code } : {}) }
  const said = message ? ` (the hub said: ${message})` : ''
  if (code === 'RepositoryNotFound' || (s === 404 && !code)) {
    return new LlavaError('ERR_NOT_FOUND_REMOTE', `${what} was not found on the hub${said}. Check the spelling; a private repository needs HF_TOKEN.`, { details })
  }
  if (code === 'EntryNotFound' || code === 'RevisionNotFound' || s === 404) {
    return new LlavaError('ERR_NOT_FOUND_REMOTE', `${what} was not found on the hub${said}.`, { details })
  }
  if (code === 'GatedRepo') {
    return new LlavaError('ERR_AUTH', `${what} is gated${said}: accept its conditions on the model page, then set HF_TOKEN (or the token option) to a token of that account.`, { details })
  }
  if (s === 401 || s === 403) {
    return new LlavaError('ERR_AUTH', `the hub refused access to ${what} (HTTP ${s})${said}: set HF_TOKEN (or the token option) to a token that can read it.`, { details })
  }
  if (s === 429 || s >= 500) return new TransientError(`${what}: HTTP ${s}${said}`)
  return new LlavaError('ERR_DOWNLOAD', `${what}: unexpected HTTP ${s}${said}`, { details })
}

const MAX_JSON = 64 << 20

/** The body as text, the idle timer restarted at every chunk; over `max` bytes is refused. */
async function readText(response: Response, deadline: Deadline, max: number): Promise<string> {
  if (!response.body) return ''
  const chunks: Uint8Array[] = []
  let n = 0
  const reader = response.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    deadline.touch()
    if (done) break
    n += value.length
    if (n > max) {
      await reader.cancel().catch(() => undefined)
      throw new LlavaError('ERR_DOWNLOAD', `the hub's answer is over ${max >> 20} MiB`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** GET a JSON document from the hub. */
export async function getJson(url: string, ctx: HttpContext, what: string): Promise<{ json: unknown; response: Response }> {
  const deadline = new Deadline(ctx.timeoutMs, ctx.signal)
  try {
    const { response } = await request(url, ctx, deadline, { accept: 'application/json' })
    if (response.status !== 200) throw await statusError(response, what, url)
    let text: string
    try {
      text = await readText(response, deadline, MAX_JSON)
    } catch (err) {
      throw deadline.explain(err, what)
    }
    try {
      return { json: JSON.parse(text) as unknown, response }
    } catch {
      throw new LlavaError('ERR_DOWNLOAD', `${what}: the hub's answer is not JSON`, { details: { url } })
    }
  } finally {
    deadline.done()
  }
}

/** Runs `attempt` again after transient failures, waiting `delayMs`, then twice that, …; the last failure becomes ERR_DOWNLOAD. */
export async function withRetries<T>(what: string, retries: number, delayMs: number, signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
  let delay = delayMs
  for (let i = 0; ; i++) {
    try {
      return await attempt()
    } catch (err) {
      if (!(err instanceof TransientError)) throw err
      if (i >= retries) {
        throw new LlavaError('ERR_DOWNLOAD', `${what} failed after ${i + 1} attempts: ${err.message}`, { cause: err })
      }
    }
    await sleep(delay, signal)
    delay = Math.min(delay * 2, 30_000)
  }
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = (): void => {
      clearTimeout(t)
      reject(signal!.reason)
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
