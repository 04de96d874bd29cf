// Jinja chat templates come from model files, so they are untrusted code: one that loops or grows
// without end must not freeze the application. They render in a worker_thread with a time budget
// and a memory limit; a template that overruns is stopped and its call rejects with
// ERR_CHAT_TEMPLATE, while the calls waiting behind it render on a fresh worker.
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
  resolve: (text: string) => void
  reject: (err: unknown) => void
}

/** A Jinja template's own error (a syntax error, an undefined filter): the caller may fall back. */
export class TemplateError extends Error {}

// One rendering at a time: the time budget counts from when a job reaches the worker, so a job is
// never blamed for the time it waited, and a stopped worker only ever held the job that overran.
class TemplateRenderer {
  #worker: Worker | undefined
  readonly #waiting: Job[] = []
  #running: { job: Job; timer: NodeJS.Timeout } | undefined
  #nextId = 1

  render(template: string, context: Record<string, unknown>, timeoutMs: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.#waiting.push({ id: this.#nextId++, template, context, timeoutMs, resolve, reject })
      this.#pump()
    })
  }

  #pump(): void {
    while (!this.#running && this.#waiting.length > 0) {
      const job = this.#waiting.shift()!
      try {
        const worker = this.#ensureWorker()
        worker.ref()
        worker.postMessage({ id: job.id, template: job.template, context: job.context })
        const timer = setTimeout(() => this.#stop(`did not finish within ${job.timeoutMs} ms (a template that loops without end?)`), job.timeoutMs)
        this.#running = { job, timer }
      } catch (err) {
        job.reject(err) // the context could not be sent (a value that cannot be cloned)
      }
    }
    if (!this.#running) this.#worker?.unref()
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
      const running = this.#running
      if (worker !== this.#worker || !running || running.job.id !== m.id) return
      clearTimeout(running.timer)
      this.#running = undefined
      if (m.ok) running.job.resolve(m.text ?? '')
      else running.job.reject(new TemplateError(m.message ?? 'the template failed'))
      this.#pump()
    })
    worker.on('error', (err: Error & { code?: string }) => {
      if (worker !== this.#worker) return
      this.#stop(err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `used more than ${HEAP_LIMIT_MB} MB while rendering` : `stopped the renderer: ${err.message}`)
    })
    worker.on('exit', () => {
      if (worker === this.#worker) this.#stop('stopped the renderer')
    })
    worker.unref()
    this.#worker = worker
    return worker
  }

  // Rejects the running job, ends its worker, and goes on with the next job on a fresh one.
  #stop(why: string): void {
    const worker = this.#worker
    this.#worker = undefined
    if (worker) void worker.terminate()
    const running = this.#running
    this.#running = undefined
    if (running) {
      clearTimeout(running.timer)
      running.job.reject(new LlavaError('ERR_CHAT_TEMPLATE', `The chat template ${why}. Pass a working template with the chatTemplate option.`))
    }
    this.#pump()
  }
}

let renderer: TemplateRenderer | undefined

/** Renders a Jinja template off the JS thread. Rejects with TemplateError for the template's own errors. */
export function renderTemplate(template: string, context: Record<string, unknown>, timeoutMs: number): Promise<string> {
  renderer ??= new TemplateRenderer()
  return renderer.render(template, context, timeoutMs)
}
