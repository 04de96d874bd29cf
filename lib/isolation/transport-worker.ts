// The transport thread of one isolated model: it owns the socket to the model's child process,
// so that the host's JS thread can wait for a synchronous answer (tokenize, cacheInfo, …) while
// this thread keeps reading, and so that every host→child message shares one ordered stream.
import * as net from 'node:net'
import { type MessagePort, parentPort, workerData } from 'node:worker_threads'
import { type ChildMessage, type HostMessage, FrameReader, type ReplyMessage, writeFrame } from './protocol'

interface Data {
  socketPath: string
  token: string
  flag: SharedArrayBuffer
  syncPort: MessagePort
}

const { socketPath, token, flag: flagBuffer, syncPort } = workerData as Data
const flag = new Int32Array(flagBuffer)
const port = parentPort!
const syncIds = new Set<number>()
let socket: net.Socket | undefined
let closed = false
const queued: HostMessage[] = []

function wakeSync(reply: ReplyMessage): void {
  syncIds.delete(reply.id)
  syncPort.postMessage(reply)
  Atomics.store(flag, 0, 1)
  Atomics.notify(flag, 0)
}

function gone(): void {
  if (closed) return
  closed = true
  for (const id of [...syncIds]) wakeSync({ t: 'reply', id, ok: false, error: { name: 'Error', message: 'ended', code: 'ERR_PROCESS_EXITED' } })
  port.postMessage({ t: 'closed' })
  server.close()
  port.close()
  syncPort.close()
}

const server = net.createServer((s) => {
  if (socket) {
    s.destroy() // one child, one connection
    return
  }
  const reader = new FrameReader()
  let trusted = false
  s.on('data', (chunk: Buffer) =>
    reader.push(chunk, (m) => {
      if (!trusted) {
        // The first frame proves the peer is the child this host started.
        if (m !== token) return void s.destroy()
        trusted = true
        socket = s
        server.close()
        for (const q of queued.splice(0)) writeFrame(s, q)
        port.postMessage({ t: 'connected' })
        return
      }
      const msg = m as ChildMessage
      if (msg.t === 'reply' && syncIds.has(msg.id)) wakeSync(msg)
      else port.postMessage(msg)
    }),
  )
  s.on('error', () => undefined)
  s.on('close', () => {
    if (trusted) gone()
  })
})
server.listen(socketPath, () => port.postMessage({ t: 'listening' }))

port.on('message', (m: HostMessage) => {
  if (closed) {
    if (m.t === 'call' && m.sync) wakeSync({ t: 'reply', id: m.id, ok: false, error: { name: 'Error', message: 'ended', code: 'ERR_PROCESS_EXITED' } })
    return
  }
  if (m.t === 'call' && m.sync) syncIds.add(m.id)
  if (socket) writeFrame(socket, m)
  else queued.push(m)
})
