// Models split over ggml RPC servers on loopback: the same greedy tokens as local-only, and every
// way a server can fail (refused, killed during load / encode / generation / between calls /
// before dispose, frozen, garbage, truncated, another protocol version) is ERR_RPC with the
// process alive, the model refused from then on, and the next local model working.
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { type LlavaError, type Model, type RpcServer, listDevices, loadModel, startRpcServer } from '../lib'
import { ensurePair } from '../lib/fixtures'
import { WEIGHT_TYPES, FILE_TYPES } from '../lib/fixtures/build'
import { writeLlamaText } from '../lib/fixtures/llava'
import { buildLlamaVocab } from '../lib/fixtures/vocab'
import { bmpFile, greedy, root, tempDir } from './helpers/fixtures'
import { CountingProxy, fakeServer, type FakeBehaviour, freePort, openFds } from './helpers/rpc'

const TEXT = 'USER: name a fruit\nASSISTANT:'
const IMAGE = 'USER: <image>what is this?\nASSISTANT:'
const run = { maxTokens: 24, ...greedy }
// The servers compute with llama.cpp's default CPU kernels; so does the local reference.
const KERNELS = { deterministic: false, threads: 2 } as const

async function rejection(p: Promise<unknown>): Promise<LlavaError> {
  try {
    await p
  } catch (err) {
    return err as LlavaError
  }
  throw new Error('expected a rejection')
}

/** A 6-layer model, wider than the tiny pair: its layers can go three ways. */
function midModel(dir: string): string {
  const file = path.join(dir, 'mid.gguf')
  writeLlamaText(file, 11, {
    name: 'mid', nEmbd: 256, nLayer: 6, nHead: 8, nHeadKv: 4, nFf: 512, nCtx: 4096, vocab: buildLlamaVocab(),
    weights: WEIGHT_TYPES.f32, output: WEIGHT_TYPES.f32, fileType: FILE_TYPES.f32,
  })
  return file
}

/** The CLI's server, as a user starts it; resolves once it accepts connections. */
async function cliServer(port: number): Promise<{ address: string; kill(signal: NodeJS.Signals): void; exited: Promise<void> }> {
  const child = spawn(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'rpc-server', '--port', String(port), '--threads', '2'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let out = ''
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('listening on')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`rpc-server exited (${code}): ${out}`)))
  })
  return { address: `127.0.0.1:${port}`, kill: (signal) => void child.kill(signal), exited }
}

