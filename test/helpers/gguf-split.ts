// Splits a GGUF file into `-0000i-of-0000N.gguf` parts the way llama.cpp's gguf-split lays them out:
// the first part keeps every metadata key, each part carries split.no / split.count /
// split.tensors.count and a share of the tensors, whose bytes are copied as they are.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { readGGUF } from '../../lib/gguf'

const ALIGN = 32
const UINT16 = 2
const INT32 = 5

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8')
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(b.length))
  return Buffer.concat([len, b])
}

function kv(key: string, type: number, value: number): Buffer {
  const t = Buffer.alloc(4)
  t.writeUInt32LE(type)
  const v = Buffer.alloc(type === UINT16 ? 2 : 4)
  if (type === UINT16) v.writeUInt16LE(value)
  else v.writeInt32LE(value)
  return Buffer.concat([str(key), t, v])
}

const pad = (n: number): number => (ALIGN - (n % ALIGN)) % ALIGN

/**
 * Writes `parts` files next to each other in `dir` named `<stem>-0000i-of-0000N.gguf`; returns their
 * paths. `badIndexType` stores the later parts' split.no as INT32 (llama.cpp reads it as UINT16).
 */
export function splitGguf(src: string, dir: string, stem: string, parts: number, badIndexType = false): string[] {
  const bytes = fs.readFileSync(src)
  const g = readGGUF(src)
  if (g.alignment !== ALIGN) throw new Error('splitGguf: only the default alignment is handled')
  let infoBytes = 0
  for (const t of g.tensors) infoBytes += 8 + Buffer.byteLength(t.name) + 4 + 8 * t.shape.length + 4 + 8
  const kvBytes = bytes.subarray(24, g.headerSize - infoBytes)
  const nKv = Number(bytes.readBigUInt64LE(16))
  const per = Math.ceil(g.tensors.length / parts)
  const out: string[] = []
  for (let i = 0; i < parts; i++) {
    const tensors = g.tensors.slice(i * per, (i + 1) * per)
    const splitKvs = Buffer.concat([
      kv('split.no', badIndexType && i > 0 ? INT32 : UINT16, i),
      kv('split.count', UINT16, parts),
      kv('split.tensors.count', INT32, g.tensors.length),
    ])
    const head = Buffer.alloc(24)
    head.writeUInt32LE(0x46554747, 0)
    head.writeUInt32LE(3, 4)
    head.writeBigUInt64LE(BigInt(tensors.length), 8)
    head.writeBigUInt64LE(BigInt((i === 0 ? nKv : 0) + 3), 16)
    const infos: Buffer[] = []
    const datas: Buffer[] = []
    let offset = 0
    for (const t of tensors) {
      const info = Buffer.alloc(4 + 8 * t.shape.length + 4 + 8)
      info.writeUInt32LE(t.shape.length, 0)
      t.shape.forEach((d, j) => info.writeBigUInt64LE(BigInt(d), 4 + 8 * j))
      info.writeUInt32LE(t.type, 4 + 8 * t.shape.length)
      info.writeBigUInt64LE(BigInt(offset), 8 + 8 * t.shape.length)
      infos.push(str(t.name), info)
      const data = bytes.subarray(t.absoluteOffset, t.absoluteOffset + t.nbytes)
      datas.push(data, Buffer.alloc(pad(data.length)))
      offset += data.length + pad(data.length)
    }
    const header = Buffer.concat([head, i === 0 ? kvBytes : Buffer.alloc(0), splitKvs, ...infos])
    const file = path.join(dir, `${stem}-${String(i + 1).padStart(5, '0')}-of-${String(parts).padStart(5, '0')}.gguf`)
    fs.writeFileSync(file, Buffer.concat([header, Buffer.alloc(pad(header.length)), ...datas]))
    out.push(file)
  }
  return out
}
