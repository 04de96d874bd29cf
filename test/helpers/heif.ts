// HEIF test files: encoded by libheif's own heif-enc (Debian's libheif-examples, x265 inside), and
// given rotation/mirroring properties afterwards, since heif-enc 1.15 writes none: `irot`
// (anticlockwise quarter turns) and `imir` (axis 0: top and bottom exchanged; axis 1: left and
// right) appended to `ipco`, associated with the primary item in `ipma` in the order
// given (ISO/IEC 23008-12 applies transformative properties in that order), the boxes around them
// resized and the `iloc` offsets into `mdat` moved by the bytes added.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'

export const heifEncAvailable = (): boolean => spawnSync('heif-enc', ['--help']).status !== null

/** Encodes a PNG or JPEG file (and `more`, as further top-level images) with heif-enc (HEVC): lossless when asked, else at `quality`. */
export function heifEnc(input: string, out: string, options: { lossless?: boolean; quality?: number; bitDepth?: number; fast?: boolean; more?: string[] } = {}): Buffer {
  const args = options.lossless ? ['-L', '-p', 'chroma=444', '--matrix_coefficients=0'] : ['-q', String(options.quality ?? 95)]
  if (options.bitDepth) args.push('-b', String(options.bitDepth))
  if (options.fast) args.push('-p', 'preset=ultrafast')
  const r = spawnSync('heif-enc', [...args, input, ...(options.more ?? []), '-o', out], { encoding: 'utf8', timeout: 120_000 })
  if (r.status !== 0) throw new Error(`heif-enc failed: ${r.stderr || r.error}`)
  return fs.readFileSync(out)
}

/**
 * The file decoded by Debian's native libheif (heif-convert, transformations applied) as PNG
 * files, one per top-level image in file order: an independent reference for what the
 * WebAssembly build gives.
 */
export function heifConvert(file: string): string[] {
  const base = `${file}.reference`
  const r = spawnSync('heif-convert', [file, `${base}.png`], { encoding: 'utf8', timeout: 120_000 })
  if (r.status !== 0) throw new Error(`heif-convert failed: ${r.stderr || r.error}`)
  if (fs.existsSync(`${base}.png`)) return [`${base}.png`]
  const pngs: string[] = []
  for (let i = 1; fs.existsSync(`${base}-${i}.png`); i++) pngs.push(`${base}-${i}.png`)
  return pngs
}

interface Box {
  type: string
  start: number
  header: number
  end: number
}

function boxes(b: Buffer, start: number, end: number): Box[] {
  const out: Box[] = []
  for (let at = start; at + 8 <= end; ) {
    let size = b.readUInt32BE(at)
    let header = 8
    if (size === 1) {
      size = Number(b.readBigUInt64BE(at + 8))
      header = 16
    } else if (size === 0) size = end - at
    out.push({ type: b.toString('latin1', at + 4, at + 8), start: at, header, end: at + size })
    at += size
  }
  return out
}

const find = (list: Box[], type: string): Box => {
  const box = list.find((x) => x.type === type)
  if (!box) throw new Error(`no ${type} box`)
  return box
}

export type HeifTurn = { irot: 0 | 1 | 2 | 3 } | { imir: 0 | 1 }

