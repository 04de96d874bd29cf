// What the host and a model's child process say to each other. Every host→child message travels
// on one ordered stream (through the transport thread), so a handle sent with one message is known
// to the child when the next one uses it.
import * as v8 from 'node:v8'

/** A call the host waits on (an async result, or a synchronous one through the transport thread). */
export interface CallMessage {
  t: 'call'
  id: number
  op: string
  args: unknown[]
  /** The caller's thread is blocked until this call's reply arrives. */
  sync?: boolean
}

/** A message the host does not wait on: disposals, retains, aborts. */
export interface SendMessage {
  t: 'send'
  op: string
  args: unknown[]
}

export type HostMessage = CallMessage | SendMessage

export interface ReplyMessage {
  t: 'reply'
  id: number
  ok: boolean
  value?: unknown
  error?: WireError
}

/** Progress and streamed pieces of a running call. */
export interface EventMessage {
  t: 'event'
  id: number
  data: unknown
}

export interface LogMessage {
  t: 'log'
  level: string
  message: string
}

export type ChildMessage = ReplyMessage | EventMessage | LogMessage

/** An error as it crosses the process boundary: what fromNative() and LlavaError read. */
export interface WireError {
  name: string
  message: string
  code?: string
  details?: Record<string, unknown>
}

export function toWireError(err: unknown): WireError {
  const e = err as { name?: unknown; message?: unknown; code?: unknown; details?: unknown }
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    code: typeof e?.code === 'string' ? e.code : undefined,
    details: e?.details !== null && typeof e?.details === 'object' ? (e.details as Record<string, unknown>) : undefined,
  }
}

/** A plain Error with the native layer's `code`, as the in-process addon throws them. */
export function fromWireError(w: WireError): Error {
  const err = new Error(w.message) as Error & { code?: string; details?: Record<string, unknown> }
  if (w.code !== undefined) err.code = w.code
  if (w.details !== undefined) err.details = w.details
  return err
}

/** Embeddings cross as their handle number. */
export interface EmbeddingRef {
  ref: number
}

// Frames on the socket: a 4-byte little-endian length, then the message serialized by V8
// (binary: typed arrays cross as bytes, never as base64).
export function writeFrame(socket: { write(chunk: Buffer): unknown }, message: unknown): void {
  const body = v8.serialize(message)
  const head = Buffer.allocUnsafe(4)
  head.writeUInt32LE(body.length, 0)
  socket.write(head)
  socket.write(body)
}

/** Splits a byte stream into messages. */
export class FrameReader {
  #chunks: Buffer[] = []
  #buffered = 0

  push(chunk: Buffer, onMessage: (message: unknown) => void): void {
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    for (;;) {
      if (this.#buffered < 4) return
      let head = this.#chunks[0]
      if (head.length < 4) head = this.#flatten()
      const length = head.readUInt32LE(0)
      if (this.#buffered < 4 + length) return
      const all = this.#chunks.length === 1 ? this.#chunks[0] : this.#flatten()
      const message = v8.deserialize(all.subarray(4, 4 + length))
      const rest = all.subarray(4 + length)
      this.#chunks = rest.length > 0 ? [rest] : []
      this.#buffered = rest.length
      onMessage(message)
    }
  }

  #flatten(): Buffer {
    const one = Buffer.concat(this.#chunks)
    this.#chunks = [one]
    return one
  }
}