describe('RPC: a model over several servers', () => {
  const dir = tempDir('llava-rpc-')
  let a: RpcServer
  let b: Awaited<ReturnType<typeof cliServer>>

  beforeAll(async () => {
    a = await startRpcServer({ port: await freePort(), threads: 2 })
    b = await cliServer(await freePort())
  })
  afterAll(async () => {
    await a?.close()
    b?.kill('SIGTERM')
    await b?.exited
  })

  test("isolation: 'process': the model's child process connects, with the same tokens", async () => {
    const files = ensurePair('tiny')
    await using local = await loadModel({ ...files, ...KERNELS })
    await using isolated = await loadModel({ ...files, ...KERNELS, isolation: 'process', rpcServers: [a.address, b.address], gpuLayers: 2, tensorSplit: [1, 1] })
    expect(isolated.info.placement.filter((p) => p.endpoint).length).toBe(2)
    await using s1 = local.createSession({ contextSize: 256 })
    await using s2 = isolated.createSession({ contextSize: 256 })
    expect((await s2.complete({ prompt: TEXT, ...run })).tokens).toEqual((await s1.complete({ prompt: TEXT, ...run })).tokens)
  })

  test('listDevices({ rpcServers }) adds each server’s devices with their endpoint', async () => {
    const devices = await listDevices({ rpcServers: [a.address, b.address] })
    const remote = devices.filter((d) => d.kind === 'rpc')
    expect(remote.map((d) => d.endpoint)).toEqual([a.address, b.address])
    for (const d of remote) expect(d.memoryTotal).toBeGreaterThan(0)
    expect(devices.filter((d) => d.kind !== 'rpc')).toEqual(listDevices())
  })

  const pairs = [
    { name: 'tiny LLaVA pair', load: () => ensurePair('tiny'), gpuLayers: 2, image: true },
    { name: '6-layer model', load: () => ({ model: midModel(dir) }), gpuLayers: 4, image: false },
  ]
  describe.each(pairs)('$name: local + server A + server B', ({ load, gpuLayers, image }) => {
    let local: Model
    let split: Model
    beforeAll(async () => {
      const files = load()
      local = await loadModel({ ...files, ...KERNELS })
      split = await loadModel({ ...files, ...KERNELS, rpcServers: [a.address, b.address], gpuLayers, tensorSplit: [1, 1] })
    })
    afterAll(async () => {
      await local?.dispose()
      await split?.dispose()
    })

    test('the layers are spread over the CPU and both servers', () => {
      const placement = split.info.placement
      const byEndpoint = new Map(placement.map((p) => [p.endpoint, p]))
      expect(byEndpoint.get(a.address)!.layers).toBeGreaterThan(0)
      expect(byEndpoint.get(b.address)!.layers + (byEndpoint.get(b.address)!.output ? 1 : 0)).toBeGreaterThan(0)
      const remoteLayers = placement.filter((p) => p.endpoint).reduce((n, p) => n + p.layers + (p.output ? 1 : 0), 0)
      expect(remoteLayers).toBe(gpuLayers)
      expect(split.info.layers - remoteLayers + 1).toBeGreaterThan(0) // the rest stay local
      expect(local.info.placement.every((p) => p.endpoint === null)).toBe(true)
      if (image) expect(split.info.vision!.device).toBe('CPU')
    })

    test('plain sessions: the same greedy tokens as local-only', async () => {
      const prompts: Array<{ prompt: string; images?: string[] }> = [{ prompt: TEXT }]
      if (image) prompts.push({ prompt: IMAGE, images: [bmpFile(dir, 'rpc.bmp', 48, 40, 3).file] })
      for (const p of prompts) {
        await using s1 = local.createSession({ contextSize: 512 })
        await using s2 = split.createSession({ contextSize: 512 })
        const want = await s1.complete({ ...p, ...run })
        const got = await s2.complete({ ...p, ...run })
        expect(want.tokens.length).toBeGreaterThan(4)
        expect(got.tokens).toEqual(want.tokens)
      }
    })

    test('deterministic: true is refused (the servers have no batch-invariant kernels)', async () => {
      const err = await rejection(split.createSession({ contextSize: 256, deterministic: true }).complete({ prompt: TEXT, maxTokens: 2 }))
      expect(err.code).toBe('ERR_INVALID_ARGUMENT')
    })

    test('a session group: the same greedy tokens as local-only', async () => {
      const prompts = [TEXT, 'USER: the quick brown fox jumps over the lazy dog\nASSISTANT:']
      const tokens = async (m: Model): Promise<number[][]> => {
        await using g = m.createSessionGroup({ sessions: 2, contextSize: 512 })
        const s = [g.createSession(), g.createSession()]
        return (await Promise.all(s.map((x, i) => x.complete({ prompt: prompts[i], ...run })))).map((r) => r.tokens)
      }
      expect(await tokens(split)).toEqual(await tokens(local))
    })
  })
})

