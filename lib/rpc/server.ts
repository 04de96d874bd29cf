// startRpcServer(): this machine's devices for other machines' models, through ggml's RPC server
// (the protocol of llama.cpp's rpc-server), run in a child process that close() ends.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import { LlavaError } from '../errors'
import { compiledScript, nodeChildEnv } from '../node-child'
import * as v from '../validate'
import { listenHostOption } from './options'

export interface StartRpcServerOptions {
  /** IPv4 address to listen on. Default 127.0.0.1; anything else needs `allowRemote`. */
  host?: string
  /** TCP port, 1-65535. Default 50052 (llama.cpp's rpc-server's). */
  port?: number
  /** Device names (see listDevices()) to serve. Default: the GPUs if there are any, else the CPU. */
  devices?: string[]
  /** CPU threads for the CPU device. Default 4, at most the machine's CPUs. */
  threads?: number
  /** A folder where the server keeps tensors by hash, so that a client's next load sends less. */
  cacheDir?: string
  /**
   * Listen on a non-loopback address. The protocol has no authentication: whoever reaches the port
   * can run computations on it and read or write its memory. Use it only on a private network or
   * through an SSH tunnel or WireGuard, never exposed to the internet.
   */
  allowRemote?: boolean
  /** How long to wait for the server to accept connections, in milliseconds. Default 30000. */
  readyTimeoutMs?: number
  /** Called with each line the server prints (connections, errors). */
  onLog?: (line: string) => void
}

/** A running RPC server. */
export interface RpcServer {
  /** 'host:port', what clients pass in `rpcServers` (0.0.0.0 stays as given). */
  readonly address: string
  /** The server process's id. */
  readonly pid: number
  /** Settles when the server process has ended, by close() or otherwise. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Ends the server (SIGTERM, then SIGKILL after 3 s). Idempotent. */
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

const START_KEYS = ['host', 'port', 'devices', 'threads', 'cacheDir', 'allowRemote', 'readyTimeoutMs', 'onLog'] as const
const live = new Set<() => void>()
let exitHook = false

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer()
    probe.once('error', () => resolve(false))
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(true)))
  })
}

function knock(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port })
    s.setTimeout(1000)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
    s.once('timeout', () => {
      s.destroy()
      resolve(false)
    })
  })
}

/**
 * Starts ggml's RPC server on this machine in a process of its own and resolves once it accepts
 * connections. Loopback only unless `allowRemote` is set (see its warning).
 */
export async function startRpcServer(options: StartRpcServerOptions = {}): Promise<RpcServer> {
  const o = v.optionsObject('startRpcServer()', options)
  v.checkKeys('startRpcServer()', o, START_KEYS)
  const allowRemote = v.bool('allowRemote', o.allowRemote, false)
  const host = listenHostOption(o.host, allowRemote)
  const port = v.int('port', o.port, 1, 65535, 50052)
  const threads = v.int('threads', o.threads, 1, 1024, 4)
  const readyTimeoutMs = v.int('readyTimeoutMs', o.readyTimeoutMs, 1, 600_000, 30_000)
  const onLog = v.fn<(line: string) => void>('onLog', o.onLog)
  let devices: string[] | undefined
  if (o.devices !== undefined) {
    if (!Array.isArray(o.devices) || o.devices.some((d) => typeof d !== 'string')) throw v.invalid('devices', 'an array of device names', o.devices)
    devices = o.devices
  }
  const cacheDir = o.cacheDir === undefined ? undefined : path.resolve(v.str('cacheDir', o.cacheDir))
  if (cacheDir !== undefined) fs.mkdirSync(cacheDir, { recursive: true })
  if (!(await portFree(host, port))) {
    throw new LlavaError('ERR_RPC', `port ${port} on ${host} is in use; choose another port`, { details: { host, port } })
  }

  const child = spawn(process.execPath, [compiledScript('rpc', 'server-child'), JSON.stringify({ host, port, devices, threads, cacheDir, parentPid: process.pid })], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: nodeChildEnv(process.env),
    windowsHide: true,
  })
  const stderrTail: string[] = []
  let accepted = false
  const lines = (stream: NodeJS.ReadableStream, keep: boolean): void => {
    let buf = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      buf += chunk
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (line.startsWith('Accepted client connection')) accepted = true
        if (keep) {
          stderrTail.push(line)
          if (stderrTail.length > 20) stderrTail.shift()
        }
        try {
          onLog?.(line)
        } catch {
          // a throwing log callback must not stop the server's output from draining
        }
      }
    })
  }
  lines(child.stdout!, false)
  lines(child.stderr!, true)
  let ended = false
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      ended = true
      live.delete(kill)
      resolve({ code, signal })
    })
  })
  const kill = (): void => void child.kill('SIGKILL')
  live.add(kill)
  if (!exitHook) {
    exitHook = true
    process.once('exit', () => {
      for (const k of live) k()
    })
  }

  const close = async (): Promise<void> => {
    if (!ended) {
      child.kill('SIGTERM')
      const timer = setTimeout(kill, 3000)
      await exited
      clearTimeout(timer)
    }
  }
  // Ready once our own child reports the knock: a knock alone could reach another program.
  const probeHost = host === '0.0.0.0' ? '127.0.0.1' : host
  const deadline = Date.now() + readyTimeoutMs
  while (!accepted) {
    if (ended) {
      const { code, signal } = await exited
      throw new LlavaError('ERR_RPC', `the RPC server on ${host}:${port} ended at start (${signal ?? `exit code ${code}`}): ${stderrTail.join(' ').trim() || 'no message'}`, {
        details: { host, port, exitCode: code, signal, stderr: stderrTail.join('\n') },
      })
    }
    if (Date.now() > deadline) {
      await close()
      throw new LlavaError('ERR_RPC', `the RPC server on ${host}:${port} did not accept connections within ${readyTimeoutMs} ms`, { details: { host, port } })
    }
    await knock(probeHost, port)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    address: `${host}:${port}`,
    pid: child.pid!,
    exited,
    close,
    [Symbol.asyncDispose]: close,
  }
}
