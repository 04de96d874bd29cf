// The child process of a model loaded with `isolation: 'process'`: it holds the real addon and
// runs what the host's proxies ask for. It lives as long as its host: when the connection to the
// host ends, however that happens, the process ends at once.
import * as fs from 'node:fs'
import * as net from 'node:net'
import { binding } from '../native'
import type { NativeAbortHandle, NativeBinding, NativeEmbedding, NativeModel, NativeSession, NativeSessionGroup } from '../native-types'
import { type ChildMessage, type EmbeddingRef, type HostMessage, FrameReader, toWireError, writeFrame } from './protocol'
import { crashArmed, crashPoint } from './test-crash'

const socketPath = process.env.LLAVA_NATIVE_ISOLATION_SOCKET
const token = process.env.LLAVA_NATIVE_ISOLATION_TOKEN
/** The host's private folder of this connection, left behind by a host that was killed. */
const hostDir = process.env.LLAVA_NATIVE_ISOLATION_DIR
if (!socketPath || !token) {
  process.stderr.write('llava-native: this is the child process of an isolated model; loadModel({ isolation: "process" }) starts it\n')
  process.exit(2)
}
// Not inherited by anything this process might start.
delete process.env.LLAVA_NATIVE_ISOLATION_SOCKET
delete process.env.LLAVA_NATIVE_ISOLATION_TOKEN
delete process.env.LLAVA_NATIVE_ISOLATION_DIR

const objects = new Map<number, unknown>()
const aborts = new Map<number, NativeAbortHandle>()
let native: NativeBinding | undefined
const addon = (): NativeBinding => (native ??= binding())

const hostGone = (why: string): void => {
  // Nothing here is worth finishing for a host that is gone: no exit handlers, no destructors.
  // (Said on stderr, whose last lines the host reports should it still be there.)
  try {
    if (hostDir) fs.rmSync(hostDir, { recursive: true, force: true })
    fs.writeSync(2, `llava-native model process: ${why}; ending\n`)
  } catch {
    // no stderr left
  }
  process.kill(process.pid, 'SIGKILL')
}

const socket = net.connect(socketPath)
socket.on('error', (err) => hostGone(`the connection to the host failed (${err.message})`))
socket.on('close', () => hostGone('the host closed the connection'))
process.on('disconnect', () => hostGone('the host disconnected'))
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) hostGone('the host process is gone')
}, 1000).unref()

const post = (message: ChildMessage): void => {
  writeFrame(socket, message)
}

writeFrame(socket, token)
const reader = new FrameReader()
socket.on('data', (chunk: Buffer) => reader.push(chunk, (m) => handle(m as HostMessage)))

function get<T>(id: number): T {
  const o = objects.get(id)
  if (o === undefined) throw Object.assign(new Error('This object of the model process is gone'), { code: 'ERR_DISPOSED' })
  return o as T
}

function media(list: unknown[]): unknown[] {
  return list.map((m) => (m !== null && typeof m === 'object' && 'ref' in m ? get<NativeEmbedding>((m as EmbeddingRef).ref) : m))
}

/** Keeps the embedding under the host's id and gives what the host's proxy reports of it. */
function keepEmbedding(id: number, e: NativeEmbedding): unknown {
  objects.set(id, e)
  return { info: e.info(), encodeMs: e.encodeMs, encoderMs: e.encoderMs, reused: e.reused }
}

/** The call's abort handle, aborted already when the host's was. */
function abortHandle(id: number | null, aborted: boolean): NativeAbortHandle | undefined {
  if (id === null) return undefined
  const h = new (addon().AbortHandle)()
  if (aborted) h.abort()
  aborts.set(id, h)
  return h
}

type Op = (args: any[], event: (data: unknown) => void) => unknown