describe('RPC: failures are ERR_RPC, never a dead process', () => {
  const dir = tempDir('llava-rpc-fail-')
  const tiny = (): { model: string; mmproj: string } => ensurePair('tiny')
  const fdsBefore = openFds()

  /** After each failure: a model loaded locally still works. */
  async function localStillWorks(): Promise<void> {
    await using m = await loadModel({ ...tiny(), ...KERNELS })
    await using s = m.createSession({ contextSize: 256 })
    expect((await s.complete({ prompt: TEXT, maxTokens: 4, ...greedy })).tokens.length).toBeGreaterThan(0)
  }

  function expectRpc(err: LlavaError, endpoint: string): void {
    expect(err.code).toBe('ERR_RPC')
    expect(err.message).toContain(endpoint)
  }

  test('connection refused at load', async () => {
    const address = `127.0.0.1:${await freePort()}`
    const t0 = Date.now()
    expectRpc(await rejection(loadModel({ ...tiny(), rpcServers: [address], gpuLayers: 2 })), address)
    expect(Date.now() - t0).toBeLessThan(10_000)
    expectRpc(await rejection(listDevices({ rpcServers: [address] })), address)
    await localStillWorks()
  })

  test('refused and failed connections close their sockets (20 of each leave no descriptor)', async () => {
    if (openFds() < 0) return
    const refused = `127.0.0.1:${await freePort()}`
    const fake = await fakeServer('version')
    try {
      await rejection(listDevices({ rpcServers: [refused] })) // first use: lazily opened descriptors
      await rejection(listDevices({ rpcServers: [fake.address] }))
      const before = openFds()
      for (let i = 0; i < 20; i++) {
        expect((await rejection(listDevices({ rpcServers: [refused] }))).code).toBe('ERR_RPC')
        expect((await rejection(listDevices({ rpcServers: [fake.address] }))).code).toBe('ERR_RPC')
      }
      expect(openFds() - before).toBeLessThanOrEqual(2)
    } finally {
      await fake.close()
    }
  })

  test.each<[FakeBehaviour, RegExp]>([
    ['version', /protocol 99\.0\.0/],
    ['garbage', /malformed reply/],
    ['truncated', /closed the connection/],
    ['bad-device-count', /malformed reply/],
  ])('a fake server on loopback: %s', async (behaviour, why) => {
    const fake = await fakeServer(behaviour)
    try {
      const err = await rejection(loadModel({ ...tiny(), rpcServers: [fake.address], gpuLayers: 2 }))
      expectRpc(err, fake.address)
      expect(err.message).toMatch(why)
    } finally {
      await fake.close()
    }
    await localStillWorks()
  })

  test('a server that accepts but never answers: ERR_RPC after rpcTimeouts.callMs', async () => {
    const fake = await fakeServer('silent')
    try {
      const t0 = Date.now()
      const err = await rejection(loadModel({ ...tiny(), rpcServers: [fake.address], gpuLayers: 2, rpcTimeouts: { callMs: 800 } }))
      expectRpc(err, fake.address)
      expect(err.message).toMatch(/timed out/)
      expect(Date.now() - t0).toBeLessThan(8000)
    } finally {
      await fake.close()
    }
  })

  /** A server behind a byte-counting proxy, and the tiny pair split over it (projector there too when asked). */
  async function splitOverProxy(opts: { projector?: boolean; callMs?: number } = {}) {
    const server = await startRpcServer({ port: await freePort(), threads: 2 })
    const proxy = await CountingProxy.start(Number(server.address.split(':')[1]))
    const address = `127.0.0.1:${proxy.port}`
    const model = await loadModel({
      ...tiny(), ...KERNELS, rpcServers: [address], gpuLayers: 3,
      ...(opts.projector ? { mmprojDevice: address } : {}),
      ...(opts.callMs ? { rpcTimeouts: { callMs: opts.callMs } } : {}),
    })
    const cleanup = async (): Promise<void> => {
      await model.dispose()
      await proxy.close()
      await server.close()
    }
    return { server, proxy, address, model, cleanup }
  }

  test('server killed between calls: the next call and every later one reject with ERR_RPC; dispose works', async () => {
    const { server, address, model, cleanup } = await splitOverProxy()
    try {
      await using s = model.createSession({ contextSize: 256 })
      await s.complete({ prompt: TEXT, maxTokens: 4, ...greedy })
      process.kill(server.pid, 'SIGKILL')
      await server.exited
      expectRpc(await rejection(s.complete({ prompt: TEXT, maxTokens: 4, ...greedy })), address)
      // marked unusable: a new session of the model is refused too, at once
      await using s2 = model.createSession({ contextSize: 256 })
      expectRpc(await rejection(s2.complete({ prompt: TEXT, maxTokens: 4, ...greedy })), address)
      expect((await rejection(model.encodeImage(bmpFile(dir, 'x.bmp').file))).code).toBe('ERR_RPC')
    } finally {
      await cleanup()
    }
    await localStillWorks()
  })

  test('server killed before save(): ERR_RPC, and no session file of zeros is written', async () => {
    const { server, address, model, cleanup } = await splitOverProxy()
    const file = path.join(dir, 'after-kill.session')
    try {
      await using s = model.createSession({ contextSize: 256 })
      await s.complete({ prompt: TEXT, maxTokens: 4, ...greedy })
      process.kill(server.pid, 'SIGKILL')
      await server.exited
      expectRpc(await rejection(s.save(file)), address)
      expect(fs.existsSync(file)).toBe(false)
    } finally {
      await cleanup()
    }
  })

  test('server killed mid-generation: no token computed from the failed step reaches the stream', async () => {
    // what the model says when nothing fails (the split computes what local computes: F32)
    const local = await loadModel({ ...tiny(), ...KERNELS })
    const want = await (async () => {
      await using s = local.createSession({ contextSize: 256 })
      return (await s.complete({ prompt: TEXT, maxTokens: 200, ...greedy })).tokens
    })()
    await local.dispose()
    const { server, proxy, address, model, cleanup } = await splitOverProxy()
    try {
      await using s = model.createSession({ contextSize: 256 })
      const streamed: number[] = []
      const err = await rejection(
        s.complete({
          prompt: TEXT,
          maxTokens: 200,
          ...greedy,
          onToken: (piece) => {
            streamed.push(...piece.tokens)
            // the server dies as the client asks for the logits (GET_TENSOR, 8) of the next step: the
            // step's graph was queued without error, its logits read back as zeros
            if (streamed.length === 3) proxy.tripOnCommand(8, () => process.kill(server.pid, 'SIGKILL'))
          },
        }),
      )
      expectRpc(err, address)
      expect(streamed.length).toBeGreaterThanOrEqual(3)
      expect(streamed.length).toBeLessThan(200)
      // every streamed token is the one the model would have given: none sampled from zeroed logits
      expect(streamed).toEqual(want.slice(0, streamed.length))
    } finally {
      await cleanup()
    }
    await localStillWorks()
  })

  test('server killed mid-encode (projector on the remote device)', async () => {
    const { server, proxy, address, model, cleanup } = await splitOverProxy({ projector: true })
    try {
      expect(model.info.vision!.device).toMatch(/^RPC/)
      proxy.trip(1, () => process.kill(server.pid, 'SIGKILL'))
      expectRpc(await rejection(model.encodeImage(bmpFile(dir, 'enc.bmp', 40, 40, 5).file)), address)
    } finally {
      await cleanup()
    }
    await localStillWorks()
  })

  test('server killed mid-load', async () => {
    const server = await startRpcServer({ port: await freePort(), threads: 2 })
    const proxy = await CountingProxy.start(Number(server.address.split(':')[1]))
    const address = `127.0.0.1:${proxy.port}`
    try {
      // past the handshake and the first allocations, inside the weights' upload
      proxy.trip(4096, () => process.kill(server.pid, 'SIGKILL'))
      expectRpc(await rejection(loadModel({ model: midModel(dir), ...KERNELS, rpcServers: [address], gpuLayers: 6 })), address)
    } finally {
      await proxy.close()
      await server.close()
    }
    await localStillWorks()
  })

  test('server frozen (SIGSTOP): ERR_RPC within the call timeout, not a hang', async () => {
    const { server, address, model, cleanup } = await splitOverProxy({ callMs: 1000 })
    try {
      await using s = model.createSession({ contextSize: 256 })
      await s.complete({ prompt: TEXT, maxTokens: 2, ...greedy })
      process.kill(server.pid, 'SIGSTOP')
      const t0 = Date.now()
      const err = await rejection(s.complete({ prompt: 'USER: and another one\nASSISTANT:', maxTokens: 4, ...greedy }))
      expectRpc(err, address)
      expect(err.message).toMatch(/timed out/)
      expect(Date.now() - t0).toBeLessThan(10_000)
    } finally {
      process.kill(server.pid, 'SIGCONT')
      await cleanup()
    }
    await localStillWorks()
  })

  test('server gone before dispose: dispose resolves; loading again once a server is back works', async () => {
    const { server, address, model, proxy } = await splitOverProxy()
    process.kill(server.pid, 'SIGKILL')
    await server.exited
    await model.dispose()
    await proxy.close()
    // the same endpoint again, a new server behind it: a fresh connection, not the failed one
    const again = await startRpcServer({ port: await freePort(), threads: 2 })
    const proxy2 = await CountingProxy.start(Number(again.address.split(':')[1]))
    try {
      await using m = await loadModel({ ...tiny(), ...KERNELS, rpcServers: [`127.0.0.1:${proxy2.port}`], gpuLayers: 3 })
      await using s = m.createSession({ contextSize: 256 })
      expect((await s.complete({ prompt: TEXT, maxTokens: 4, ...greedy })).tokens.length).toBeGreaterThan(0)
    } finally {
      await proxy2.close()
      await again.close()
    }
    expect(address).toMatch(/^127\.0\.0\.1:/)
  })

  test('no descriptors left behind by the failures above', () => {
    if (fdsBefore < 0) return
    // a few for servers' pipes that Node keeps until collected; a leak per failure would show dozens
    expect(openFds() - fdsBefore).toBeLessThan(12)
  })
})

