// A Hugging Face hub on 127.0.0.1 for the model-fetch tests: the API calls llama.cpp and
// llava-native make (refs, recursive tree), `resolve` URLs that redirect large (LFS) files to a
// "CDN" on another origin, Range requests, the hub's error headers, and injected faults.
import { createHash } from 'node:crypto'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface MockFile {
  path: string
  data: Buffer
  /** Stored in LFS (served through the CDN, listed with an lfs.oid sha256). Default: *.gguf. */
  lfs?: boolean
}

export interface MockRepo {
  id: string
  files: MockFile[]
  /** Needs `Authorization: Bearer <token>`; without it the hub answers 401 GatedRepo. */
  gatedToken?: string
  commit?: string
}

export interface Faults {
  /** Per file path: each request, in turn, is cut after this many bytes of the file. */
  dropAt: Map<string, number[]>
  /** Per file path: one byte of the served content is flipped. */
  corrupt: Set<string>
  /** Per file path: the CDN sends this many extra bytes (Content-Length included). */
  extraBytes: Map<string, number>
  /** Per file path: the CDN stops sending at this byte of the file (at once when resumed beyond it) and holds the connection. */
  stallAt: Map<string, number>
  /** Per URL path prefix: answer with this status. */
  status: Map<string, number>
  /** Per file path: the resolve URL redirects here instead. */
  redirect: Map<string, string>
  /** Throttle CDN bodies to this many bytes per 10 ms (0: unthrottled). */
  bytesPer10ms: number
}

export interface LoggedRequest {
  method: string
  url: string
  host: string
  range?: string
  ifRange?: string
  authorization?: string
}

