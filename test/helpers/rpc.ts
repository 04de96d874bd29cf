// Loopback plumbing for the RPC tests: free ports, a byte-counting proxy that can cut or freeze a
// connection at a chosen point, and fake servers that answer the handshake wrongly.
import * as fs from 'node:fs'
import * as net from 'node:net'

/** A port nothing listens on right now (the kernel's choice, released again). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

/**
 * Forwards 127.0.0.1:<port> to a server and counts the bytes the client sends. `trip(n, action)`
 * runs `action` once the count passes n more bytes than now: the failure lands inside the next
 * call, not between calls. `tripOnCommand(cmd, action)` follows the client's command framing
 * ([cmd:1][size:8][payload]) and runs `action` before the next command `cmd` is forwarded.
 */
export class CountingProxy {
  readonly server: net.Server
  sent = 0
  private pairs = new Set<net.Socket>()
  private tripAt = Infinity
  private onTrip: (() => void) | null = null
  private tripCommand = -1
  private onCommand: (() => void) | null = null

  private constructor(server: net.Server) {
    this.server = server
  }

  static async start(targetPort: number): Promise<CountingProxy & { port: number }> {
    const server = net.createServer()
    const proxy = new CountingProxy(server)
    server.on('connection', (client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: targetPort })
      proxy.pairs.add(client).add(upstream)
      // this connection's command framing: bytes of payload left to skip, the header read so far
      const framing = { skip: 0, header: [] as number[] }
      const drop = (): void => {
        client.destroy()
        upstream.destroy()
        proxy.pairs.delete(client)
        proxy.pairs.delete(upstream)
      }
      client.on('data', (chunk: Buffer) => {
        proxy.sent += chunk.length
        if (proxy.sent > proxy.tripAt && proxy.onTrip) {
          const action = proxy.onTrip
          proxy.onTrip = null
          action()
        }
        if (proxy.watchCommands(chunk, framing)) return
        upstream.write(chunk)
      })
      upstream.on('data', (chunk) => client.write(chunk))
      client.on('error', drop).on('close', drop)
      upstream.on('error', drop).on('close', drop)
    })
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
    return Object.assign(proxy, { port: (server.address() as net.AddressInfo).port })
  }

  /** Reads command headers out of the client's bytes; true when the watched command came (and was held back). */
  private watchCommands(chunk: Buffer, framing: { skip: number; header: number[] }): boolean {
    let i = 0
    while (i < chunk.length) {
      if (framing.skip > 0) {
        const n = Math.min(framing.skip, chunk.length - i)
        framing.skip -= n
        i += n
        continue
      }
      framing.header.push(chunk[i++])
      if (framing.header.length < 9) continue
      const cmd = framing.header[0]
      framing.skip = Number(Buffer.from(framing.header.slice(1)).readBigUInt64LE(0))
      framing.header = []
      if (cmd === this.tripCommand && this.onCommand) {
        const action = this.onCommand
        this.onCommand = null
        action()
        return true
      }
    }
    return false
  }

  tripOnCommand(cmd: number, action: () => void): void {
    this.tripCommand = cmd
    this.onCommand = action
  }

  trip(moreBytes: number, action: () => void): void {
    this.tripAt = this.sent + moreBytes
    this.onTrip = action
  }

  async close(): Promise<void> {
    for (const s of this.pairs) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

export type FakeBehaviour = 'version' | 'garbage' | 'truncated' | 'silent' | 'bad-device-count'

const HELLO_RSP = 4 + 24 // major, minor, patch, padding, connection capabilities

/**
 * A server on 127.0.0.1 that reads commands ([cmd:1][size:8][payload]) and answers as told:
 * another protocol version, a reply of the wrong size, half a reply then a close, nothing at all,
 * or a correct handshake followed by a malformed device count.
 */
export async function fakeServer(behaviour: FakeBehaviour): Promise<{ address: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((sock) => {
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    sock.on('error', () => undefined)
    let buf = Buffer.alloc(0)
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      while (buf.length >= 9) {
        const cmd = buf[0]
        const size = Number(buf.readBigUInt64LE(1))
        if (buf.length < 9 + size) return
        buf = buf.subarray(9 + size)
        answer(sock, cmd)
      }
    })
  })
  const answer = (sock: net.Socket, cmd: number): void => {
    const reply = (payload: Buffer, declared = payload.length): void => {
      const head = Buffer.alloc(8)
      head.writeBigUInt64LE(BigInt(declared))
      sock.write(Buffer.concat([head, payload]))
    }
    if (behaviour === 'silent') return
    if (cmd === 14) {
      const hello = Buffer.alloc(HELLO_RSP)
      if (behaviour === 'version') hello[0] = 99
      else hello[0] = 7
      if (behaviour === 'garbage') return reply(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'), 0x4854545020)
      if (behaviour === 'truncated') {
        const head = Buffer.alloc(8)
        head.writeBigUInt64LE(BigInt(HELLO_RSP))
        sock.end(Buffer.concat([head, hello.subarray(0, 10)]))
        return
      }
      return reply(hello)
    }
    if (cmd === 15 && behaviour === 'bad-device-count') return reply(Buffer.alloc(2))
    sock.destroy()
  }
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

/** Open file descriptors of this process (Linux), or -1. */
export function openFds(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length
  } catch {
    return -1
  }
}