describe('RPC: options and the server command', () => {
  test('bad options are refused before anything connects', async () => {
    const tiny = ensurePair('tiny')
    for (const rpcServers of [['localhost'], ['127.0.0.1:0'], ['127.0.0.1:70000'], [42], 'x:1', ['a:1', 'a:1']]) {
      expect((await rejection(loadModel({ ...tiny, rpcServers: rpcServers as string[] }))).code).toBe('ERR_INVALID_ARGUMENT')
    }
    expect((await rejection(loadModel({ ...tiny, tensorSplit: [0, 0] }))).code).toBe('ERR_INVALID_ARGUMENT')
    expect((await rejection(loadModel({ ...tiny, tensorSplit: [1, -1] }))).code).toBe('ERR_INVALID_ARGUMENT')
    expect((await rejection(loadModel({ ...tiny, tensorSplit: [1, 1] }))).code).toBe('ERR_INVALID_ARGUMENT') // a CPU build has no device to split over
    expect((await rejection(loadModel({ ...tiny, rpcTimeouts: { callMs: 0 } }))).code).toBe('ERR_INVALID_ARGUMENT')
    expect((await rejection(loadModel({ ...tiny, mmprojDevice: 'NOPE0' }))).code).toBe('ERR_INVALID_ARGUMENT')
  })

  test('startRpcServer: loopback unless allowRemote; a port in use is ERR_RPC', async () => {
    expect((await rejection(startRpcServer({ host: '0.0.0.0', port: await freePort() }))).code).toBe('ERR_INVALID_ARGUMENT')
    expect((await rejection(startRpcServer({ host: 'localhost' }))).code).toBe('ERR_INVALID_ARGUMENT')
    await using s = await startRpcServer({ port: await freePort(), threads: 1 })
    const port = Number(s.address.split(':')[1])
    expect((await rejection(startRpcServer({ port }))).code).toBe('ERR_RPC')
    await s.close()
    await s.close() // idempotent
    expect((await s.exited).signal).toBe('SIGTERM')
  })

  test('a server does not outlive the process that started it, even one killed with SIGKILL (Linux)', async () => {
    if (process.platform !== 'linux') return
    const port = await freePort()
    const host = spawn(process.execPath, ['-e', `require(${JSON.stringify(root)}).startRpcServer({ port: ${port}, threads: 1 }).then((s) => console.log(s.pid))`], { stdio: ['ignore', 'pipe', 'inherit'] })
    const serverPid = await new Promise<number>((resolve) => host.stdout.on('data', (d: Buffer) => resolve(Number(String(d).trim()))))
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    }
    expect(alive(serverPid)).toBe(true)
    host.kill('SIGKILL')
    for (let i = 0; i < 150 && alive(serverPid); i++) await new Promise((r) => setTimeout(r, 20))
    expect(alive(serverPid)).toBe(false)
  })

  test('a process started while a model is connected does not keep its connection: the server is free for the next client after dispose()', async () => {
    const tiny = ensurePair('tiny')
    await using server = await startRpcServer({ port: await freePort(), threads: 1 })
    const first = await loadModel({ ...tiny, ...KERNELS, rpcServers: [server.address], gpuLayers: 3 })
    const bystander = spawn('sleep', ['30'], { stdio: 'ignore' })
    try {
      await first.dispose()
      // ggml's server serves one connection at a time: a copy of the first one alive in `sleep` would hold it
      await using second = await loadModel({ ...tiny, ...KERNELS, rpcServers: [server.address], gpuLayers: 3, rpcTimeouts: { connectMs: 2000, callMs: 3000 } })
      await using s = second.createSession({ contextSize: 256 })
      expect((await s.complete({ prompt: TEXT, maxTokens: 2, ...greedy })).tokens.length).toBeGreaterThan(0)
    } finally {
      bystander.kill('SIGKILL')
    }
  })

  test('`rpc-server --help` carries the security warning; a public address without --allow-remote is a usage error', async () => {
    const cli = (args: string[]): Promise<{ code: number | null; out: string }> =>
      new Promise((resolve) => {
        const c = spawn(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'rpc-server', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
        let out = ''
        c.stdout.on('data', (d: Buffer) => (out += d.toString()))
        c.stderr.on('data', (d: Buffer) => (out += d.toString()))
        c.once('exit', (code) => resolve({ code, out }))
      })
    const help = await cli(['--help'])
    expect(help.code).toBe(0)
    expect(help.out).toMatch(/no authentication/)
    expect(help.out).toMatch(/--allow-remote/)
    const refused = await cli(['--host', '0.0.0.0', '--port', String(await freePort())])
    expect(refused.code).not.toBe(0)
    expect(refused.out).toMatch(/allowRemote|--allow-remote/)
  })
})