function gitOid(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex')
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

function commitOf(id: string): string {
  return createHash('sha1').update(`commit ${id}`).digest('hex')
}

export class MockHub {
  readonly repos = new Map<string, MockRepo>()
  readonly requests: LoggedRequest[] = []
  readonly faults: Faults = {
    dropAt: new Map(),
    corrupt: new Set(),
    extraBytes: new Map(),
    stallAt: new Map(),
    status: new Map(),
    redirect: new Map(),
    bytesPer10ms: 0,
  }
  private hub!: http.Server
  private cdn!: http.Server
  private readonly blobs = new Map<string, { repo: MockRepo; file: MockFile }>()
  private readonly sockets = new Set<import('node:net').Socket>()

  /** Files served at plain URLs of the CDN origin (`${cdnUrl}files/<name>`), for URL downloads. */
  readonly plain = new Map<string, MockFile>()

  /** The endpoint (MODEL_ENDPOINT), ending with '/'. */
  url = ''
  cdnUrl = ''

  /** Serves `data` at `${cdnUrl}files/<name>`. */
  addPlain(name: string, data: Buffer): this {
    this.plain.set(`/files/${name}`, { path: name, data })
    return this
  }

  add(repo: MockRepo): this {
    repo.commit ??= commitOf(repo.id)
    this.repos.set(repo.id, repo)
    for (const f of repo.files) if (this.isLfs(f)) this.blobs.set(sha256(f.data), { repo, file: f })
    return this
  }

  private isLfs(f: MockFile): boolean {
    return f.lfs ?? f.path.endsWith('.gguf')
  }

  resetLog(): void {
    this.requests.length = 0
  }

  resetFaults(): void {
    this.faults.dropAt.clear()
    this.faults.corrupt.clear()
    this.faults.extraBytes.clear()
    this.faults.stallAt.clear()
    this.faults.status.clear()
    this.faults.redirect.clear()
    this.faults.bytesPer10ms = 0
  }

  async start(): Promise<this> {
    const listen = (server: http.Server): Promise<string> =>
      new Promise((resolve) => {
        server.on('connection', (s) => {
          this.sockets.add(s)
          s.on('close', () => this.sockets.delete(s))
        })
        server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`))
      })
    this.hub = http.createServer((req, res) => this.onHub(req, res))
    this.cdn = http.createServer((req, res) => this.onCdn(req, res))
    this.url = await listen(this.hub)
    this.cdnUrl = await listen(this.cdn)
    return this
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await Promise.all([new Promise((r) => this.hub.close(r)), new Promise((r) => this.cdn.close(r))])
  }

  private log(req: http.IncomingMessage, host: string): void {
    this.requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      host,
      range: req.headers.range,
      ifRange: req.headers['if-range'] as string | undefined,
      authorization: req.headers.authorization,
    })
  }

  private error(res: http.ServerResponse, status: number, code: string, message: string): void {
    res.writeHead(status, { 'content-type': 'application/json', 'x-error-code': code, 'x-error-message': message })
    res.end(JSON.stringify({ error: message }))
  }

  private authorized(repo: MockRepo, req: http.IncomingMessage): boolean {
    return !repo.gatedToken || req.headers.authorization === `Bearer ${repo.gatedToken}`
  }

  private onHub(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.log(req, 'hub')
    const url = new URL(req.url ?? '/', 'http://x')
    for (const [prefix, status] of this.faults.status) {
      if (url.pathname.startsWith(prefix)) return this.error(res, status, 'Injected', `injected HTTP ${status}`)
    }
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/(refs|tree\/([0-9a-f]{40}|main))$/.exec(url.pathname)
    if (m) {
      const repo = this.repos.get(m[1])
      // The hub does not tell anonymous callers whether a private repository exists.
      if (!repo) return this.error(res, 401, 'RepositoryNotFound', 'Repository not found')
      if (!this.authorized(repo, req)) return this.error(res, 401, 'GatedRepo', 'Access to this model is restricted')
      if (m[2] === 'refs') {
        res.writeHead(200, { 'content-type': 'application/json' })
        return void res.end(JSON.stringify({ branches: [{ name: 'main', ref: 'refs/heads/main', targetCommit: repo.commit }], converts: [], tags: [] }))
      }
      const dirs = new Set<string>()
      for (const f of repo.files) {
        const parts = f.path.split('/')
        for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'))
      }
      const entries: unknown[] = [...dirs].map((d) => ({ type: 'directory', oid: gitOid(Buffer.from(d)), size: 0, path: d }))
      for (const f of repo.files) {
        const e: Record<string, unknown> = { type: 'file', oid: gitOid(f.data), size: f.data.length, path: f.path }
        if (this.isLfs(f)) e.lfs = { oid: sha256(f.data), size: f.data.length, pointerSize: 134 }
        entries.push(e)
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify(entries))
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname)
    if (m) {
      const repo = this.repos.get(m[1])
      if (!repo) return this.error(res, 401, 'RepositoryNotFound', 'Repository not found')
      if (!this.authorized(repo, req)) return this.error(res, 401, 'GatedRepo', 'Access to this model is restricted')
      if (m[2] !== repo.commit && m[2] !== 'main') return this.error(res, 404, 'RevisionNotFound', 'Revision not found')
      const filePath = decodeURIComponent(m[3])
      const file = repo.files.find((f) => f.path === filePath)
      if (!file) return this.error(res, 404, 'EntryNotFound', 'Entry not found')
      const redirect = this.faults.redirect.get(filePath)
      if (redirect) {
        res.writeHead(302, { location: redirect })
        return void res.end()
      }
      if (this.isLfs(file)) {
        const sha = sha256(file.data)
        res.writeHead(302, {
          location: `${this.cdnUrl}cdn/${sha}?sig=test`,
          'x-repo-commit': repo.commit!,
          'x-linked-etag': `"${sha}"`,
          'x-linked-size': String(file.data.length),
          etag: `"${gitOid(file.data)}"`,
        })
        return void res.end()
      }
      return this.send(req, res, file, filePath)
    }
    this.error(res, 404, 'NotFound', 'no such route')
  }

  private onCdn(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.log(req, 'cdn')
    const plain = this.plain.get(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname))
    if (plain) return this.send(req, res, plain, plain.path)
    const m = /^\/cdn\/([0-9a-f]{64})/.exec(req.url ?? '')
    const blob = m ? this.blobs.get(m[1]) : undefined
    if (!blob) {
      res.writeHead(404)
      return void res.end()
    }
    this.send(req, res, blob.file, blob.file.path)
  }

  private send(req: http.IncomingMessage, res: http.ServerResponse, file: MockFile, filePath: string): void {
    let data = file.data
    if (this.faults.corrupt.has(filePath)) {
      data = Buffer.from(data)
      data[data.length >> 1] ^= 0xff
    }
    const extra = this.faults.extraBytes.get(filePath) ?? 0
    if (extra) data = Buffer.concat([data, Buffer.alloc(extra, 7)])
    let start = 0
    const range = req.headers.range ? /^bytes=(\d+)-$/.exec(req.headers.range) : null
    const headers: Record<string, string> = { 'accept-ranges': 'bytes', etag: `"${sha256(file.data)}"`, 'content-type': 'application/octet-stream' }
    if (range) {
      start = Number(range[1])
      if (start >= data.length) {
        res.writeHead(416, { 'content-range': `bytes */${data.length}` })
        return void res.end()
      }
      res.writeHead(206, { ...headers, 'content-length': String(data.length - start), 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` })
    } else {
      res.writeHead(200, { ...headers, 'content-length': String(data.length) })
    }
    if (req.method === 'HEAD') return void res.end()
    const drops = this.faults.dropAt.get(filePath)
    const dropAt = drops && drops.length ? drops.shift()! : undefined
    const stallAt = this.faults.stallAt.get(filePath)
    let end = data.length
    if (dropAt !== undefined && dropAt > start) end = Math.min(end, dropAt)
    if (stallAt !== undefined) end = Math.min(end, Math.max(start, stallAt))
    const finish = (): void => {
      if (end === data.length) return void res.end()
      if (stallAt !== undefined && end === stallAt && dropAt === undefined) return // hold the connection, send nothing more
      res.socket?.destroy()
    }
    const step = this.faults.bytesPer10ms
    if (!step) {
      res.write(data.subarray(start, end), finish)
      return
    }
    let pos = start
    const tick = (): void => {
      if (res.destroyed) return
      const next = Math.min(end, pos + step)
      res.write(data.subarray(pos, next))
      pos = next
      if (pos >= end) return finish()
      setTimeout(tick, 10)
    }
    tick()
  }
}
