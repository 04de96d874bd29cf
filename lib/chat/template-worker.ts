// Jinja chat templates come from model files, so they are untrusted code: one that loops or grows
// without end must not freeze the application. They render in a worker_thread with a time budget
// and a memory limit; a template that overruns is stopped and its call rejects with
// ERR_CHAT_TEMPLATE, while the calls queued behind it render on a fresh worker.
import { Worker } from 'node:worker_threads'
import { LlavaError } from '../errors'

/** Default time budget of one rendering. Real templates render in well under a millisecond. */
export const DEFAULT_TEMPLATE_TIMEOUT_MS = 10000

// Heap a template may use while rendering (its output included).
const HEAP_LIMIT_MB = 256

// The worker's program. @huggingface/jinja is loaded by its resolved path, so that the worker
// finds it wherever the application's working directory is.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { Template } = require(workerData.jinja)
const parsed = new Map()
parentPort.on('message', ({ id, template, context }) => {
  try {
    let t = parsed.get(template)
    if (!t) {
      t = new Template(template)
      if (parsed.size >= 8) parsed.clear()
      parsed.set(template, t)
    }
    parentPort.postMessage({ id, ok: true, text: t.render(context) })
  } catch (err) {
    parentPort.postMessage({ id, ok: false, message: String((err && err.message) || err) })
  }
})
`

interface Job {
  id: number
  template: string
  context: Record<string, unknown>
  timeoutMs: number
  timer?: NodeJS.Timeout
  resolve: (text: string) => void
  reject: (err: unknown) => void
}

/** A Jinja template's own error (a syntax error, an undefined filter): the caller may fall back. */
export class TemplateError extends Error {}

class TemplateRenderer {
  #worker: Worker | undefined
  // In submission order: the worker renders one at a time, so the first is the one running.
  readonly #jobs = new Map<number, Job>()
  #nextId = 1

  render(template: string, context: Record<string, unknown>, timeoutMs: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const job: Job = { id: this.#nextId++, template, context, timeoutMs, resolve, reject }
      this.#jobs.set(job.id, job)
      try {
        this.#send(job)
      } catch (err) {
        this.#jobs.delete(job.id)
        reject(err)
      }
    })
  }

  #send(job: Job): void {
    const worker = this.#ensureWorker()
    worker.ref()
    // The budget counts from when the job reaches the worker's queue; jobs queued behind a slow
    // one are sent again with a fresh budget if that one is stopped.
    job.timer = setTimeout(() => this.#fail(job, `did not finish within ${job.timeoutMs} ms (a template that loops without end?)`), job.timeoutMs)
    worker.postMessage({ id: job.id, template: job.template, context: job.context })
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { jinja: require.resolve('@huggingface/jinja') },
      resourceLimits: { maxOldGenerationSizeMb: HEAP_LIMIT_MB, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
      stdout: false,
      stderr: false,
    })
    worker.on('message', (m: { id: number; ok: boolean; text?: string; message?: string }) => {
      const job = this.#jobs.get(m.id)
      if (!job) return
      this.#settle(job)
      if (m.ok) job.resolve(m.text ?? '')
      else job.reject(new TemplateError(m.message ?? 'the template failed'))
    })
    const lost = (why: string): void => {
      if (this.#worker !== worker) return
      this.#worker = undefined
      const first = this.#jobs.values().next().value
      if (first) this.#fail(first, why)
    }
    worker.on('error', (err: Error & { code?: string }) => {
      lost(err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `used more than ${HEAP_LIMIT_MB} MB while rendering` : `stopped the renderer: ${err.message}`)
    })
    worker.on('exit', () => lost('stopped the renderer'))
    worker.unref()
    this.#worker = worker
    return worker
  }

  #settle(job: Job): void {
    clearTimeout(job.timer)
    this.#jobs.delete(job.id)
    if (this.#jobs.size === 0) this.#worker?.unref()
  }

  // Rejects `job`, stops the worker that is stuck on it, and sends the jobs queued behind it to a
  // new one.
  #fail(job: Job, why: string): void {
    if (!this.#jobs.has(job.id)) return
    this.#settle(job)
    job.reject(new LlavaError('ERR_CHAT_TEMPLATE', `The chat template ${why}. Pass a working template with the chatTemplate option.`))
    const worker = this.#worker
    this.#worker = undefined
    if (worker) void worker.terminate()
    const rest = [...this.#jobs.values()]
    for (const other of rest) {
      clearTimeout(other.timer)
      try {
        this.#send(other)
      } catch (err) {
        this.#settle(other)
        other.reject(err)
      }
    }
  }
}

let renderer: TemplateRenderer | undefined

/** Renders a Jinja template off the JS thread. Rejects with TemplateError for the template's own errors. */
export function renderTemplate(template: string, context: Record<string, unknown>, timeoutMs: number): Promise<string> {
  renderer ??= new TemplateRenderer()
  return renderer.render(template, context, timeoutMs)
}