const OPS: Record<string, Op> = {
  async load([id, params, abortId, aborted, progress, memoryLimit], event) {
    if (memoryLimit !== null && !addon().setMemoryLimit(memoryLimit)) {
      throw Object.assign(new Error('memoryLimit could not be applied to the model process (setrlimit refused it)'), { code: 'ERR_INVALID_ARGUMENT' })
    }
    const handle = abortHandle(abortId, aborted)
    try {
      const m = await addon().loadModel(params, handle, progress ? (f: number) => {
        crashPoint('load')
        event(f)
      } : () => crashPoint('load'))
      objects.set(id, m)
      return { info: m.info(), gpuLayers: m.gpuLayers }
    } finally {
      aborts.delete(abortId)
    }
  },
  async encodeImage([modelId, input, abortId, aborted, out]) {
    return encode('encodeImage', modelId, input, abortId, aborted, out)
  },
  async encodeAudio([modelId, input, abortId, aborted, out]) {
    return encode('encodeAudio', modelId, input, abortId, aborted, out)
  },
  countTokens([modelId, prompt, list, addSpecial, parseSpecial]) {
    return get<NativeModel>(modelId).countTokens(prompt, media(list) as never, addSpecial, parseSpecial)
  },
  renderChat([modelId, json, timeoutMs]) {
    return addon().renderChat(get<NativeModel>(modelId), json, timeoutMs)
  },
  tokenize([modelId, text, add, parse]) {
    return get<NativeModel>(modelId).tokenize(text, add, parse)
  },
  detokenize([modelId, tokens, render]) {
    return get<NativeModel>(modelId).detokenize(tokens, render)
  },
  encodeCount([modelId]) {
    return get<NativeModel>(modelId).encodeCount()
  },
  chatGrammarAccepts([modelId, spec, grammar, text]) {
    return addon().chatGrammarAccepts(get<NativeModel>(modelId), spec, grammar, text)
  },
  sessionNew([id, modelId, params, groupId]) {
    const group = groupId === null ? undefined : get<NativeSessionGroup>(groupId)
    objects.set(id, new (addon().Session)(get<NativeModel>(modelId), params, group))
  },
  groupNew([id, modelId, params, size]) {
    objects.set(id, new (addon().SessionGroup)(get<NativeModel>(modelId), params, size))
  },
  freeSessions([groupId]) {
    return get<NativeSessionGroup>(groupId).freeSessions()
  },
  async generate([sessionId, req, abortId, aborted, stream], event) {
    const handle = abortHandle(abortId, aborted)!
    try {
      const onPieces = stream || crashArmed('generate') ? (pieces: unknown) => {
        crashPoint('generate')
        event(pieces)
      } : undefined
      const run = get<NativeSession>(sessionId).generate({ ...req, images: media(req.images) }, handle, onPieces)
      setImmediate(() => crashPoint('prefill'))
      return await run
    } finally {
      aborts.delete(abortId)
    }
  },
  reset([sessionId]) {
    get<NativeSession>(sessionId).reset()
  },
  cacheInfo([sessionId]) {
    return get<NativeSession>(sessionId).cacheInfo()
  },
  sessionSave([sessionId, file]) {
    const run = get<NativeSession>(sessionId).save(file)
    setImmediate(() => crashPoint('save'))
    return run
  },
  sessionLoad([sessionId, file]) {
    return get<NativeSession>(sessionId).load(file)
  },
  floats([id]) {
    return get<NativeEmbedding>(id).toFloat32Array()
  },
  retain([id, copy]) {
    objects.set(copy, get<NativeEmbedding>(id).retain())
  },
  dispose([id]) {
    const o = objects.get(id) as { dispose(): void } | undefined
    objects.delete(id)
    o?.dispose()
  },
  abort([abortId]) {
    aborts.get(abortId)?.abort()
  },
  setLogger([level]) {
    addon().setLogCallback(level === null ? null : (lvl, message) => post({ t: 'log', level: lvl, message }), level ?? undefined)
  },
  shutdown() {
    // Disposes in reverse creation order: sessions and embeddings before their model.
    for (const id of [...objects.keys()].reverse()) OPS.dispose([id], () => undefined)
    setImmediate(() => socket.end(() => process.exit(0)))
  },
}

async function encode(kind: 'encodeImage' | 'encodeAudio', modelId: number, input: unknown, abortId: number | null, aborted: boolean, out: number): Promise<unknown> {
  const handle = abortHandle(abortId, aborted)
  try {
    const run = get<NativeModel>(modelId)[kind](input as never, handle)
    setImmediate(() => crashPoint('encode'))
    return keepEmbedding(out, await run)
  } finally {
    if (abortId !== null) aborts.delete(abortId)
  }
}

function handle(m: HostMessage): void {
  const op = OPS[m.op]
  if (m.t === 'send') {
    try {
      op(m.args, () => undefined)
    } catch {
      // nobody waits on a send: a failed dispose of something already gone changes nothing
    }
    return
  }
  const { id } = m
  const event = (data: unknown): void => post({ t: 'event', id, data })
  let result: unknown
  try {
    if (!op) throw new Error(`unknown operation ${m.op}`)
    result = op(m.args, event)
  } catch (err) {
    post({ t: 'reply', id, ok: false, error: toWireError(err) })
    return
  }
  if (result instanceof Promise) {
    result.then(
      (value) => post({ t: 'reply', id, ok: true, value }),
      (err) => post({ t: 'reply', id, ok: false, error: toWireError(err) }),
    )
  } else post({ t: 'reply', id, ok: true, value: result })
}