/** The file with `turns` added to its primary image, applied in the order given. */
export function turnHeif(src: Buffer, turns: HeifTurn[]): Buffer {
  const b = Buffer.from(src)
  const meta = find(boxes(b, 0, b.length), 'meta')
  const inMeta = boxes(b, meta.start + meta.header + 4, meta.end)
  const pitm = find(inMeta, 'pitm')
  const primary = b[pitm.start + pitm.header] === 0 ? b.readUInt16BE(pitm.start + pitm.header + 4) : b.readUInt32BE(pitm.start + pitm.header + 4)
  const iprp = find(inMeta, 'iprp')
  const inIprp = boxes(b, iprp.start + iprp.header, iprp.end)
  const ipco = find(inIprp, 'ipco')
  const ipma = find(inIprp, 'ipma')
  const iloc = find(inMeta, 'iloc')
  if (ipco.header !== 8 || ipma.header !== 8 || iprp.header !== 8 || meta.header !== 8) throw new Error('64-bit box sizes are not handled')
  if (ipco.end > ipma.start) throw new Error('ipma before ipco is not handled')
  const properties = boxes(b, ipco.start + 8, ipco.end).length
  const added = Buffer.concat(turns.map((t) => Buffer.concat([Buffer.from([0, 0, 0, 9]), Buffer.from('irot' in t ? 'irot' : 'imir', 'latin1'), Buffer.from(['irot' in t ? t.irot : t.imir])])))

  // ipma: the primary item's association list grows by one entry per turn (essential)
  const version = b[ipma.start + 8]
  const wide = (b.readUInt32BE(ipma.start + 8) & 1) === 1
  let at = ipma.start + 12
  const entries = b.readUInt32BE(at)
  at += 4
  let associate: { at: number; count: number } | undefined
  for (let i = 0; i < entries; i++) {
    const item = version < 1 ? b.readUInt16BE(at) : b.readUInt32BE(at)
    at += version < 1 ? 2 : 4
    const count = b[at]
    if (item === primary) associate = { at, count }
    at += 1 + count * (wide ? 2 : 1)
  }
  if (!associate) throw new Error('the primary item has no properties')
  const links = Buffer.concat(
    turns.map((_, i) => {
      const index = properties + 1 + i
      return wide ? Buffer.from([0x80 | (index >> 8), index & 0xff]) : Buffer.from([0x80 | index])
    }),
  )
  const growth = added.length + links.length
  const linksAt = associate.at + 1 + associate.count * (wide ? 2 : 1)

  // iloc: extents stored in the file (construction method 0) past the meta box move by `growth`
  const ilocVersion = b[iloc.start + 8]
  at = iloc.start + 12
  const offsetSize = b[at] >> 4
  const lengthSize = b[at] & 15
  const baseSize = b[at + 1] >> 4
  const indexSize = ilocVersion >= 1 ? b[at + 1] & 15 : 0
  at += 2
  const items = ilocVersion < 2 ? b.readUInt16BE(at) : b.readUInt32BE(at)
  at += ilocVersion < 2 ? 2 : 4
  const read = (p: number, n: number): number => (n === 0 ? 0 : n === 4 ? b.readUInt32BE(p) : Number(b.readBigUInt64BE(p)))
  const write = (p: number, n: number, v: number): void => void (n === 4 ? b.writeUInt32BE(v, p) : b.writeBigUInt64BE(BigInt(v), p))
  for (let i = 0; i < items; i++) {
    at += ilocVersion < 2 ? 2 : 4
    const method = ilocVersion >= 1 ? b.readUInt16BE(at) & 15 : 0
    at += (ilocVersion >= 1 ? 2 : 0) + 2
    const base = read(at, baseSize)
    if (method === 0 && base >= meta.end) write(at, baseSize, base + growth)
    at += baseSize
    const extents = b.readUInt16BE(at)
    at += 2
    for (let e = 0; e < extents; e++) {
      at += indexSize
      if (method === 0 && base < meta.end && base + read(at, offsetSize) >= meta.end) write(at, offsetSize, read(at, offsetSize) + growth)
      at += offsetSize + lengthSize
    }
  }

  b[associate.at] = associate.count + turns.length
  for (const box of [ipco, ipma, iprp, meta]) b.writeUInt32BE(box.end - box.start + (box === ipco ? added.length : box === ipma ? links.length : growth), box.start)
  // the ipco end comes before ipma's association lists, so splice from the back
  return Buffer.concat([b.subarray(0, ipco.end), added, b.subarray(ipco.end, linksAt), links, b.subarray(linksAt)])
}

/** A picture written as a PNG file for heif-enc to read. */
export function pngFile(dir: string, name: string, png: Buffer): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, png)
  return file
}

const u16 = (v: number): Buffer => Buffer.from([v >> 8, v & 255])
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(v >>> 0)
  return b
}
const box = (type: string, ...parts: Buffer[]): Buffer => Buffer.concat([u32(8 + parts.reduce((n, p) => n + p.length, 0)), Buffer.from(type, 'latin1'), ...parts])
const fullBox = (type: string, version: number, ...parts: Buffer[]): Buffer => box(type, Buffer.from([version, 0, 0, 0]), ...parts)

/**
 * A HEIF container built by hand, for hostile cases that need no encoder: one primary item of
 * `itemType` (hvc1, or a grid whose tiles are `gridTiles` item ids), its `ispe` size, and `data`
 * located by `iloc` in `mdat` (length `ilocLength` when given, to point past the end).
 */
export function heifContainer(o: { width: number; height: number; data: Buffer; itemType?: 'hvc1' | 'grid'; gridTiles?: number[]; ilocLength?: number }): Buffer {
  const itemType = o.itemType ?? 'hvc1'
  const hvcC = box('hvcC', Buffer.from([1, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x5a, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f, 0]))
  const ispe = fullBox('ispe', 0, u32(o.width), u32(o.height))
  const iref = o.gridTiles ? [fullBox('iref', 0, box('dimg', u16(1), u16(o.gridTiles.length), ...o.gridTiles.map(u16)))] : []
  const meta = (mdatAt: number): Buffer =>
    fullBox(
      'meta',
      0,
      fullBox('hdlr', 0, u32(0), Buffer.from('pict', 'latin1'), Buffer.alloc(12), Buffer.from([0])),
      fullBox('pitm', 0, u16(1)),
      fullBox('iinf', 0, u16(1), fullBox('infe', 2, u16(1), u16(0), Buffer.from(itemType, 'latin1'), Buffer.from([0]))),
      fullBox('iloc', 0, Buffer.from([0x44, 0x00]), u16(1), u16(1), u16(0), u16(1), u32(mdatAt), u32(o.ilocLength ?? o.data.length)),
      box('iprp', box('ipco', hvcC, ispe), fullBox('ipma', 0, u32(1), u16(1), Buffer.from([2, 0x81, 0x02]))),
      ...iref,
    )
  const ftyp = box('ftyp', Buffer.from('heic', 'latin1'), u32(0), Buffer.from('mif1heic', 'latin1'))
  const mdatAt = ftyp.length + meta(0).length + 8
  return Buffer.concat([ftyp, meta(mdatAt), box('mdat', o.data)])
}
