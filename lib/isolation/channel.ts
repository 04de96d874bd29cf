// The host's side of one isolated model: its child process, the transport thread that talks to
// it, the calls waiting for answers, and what becomes of them when the child dies.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from 'node:worker_threads'
import { LlavaError } from '../errors'
import { currentLogger, onLoggerChange } from '../logging'
import { compiledScript } from '../node-child'
import { type ChildMessage, type HostMessage, type ReplyMessage, fromWireError } from './protocol'
import { type ChildHandle, startChild } from './spawn'

/** How long a synchronous call (tokenize, cacheInfo, …) waits for a child that does not answer. */
const SYNC_TIMEOUT_MS = 60_000
/** How long dispose waits for the child to end by itself before killing it. */
const EXIT_GRACE_MS = 5_000
/** How long the child may take to start and connect. */
const START_TIMEOUT_MS = 60_000
const STDERR_TAIL_LINES = 20

interface Pending {
  resolve(value: unknown): void
  reject(err: unknown): void
  onEvent?: (data: unknown) => void
}

const script = (name: string): string => compiledScript('isolation', name)

function socketPath(dir: string): string {
  return process.platform === 'win32' ? `\\\\?\\pipe\\llava-native-${path.basename(dir)}` : path.join(dir, 'model.sock')
}

const live = new Set<ChildChannel>()
let exitHookInstalled = false

export class ChildChannel {
  #child: ChildHandle | undefined
  readonly #worker: Worker
  readonly #syncPort: MessagePort
  readonly #flag: Int32Array
  readonly #dir: string
  readonly #pending = new Map<number, Pending>()
  readonly #stderr: string[] = []
  #partialLine = ''
  #nextId = 1
  #exitError: LlavaError | undefined
  #closing = false
  #graceTimer: NodeJS.Timeout | undefined
  #transportError: Error | undefined
  readonly #exited: Promise<LlavaError>
  /** Settles once the transport thread has ended (and released its socket and event loop). */
  #transportEnded: Promise<unknown> = Promise.resolve()
  #resolveExited!: (e: LlavaError) => void
  readonly #connected: Promise<void>
  readonly #unsubscribeLogs: () => void
  /** Called once when the child ends other than through close(). */
  onCrash: ((error: LlavaError) => void) | undefined

