'use strict'
// A minimal Hugging Face hub for the download benchmark, in a process of its own so that the
// clients measured share nothing with it: refs, the recursive tree (with LFS sha256), `resolve`
// redirecting to a CDN path, and Range requests, streamed from the files on disk.
//   node bench/lib/hub-server.js <files.json> [MB/s]   → prints {"endpoint": "http://127.0.0.1:PORT/"}
// files.json: { "repo": "owner/name", "files": [{ "path", "file", "sha256" }] }
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const RATE = (Number(process.argv[3]) || 0) * 1e6 // bytes per second per transfer; 0: as fast as it goes
const commit = crypto.createHash('sha1').update(spec.repo).digest('hex')
const files = spec.files.map((f) => ({ ...f, size: fs.statSync(f.file).size }))
const bySha = new Map(files.map((f) => [f.sha256, f]))

function send(req, res, f) {
  const range = req.headers.range ? /^bytes=(\d+)-$/.exec(req.headers.range) : null
  const start = range ? Number(range[1]) : 0
  const headers = { 'accept-ranges': 'bytes', etag: `"${f.sha256}"`, 'content-type': 'application/octet-stream', 'content-length': String(f.size - start) }
  if (range) headers['content-range'] = `bytes ${start}-${f.size - 1}/${f.size}`
  res.writeHead(range ? 206 : 200, headers)
  if (req.method === 'HEAD') return res.end()
  const stream = fs.createReadStream(f.file, { start, highWaterMark: 1 << 20 })
  if (!RATE) return stream.pipe(res)
  // a link of RATE bytes per second: each chunk waits until the bytes sent so far are due
  const t0 = Date.now()
  let sent = 0
  stream.on('data', (chunk) => {
    stream.pause()
    res.write(chunk)
    sent += chunk.length
    setTimeout(() => stream.resume(), Math.max(0, (sent / RATE) * 1000 - (Date.now() - t0)))
  })
  stream.on('end', () => res.end())
  res.on('close', () => stream.destroy())
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  const json = (v) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(v))
  }
  if (url.pathname === `/api/models/${spec.repo}/refs`) return json({ branches: [{ name: 'main', ref: 'refs/heads/main', targetCommit: commit }], tags: [], converts: [] })
  if (url.pathname === `/api/models/${spec.repo}/tree/${commit}`) {
    return json(files.map((f) => ({ type: 'file', path: f.path, size: f.size, oid: f.sha256.slice(0, 40), lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } })))
  }
  const m = new RegExp(`^/${spec.repo}/resolve/${commit}/(.+)$`).exec(url.pathname)
  const f = m && files.find((x) => x.path === decodeURIComponent(m[1]))
  if (f) {
    res.writeHead(302, { location: `/cdn/${f.sha256}`, 'x-linked-size': String(f.size), 'x-linked-etag': `"${f.sha256}"` })
    return res.end()
  }
  const c = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname)
  if (c && bySha.has(c[1])) return send(req, res, bySha.get(c[1]))
  res.writeHead(404, { 'x-error-code': 'EntryNotFound' })
  res.end('{"error":"not found"}')
})
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ endpoint: `http://127.0.0.1:${server.address().port}/` })}\n`))
// ends with its parent
setInterval(() => {
  try {
    process.kill(process.ppid, 0)
  } catch {
    process.exit(0)
  }
}, 1000).unref()