// Two servers as separate hosts: each in a network namespace of its own, reached over a veth
// pair on a private test address, so that nothing can lean on loopback. Needs CAP_NET_ADMIN
// (root); where namespaces cannot be created the block is skipped, and jest reports it so.
const NETNS_TAG = `lv${process.pid % 100000}`
function sh(cmd: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8' })
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` }
}
const netnsProbe = process.platform === 'linux' ? sh(['ip', 'netns', 'add', `${NETNS_TAG}probe`]) : { ok: false, out: 'not Linux' }
if (netnsProbe.ok) sh(['ip', 'netns', 'del', `${NETNS_TAG}probe`])
else console.warn(`rpc.test.ts: network namespaces not available (${netnsProbe.out.trim() || 'ip failed'}): the two-host block is skipped`)

;(netnsProbe.ok ? describe : describe.skip)('RPC: two servers as separate hosts (network namespaces)', () => {
  // a /30 per host in a /24 of its own per test process, so that leftovers of another run cannot take the route
  const net = `10.231.${process.pid % 250}`
  const hosts = [1, 2].map((i) => ({ ns: `${NETNS_TAG}n${i}`, hostIf: `${NETNS_TAG}h${i}`, peerIf: `${NETNS_TAG}p${i}`, ip: `${net}.${4 * i + 2}`, gw: `${net}.${4 * i + 1}` }))
  const servers: Array<{ kill(signal: NodeJS.Signals): void; exited: Promise<void>; address: string }> = []

  beforeAll(async () => {
    for (const h of hosts) {
      for (const cmd of [
        ['ip', 'netns', 'add', h.ns],
        ['ip', 'link', 'add', h.hostIf, 'type', 'veth', 'peer', 'name', h.peerIf],
        ['ip', 'link', 'set', h.peerIf, 'netns', h.ns],
        ['ip', 'addr', 'add', `${h.gw}/30`, 'dev', h.hostIf],
        ['ip', 'link', 'set', h.hostIf, 'up'],
        ['ip', '-n', h.ns, 'addr', 'add', `${h.ip}/30`, 'dev', h.peerIf],
        ['ip', '-n', h.ns, 'link', 'set', h.peerIf, 'up'],
        ['ip', '-n', h.ns, 'link', 'set', 'lo', 'up'],
      ]) {
        const r = sh(cmd)
        if (!r.ok) throw new Error(`${cmd.join(' ')}: ${r.out}`)
      }
      // the CLI, as an administrator starts it on another machine: a non-loopback address needs --allow-remote
      const child = spawn('ip', ['netns', 'exec', h.ns, process.execPath, path.join(root, 'dist', 'cli', 'main.js'), 'rpc-server', '--host', h.ip, '--port', '50052', '--threads', '2', '--allow-remote'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      let out = ''
      let err = ''
      child.stderr.on('data', (d: Buffer) => (err += d.toString()))
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('listening on')) resolve()
        })
        child.once('exit', (code) => reject(new Error(`rpc-server in ${h.ns} exited (${code}): ${out}${err}`)))
      })
      expect(err).toContain(`WARNING: listening on ${h.ip}`)
      // `ip netns exec` waits for its command in a process of its own: signals go to what runs in the namespace
      const kill = (signal: NodeJS.Signals): void => {
        for (const pid of sh(['ip', 'netns', 'pids', h.ns]).out.split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(pid), signal)
          } catch {
            // already gone
          }
        }
      }
      servers.push({ kill, exited, address: `${h.ip}:50052` })
    }
  })

  afterAll(async () => {
    for (const s of servers) {
      s.kill('SIGKILL')
      await s.exited
    }
    for (const h of hosts) {
      for (let i = 0; i < 100 && sh(['ip', 'netns', 'pids', h.ns]).out.trim() !== ''; i++) await new Promise((r) => setTimeout(r, 20))
    }
    for (const h of hosts) sh(['ip', 'netns', 'del', h.ns]) // takes its end of the veth pair along, and so the other
  })

  test('the tiny pair split local + host A + host B: the same greedy tokens as local-only, then a host gone is ERR_RPC', async () => {
    const files = ensurePair('tiny')
    const image = bmpFile(tempDir('llava-rpc-netns-'), 'netns.bmp', 40, 32, 9).file
    await using local = await loadModel({ ...files, ...KERNELS })
    await using split = await loadModel({ ...files, ...KERNELS, rpcServers: servers.map((s) => s.address), gpuLayers: 2, tensorSplit: [1, 1] })
    expect(split.info.placement.filter((p) => p.endpoint?.startsWith(`${net}.`)).length).toBe(2)
    for (const p of [{ prompt: TEXT }, { prompt: IMAGE, images: [image] }]) {
      await using s1 = local.createSession({ contextSize: 256 })
      await using s2 = split.createSession({ contextSize: 256 })
      expect((await s2.complete({ ...p, ...run })).tokens).toEqual((await s1.complete({ ...p, ...run })).tokens)
    }
    servers[1].kill('SIGKILL')
    await servers[1].exited
    // the CLI's server process goes a moment after the CLI: until nothing runs there (bounded)
    for (let i = 0; i < 100 && sh(['ip', 'netns', 'pids', hosts[1].ns]).out.trim() !== ''; i++) await new Promise((r) => setTimeout(r, 20))
    await using s = split.createSession({ contextSize: 256 })
    const err = await rejection(s.complete({ prompt: TEXT, maxTokens: 4, ...greedy }))
    expect(err.code).toBe('ERR_RPC')
    expect(err.message).toContain(servers[1].address)
  })
})