  private constructor() {
    this.#dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-native-'))
    const sock = socketPath(this.#dir)
    const token = randomBytes(16).toString('hex')
    const flag = new SharedArrayBuffer(4)
    this.#flag = new Int32Array(flag)
    const sync = new MessageChannel()
    this.#syncPort = sync.port2
    this.#worker = new Worker(script('transport-worker'), {
      workerData: { socketPath: sock, token, flag, syncPort: sync.port1 },
      transferList: [sync.port1],
      // the transport thread needs none of the host's flags (an --inspect port, a loader)
      execArgv: [],
    })
    this.#worker.unref()
    let connected!: () => void
    this.#connected = new Promise((resolve) => (connected = resolve))
    this.#exited = new Promise((resolve) => (this.#resolveExited = resolve))
    this.#worker.on('message', (m: ChildMessage | { t: 'closed' } | { t: 'connected' } | { t: 'listening' }) => {
      // the child starts once there is something to connect to
      if (m.t === 'listening') this.#spawn(sock, token)
      else if (m.t === 'connected') connected()
      else if (m.t === 'closed') this.#fail()
      else if (m.t === 'log') currentLogger()?.(m.level, m.message)
      else this.#receive(m)
    })
    this.#worker.on('error', (err) => {
      this.#transportError = err
      this.#fail()
    })
    live.add(this)
    if (!exitHookInstalled) {
      exitHookInstalled = true
      // A host that exits takes its models' processes along (SIGKILL of the host: they see the
      // connection end and go themselves).
      process.once('exit', () => {
        for (const c of live) {
          c.#child?.kill('SIGKILL')
          fs.rmSync(c.#dir, { recursive: true, force: true })
        }
      })
    }
    this.#unsubscribeLogs = onLoggerChange((level) => this.send('setLogger', [level]))
    const logger = currentLogger()
    if (logger) this.send('setLogger', [logger.level])
  }

  #spawn(sock: string, token: string): void {
    if (this.#closing || this.#exitError) return
    const child = startChild(script('child'), { ...process.env, LLAVA_NATIVE_ISOLATION_SOCKET: sock, LLAVA_NATIVE_ISOLATION_TOKEN: token, LLAVA_NATIVE_ISOLATION_DIR: this.#dir })
    this.#child = child
    child.unref()
    child.stderr?.on('data', (chunk: Buffer) => this.#keepStderr(chunk))
    let once = false
    child.onExit((code, signal) => {
      if (once) return
      once = true
      // the last stderr lines arrive just after the exit
      const stderrDone = child.stderr ? new Promise((r) => child.stderr!.once('close', r)) : Promise.resolve()
      void Promise.race([stderrDone, new Promise((r) => setTimeout(r, 200))]).then(() => this.#resolveExited(this.#onExit(code, signal)))
    })
  }

  /** Starts a child process and waits until it is connected. */
  static async start(): Promise<ChildChannel> {
    const channel = new ChildChannel()
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        channel.#connected,
        channel.#exited.then((e) => Promise.reject(e)),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new LlavaError('ERR_PROCESS_EXITED', `The model process did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS)
        }),
      ])
    } catch (err) {
      await channel.close()
      throw err
    } finally {
      clearTimeout(timer)
    }
    return channel
  }

  get pid(): number | undefined {
    return this.#child?.pid
  }

  /** Why the child is gone, once it is. */
  get exitError(): LlavaError | undefined {
    return this.#exitError
  }

  newId(): number {
    return this.#nextId++
  }

  call(op: string, args: unknown[], options?: { transfer?: ArrayBuffer[]; onEvent?: (data: unknown) => void }): Promise<unknown> {
    if (this.#exitError) return Promise.reject(this.#exitError)
    if (this.#closing) return Promise.reject(new LlavaError('ERR_DISPOSED', 'This model has been disposed; load it again with loadModel()'))
    const id = this.newId()
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onEvent: options?.onEvent })
      if (this.#pending.size === 1) this.#worker.ref() // as a native call keeps the event loop alive
      this.#post({ t: 'call', id, op, args }, options?.transfer)
    })
  }

  /** A call whose answer the JS thread waits for, as for the in-process addon's synchronous methods. */
  callSync(op: string, args: unknown[]): unknown {
    if (this.#exitError) throw this.#exitError
    const id = this.newId()
    Atomics.store(this.#flag, 0, 0)
    this.#post({ t: 'call', id, op, args, sync: true })
    const deadline = Date.now() + SYNC_TIMEOUT_MS
    for (;;) {
      const left = deadline - Date.now()
      if (left <= 0) throw new LlavaError('ERR_INTERNAL', `The model process did not answer ${op}() within ${SYNC_TIMEOUT_MS / 1000} s (is it stopped?)`)
      Atomics.wait(this.#flag, 0, 0, left)
      Atomics.store(this.#flag, 0, 0)
      for (let m = receiveMessageOnPort(this.#syncPort); m; m = receiveMessageOnPort(this.#syncPort)) {
        const reply = m.message as ReplyMessage
        if (reply.id !== id) continue // the late answer of a call that timed out
        if (reply.ok) return reply.value
        if (reply.error?.code === 'ERR_PROCESS_EXITED') throw this.#exitError ?? new LlavaError('ERR_PROCESS_EXITED', `The model process ended during ${op}()`)
        throw fromWireError(reply.error!)
      }
    }
  }

  /** A message nobody waits on (disposals, retains, aborts). Dropped once the child is gone. */
  send(op: string, args: unknown[]): void {
    if (this.#exitError) return
    this.#post({ t: 'send', op, args })
  }

  /**
   * Ends the child: it disposes what it holds and exits; one that has not exited after a grace
   * period is killed. Idempotent; resolves once the process and the transport thread are gone.
   */
  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true
      this.#unsubscribeLogs()
      if (!this.#child && !this.#exitError) this.#resolveExited(this.#onExit(null, null)) // closed before it started
      else if (!this.#exitError) {
        this.#post({ t: 'call', id: this.newId(), op: 'shutdown', args: [] })
        this.killAfterGrace()
      }
    }
    await this.#exited
    await this.#transportEnded
  }

  /**
   * Kills the child unless it has exited within the grace period: dispose() waits for running
   * work, and work in a process that hangs (stopped, deadlocked in a driver) never ends.
   */
  killAfterGrace(): void {
    if (this.#graceTimer || this.#exitError) return
    this.#graceTimer = setTimeout(() => this.#child?.kill('SIGKILL'), EXIT_GRACE_MS)
    void this.#exited.then(() => clearTimeout(this.#graceTimer))
  }

  #post(message: HostMessage, transfer?: ArrayBuffer[]): void {
    this.#worker.postMessage(message, transfer)
  }

  #receive(m: Exclude<ChildMessage, { t: 'log' }>): void {
    const pending = this.#pending.get(m.id)
    if (!pending) return
    if (m.t === 'event') {
      pending.onEvent?.(m.data)
      return
    }
    this.#settle(m.id)
    if (m.ok) pending.resolve(m.value)
    else pending.reject(fromWireError(m.error!))
  }

  #settle(id: number): void {
    this.#pending.delete(id)
    if (this.#pending.size === 0) this.#worker.unref()
  }

  #keepStderr(chunk: Buffer): void {
    process.stderr.write(chunk) // what llama.cpp prints reaches the host's stderr, as in-process
    const lines = (this.#partialLine + chunk.toString('utf8')).split('\n')
    this.#partialLine = lines.pop()!.slice(-4096)
    for (const l of lines) this.#stderr.push(l.slice(0, 4096))
    this.#stderr.splice(0, Math.max(0, this.#stderr.length - STDERR_TAIL_LINES))
  }

  /** The transport ended: the process is ending too; its exit says how. */
  #fail(): void {
    if (!this.#child) {
      // the transport thread failed before the child was started: there will be no child
      if (!this.#exitError) this.#resolveExited(this.#onExit(null, null))
      return
    }
    // the connection cannot end while the process lives, unless the process is hung on its way out
    this.killAfterGrace()
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): LlavaError {
    const stderr = [...this.#stderr, ...(this.#partialLine ? [this.#partialLine] : [])]
    const how = signal ? `was killed by ${signal}` : code === null ? 'could not be started' : `exited with code ${code}`
    const requested = this.#closing && !this.#exitError
    const transport = this.#transportError ? ` after the host's transport thread failed (${this.#transportError.message})` : ''
    const tail = stderr.length > 0 ? `; its last output:\n${stderr.join('\n')}` : ''
    const error = new LlavaError(
      'ERR_PROCESS_EXITED',
      requested
        ? 'This model has been disposed; load it again with loadModel()'
        : `The model's process ${how}${transport}${tail}\nThe model is unusable now: call model.reload() (or loadModel() again).`,
      { details: { exitCode: code, signal, stderr } },
    )
    this.#exitError = error
    live.delete(this)
    this.#unsubscribeLogs()
    for (const [id, p] of [...this.#pending]) {
      this.#settle(id)
      p.reject(error)
    }
    this.#transportEnded = this.#worker.terminate().catch(() => undefined) // its socket closes with it
    fs.rmSync(this.#dir, { recursive: true, force: true })
    if (!requested) {
      try {
        this.onCrash?.(error)
      } catch {
        // the application's handler failing changes nothing here
      }
    }
    return error
  }
}
