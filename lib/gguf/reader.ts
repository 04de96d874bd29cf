// A GGUF (v2/v3) metadata and tensor-info reader that does not trust its input.
//
// Every length and count is checked against the bytes actually left in the file before anything
// is allocated, so a corrupt or hostile header cannot make it allocate gigabytes or read out of
// bounds; every failure is a GGUFError with a stable `code`. It reads only the header (through a
// small window on the file descriptor), never the tensor data, so it is cheap on multi-GB files.
// The checks mirror what ggml's gguf_init_from_file enforces, so a file it accepts is one
// llama.cpp's loader will at least parse; it adds a check that all tensor data lies inside the file.

import * as fs from 'node:fs'
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGML_TYPE_TRAITS,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_SCALAR_SIZE,
  GGUFValueType,
  alignUp,
} from './types'

export type GGUFErrorCode =
  | 'EIO' // the file could not be opened or read
  | 'ENOTGGUF' // wrong magic
  | 'EVERSION' // unsupported version (or a big-endian file)
  | 'ETRUNCATED' // the file ends inside the header, or a count/length exceeds what is left of it
  | 'EBADVALUE' // a metadata entry is malformed (unknown type, nested array, bool not 0/1, empty key)
  | 'EDUPLICATE' // duplicate metadata key or tensor name
  | 'EBADALIGN' // general.alignment is not a UINT32 power of two
  | 'EBADTENSOR' // a tensor info is malformed (name, dims, type, row size)
  | 'EOFFSET' // a tensor's data offset is not where ggml requires it to be
  | 'EBOUNDS' // a tensor's data extends past the end of the file
  | 'ELIMIT'; // a value exceeds what this reader can represent (e.g. > 2^53 elements)

export class GGUFError extends Error {
  constructor(
    readonly code: GGUFErrorCode,
    message: string,
    /** file offset at which the problem was detected, when meaningful */
    readonly offset?: number,
  ) {
    super(offset === undefined ? message : `${message} (at byte ${offset})`)
    this.name = 'GGUFError'
  }
}

export type GGUFArrayValue =
  | { itemType: GGUFValueType.UINT8; values: Uint8Array }
  | { itemType: GGUFValueType.INT8; values: Int8Array }
  | { itemType: GGUFValueType.UINT16; values: Uint16Array }
  | { itemType: GGUFValueType.INT16; values: Int16Array }
  | { itemType: GGUFValueType.UINT32; values: Uint32Array }
  | { itemType: GGUFValueType.INT32; values: Int32Array }
  | { itemType: GGUFValueType.FLOAT32; values: Float32Array }
  | { itemType: GGUFValueType.UINT64; values: BigUint64Array }
  | { itemType: GGUFValueType.INT64; values: BigInt64Array }
  | { itemType: GGUFValueType.FLOAT64; values: Float64Array }
  | { itemType: GGUFValueType.BOOL; values: boolean[] }
  | { itemType: GGUFValueType.STRING; values: string[] }

export type GGUFKV =
  | { type: GGUFValueType.UINT8 | GGUFValueType.INT8 | GGUFValueType.UINT16 | GGUFValueType.INT16; value: number }
  | { type: GGUFValueType.UINT32 | GGUFValueType.INT32 | GGUFValueType.FLOAT32 | GGUFValueType.FLOAT64; value: number }
  | { type: GGUFValueType.UINT64 | GGUFValueType.INT64; value: bigint }
  | { type: GGUFValueType.BOOL; value: boolean }
  | { type: GGUFValueType.STRING; value: string }
  | { type: GGUFValueType.ARRAY; value: GGUFArrayValue }

export interface GGUFTensorInfo {
  name: string
  /** ggml `ne` order, as stored (length = n_dims) */
  shape: number[]
  type: number
  typeName: string
  nElements: number
  /** bytes of data, unpadded */
  nbytes: number
  /** offset within the data section, as stored */
  offset: number
  /** offset from the start of the file */
  absoluteOffset: number
}

export interface GGUFFile {
  version: number
  alignment: number
  /** metadata in file order */
  kv: Map<string, GGUFKV>
  tensors: GGUFTensorInfo[]
  /** end of the tensor infos */
  headerSize: number
  /** start of the (aligned) data section */
  dataOffset: number
  /** end of the last tensor's data (of the header if there are no tensors) */
  dataEnd: number
  fileSize: number
}

interface Source {
  size: number
  /** exactly `len` bytes at `pos`; the caller has bounds-checked */
  read(pos: number, len: number): Uint8Array
}

const WINDOW = 1 << 16

function fdSource(fd: number, size: number): Source {
  let winPos = 0
  let win = new Uint8Array(0)
  return {
    size,
    read(pos, len) {
      if (pos >= winPos && pos + len <= winPos + win.length) return win.subarray(pos - winPos, pos - winPos + len)
      const n = Math.min(Math.max(len, WINDOW), size - pos)
      const buf = Buffer.allocUnsafe(n)
      let got = 0
      while (got < n) {
        const r = fs.readSync(fd, buf, got, n - got, pos + got)
        if (r === 0) throw new GGUFError('ETRUNCATED', 'file shrank while being read', pos + got)
        got += r
      }
      winPos = pos
      win = buf
      return buf.subarray(0, len)
    },
  }
}

const utf8 = new TextDecoder('utf-8')

class Cursor {
  pos = 0
  constructor(private readonly src: Source) {}

  get remaining(): number {
    return this.src.size - this.pos
  }

  take(n: number, what: string): DataView {
    if (n > this.remaining) {
      throw new GGUFError('ETRUNCATED', `file ends inside ${what}: need ${n} bytes, ${this.remaining} left`, this.pos)
    }
    const b = this.src.read(this.pos, n)
    this.pos += n
    return new DataView(b.buffer, b.byteOffset, b.byteLength)
  }

  u32(what: string): number { return this.take(4, what).getUint32(0, true); }
  i32(what: string): number { return this.take(4, what).getInt32(0, true); }
  u64(what: string): bigint { return this.take(8, what).getBigUint64(0, true); }
  i64(what: string): bigint { return this.take(8, what).getBigInt64(0, true); }

  /** a uint64 that must fit in a JS number */
  count(what: string): number {
    const at = this.pos
    const v = this.u64(what)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GGUFError('ELIMIT', `${what} ${v} is too large`, at)
    return Number(v)
  }

  str(what: string): string {
    const at = this.pos
    const n = this.count(`length of ${what}`)
    if (n > this.remaining) {
      throw new GGUFError('ETRUNCATED', `${what} of ${n} bytes exceeds the ${this.remaining} bytes left`, at)
    }
    const v = this.take(n, what)
    return utf8.decode(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
  }
}

function typeName(t: number): string {
  return GGUFValueType[t] ?? `type ${t}`
}

function readScalar(c: Cursor, type: GGUFValueType, what: string): number | bigint | boolean | string {
  const at = c.pos
  switch (type) {
    case GGUFValueType.UINT8: return c.take(1, what).getUint8(0)
    case GGUFValueType.INT8: return c.take(1, what).getInt8(0)
    case GGUFValueType.UINT16: return c.take(2, what).getUint16(0, true)
    case GGUFValueType.INT16: return c.take(2, what).getInt16(0, true)
    case GGUFValueType.UINT32: return c.u32(what)
    case GGUFValueType.INT32: return c.i32(what)
    case GGUFValueType.FLOAT32: return c.take(4, what).getFloat32(0, true)
    case GGUFValueType.FLOAT64: return c.take(8, what).getFloat64(0, true)
    case GGUFValueType.UINT64: return c.u64(what)
    case GGUFValueType.INT64: return c.i64(what)
    case GGUFValueType.BOOL: {
      const b = c.take(1, what).getUint8(0)
      if (b > 1) throw new GGUFError('EBADVALUE', `${what}: bool byte is ${b}, not 0 or 1`, at)
      return b === 1
    }
    case GGUFValueType.STRING: return c.str(what)
    default:
      throw new GGUFError('EBADVALUE', `${what} has invalid value type ${type}`, at)
  }
}

function readArray(c: Cursor, key: string): GGUFArrayValue {
  const at = c.pos
  const itemType = c.u32(`array type of '${key}'`) as GGUFValueType
  if (itemType === GGUFValueType.ARRAY) throw new GGUFError('EBADVALUE', `'${key}' is a nested array`, at)
  if (GGUF_SCALAR_SIZE[itemType] === undefined && itemType !== GGUFValueType.STRING) {
    throw new GGUFError('EBADVALUE', `'${key}' has invalid array item type ${itemType}`, at)
  }
  const n = c.count(`length of '${key}'`)
  // every item takes at least this many bytes, so an impossible count fails before allocating
  const minItem = itemType === GGUFValueType.STRING ? 8 : GGUF_SCALAR_SIZE[itemType]!
  if (n > c.remaining / minItem) {
    throw new GGUFError('ETRUNCATED', `'${key}' claims ${n} items, more than the file can hold`, at)
  }
  const what = `'${key}' items`
  if (itemType === GGUFValueType.STRING) {
    const values: string[] = new Array(n)
    for (let i = 0; i < n; i++) values[i] = c.str(`'${key}'[${i}]`)
    return { itemType, values }
  }
  if (itemType === GGUFValueType.BOOL) {
    const values: boolean[] = new Array(n)
    for (let i = 0; i < n; i++) values[i] = readScalar(c, itemType, `'${key}'[${i}]`) as boolean
    return { itemType, values }
  }
  // copy into a fresh, aligned buffer; typed arrays are host-endian, so decode through DataView
  const dv = c.take(n * minItem, what)
  switch (itemType) {
    case GGUFValueType.UINT8: return { itemType, values: Uint8Array.from({ length: n }, (_, i) => dv.getUint8(i)) }
    case GGUFValueType.INT8: return { itemType, values: Int8Array.from({ length: n }, (_, i) => dv.getInt8(i)) }
    case GGUFValueType.UINT16: return { itemType, values: Uint16Array.from({ length: n }, (_, i) => dv.getUint16(i * 2, true)) }
    case GGUFValueType.INT16: return { itemType, values: Int16Array.from({ length: n }, (_, i) => dv.getInt16(i * 2, true)) }
    case GGUFValueType.UINT32: return { itemType, values: Uint32Array.from({ length: n }, (_, i) => dv.getUint32(i * 4, true)) }
    case GGUFValueType.INT32: return { itemType, values: Int32Array.from({ length: n }, (_, i) => dv.getInt32(i * 4, true)) }
    case GGUFValueType.FLOAT32: return { itemType, values: Float32Array.from({ length: n }, (_, i) => dv.getFloat32(i * 4, true)) }
    case GGUFValueType.FLOAT64: return { itemType, values: Float64Array.from({ length: n }, (_, i) => dv.getFloat64(i * 8, true)) }
    case GGUFValueType.UINT64: return { itemType, values: BigUint64Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true)) }
    case GGUFValueType.INT64: return { itemType, values: BigInt64Array.from({ length: n }, (_, i) => dv.getBigInt64(i * 8, true)) }
    default:
      throw new GGUFError('EBADVALUE', `'${key}' has invalid array item type ${itemType}`, at)
  }
}

function parse(src: Source): GGUFFile {
  const c = new Cursor(src)
  if (c.remaining < 4 || c.u32('magic') !== GGUF_MAGIC) throw new GGUFError('ENOTGGUF', 'not a GGUF file (bad magic)', 0)
  const version = c.u32('version')
  if ((version & 0xffff) === 0 && version !== 0) {
    throw new GGUFError('EVERSION', `version ${version} looks byte-swapped: big-endian GGUF is not supported`, 4)
  }
  if (version !== 2 && version !== 3) throw new GGUFError('EVERSION', `unsupported GGUF version ${version}`, 4)

  let at = c.pos
  const nTensors = c.count('tensor count')
  const nKv = c.count('metadata count')
  // smallest possible entries: a KV is key length + type + 1 byte, a tensor info is 8+4+4+8
  if (nKv > c.remaining / 13) throw new GGUFError('ETRUNCATED', `${nKv} metadata entries cannot fit in the file`, at)
  if (nTensors > c.remaining / 24) throw new GGUFError('ETRUNCATED', `${nTensors} tensor infos cannot fit in the file`, at)

  const kv = new Map<string, GGUFKV>()
  for (let i = 0; i < nKv; i++) {
    at = c.pos
    const key = c.str(`key #${i}`)
    if (key.length === 0) throw new GGUFError('EBADVALUE', `metadata key #${i} is empty`, at)
    if (kv.has(key)) throw new GGUFError('EDUPLICATE', `duplicate metadata key '${key}'`, at)
    const tAt = c.pos
    const type = c.u32(`type of '${key}'`) as GGUFValueType
    if (type === GGUFValueType.ARRAY) {
      kv.set(key, { type, value: readArray(c, key) })
    } else if (GGUF_SCALAR_SIZE[type] !== undefined || type === GGUFValueType.STRING) {
      kv.set(key, { type, value: readScalar(c, type, `'${key}'`) } as GGUFKV)
    } else {
      throw new GGUFError('EBADVALUE', `'${key}' has invalid value type ${type}`, tAt)
    }
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT
  const a = kv.get('general.alignment')
  if (a) {
    if (a.type !== GGUFValueType.UINT32) {
      throw new GGUFError('EBADALIGN', `general.alignment must be UINT32, is ${typeName(a.type)}`)
    }
    if (a.value === 0 || (a.value & (a.value - 1)) !== 0) {
      throw new GGUFError('EBADALIGN', `general.alignment ${a.value} is not a power of two`)
    }
    alignment = a.value
  }

  const tensors: GGUFTensorInfo[] = []
  const names = new Set<string>()
  let expectedOffset = 0
  for (let i = 0; i < nTensors; i++) {
    at = c.pos
    const name = c.str(`name of tensor #${i}`)
    if (Buffer.byteLength(name, 'utf8') >= GGML_MAX_NAME) {
      throw new GGUFError('EBADTENSOR', `tensor #${i} name is ${Buffer.byteLength(name, 'utf8')} bytes, max ${GGML_MAX_NAME - 1}`, at)
    }
    if (names.has(name)) throw new GGUFError('EDUPLICATE', `duplicate tensor name '${name}'`, at)
    names.add(name)

    at = c.pos
    const nDims = c.u32(`dims of '${name}'`)
    if (nDims > GGML_MAX_DIMS) throw new GGUFError('EBADTENSOR', `tensor '${name}' has ${nDims} dims, max ${GGML_MAX_DIMS}`, at)
    const shape: number[] = []
    let elements = 1n
    for (let d = 0; d < nDims; d++) {
      at = c.pos
      const ne = c.i64(`shape of '${name}'`)
      if (ne < 0n) throw new GGUFError('EBADTENSOR', `tensor '${name}' dimension ${d} is negative (${ne})`, at)
      elements *= ne
      if (elements > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new GGUFError('ELIMIT', `tensor '${name}' has too many elements`, at)
      }
      shape.push(Number(ne))
    }
    at = c.pos
    const type = c.u32(`type of '${name}'`)
    const traits = GGML_TYPE_TRAITS.get(type)
    if (!traits) throw new GGUFError('EBADTENSOR', `tensor '${name}' has unknown ggml type ${type}`, at)
    const ne0 = shape.length > 0 ? shape[0] : 1
    if (ne0 % traits.blockSize !== 0) {
      throw new GGUFError('EBADTENSOR', `tensor '${name}' (${traits.name}) row of ${ne0} is not a multiple of ${traits.blockSize}`, at)
    }
    const nElements = Number(elements)
    const nbytes = (nElements / traits.blockSize) * traits.typeSize
    if (!Number.isSafeInteger(nbytes)) throw new GGUFError('ELIMIT', `tensor '${name}' is too large`, at)

    at = c.pos
    const off = c.u64(`offset of '${name}'`)
    // ggml requires tensors packed in order, each padded to the alignment
    if (off !== BigInt(expectedOffset)) {
      throw new GGUFError('EOFFSET', `tensor '${name}' has data offset ${off}, expected ${expectedOffset}`, at)
    }
    tensors.push({ name, shape, type, typeName: traits.name, nElements, nbytes, offset: expectedOffset, absoluteOffset: 0 })
    expectedOffset = alignUp(expectedOffset + nbytes, alignment)
    if (!Number.isSafeInteger(expectedOffset)) throw new GGUFError('ELIMIT', 'data section is too large', at)
  }

  const headerSize = c.pos
  const dataOffset = alignUp(headerSize, alignment)
  // a file without tensors legitimately ends right after its header, unpadded
  let dataEnd = tensors.length > 0 ? dataOffset : headerSize
  if (tensors.length > 0 && dataOffset > src.size) {
    throw new GGUFError('ETRUNCATED', `file ends before the data section at ${dataOffset}`, src.size)
  }
  for (const t of tensors) {
    t.absoluteOffset = dataOffset + t.offset
    const end = t.absoluteOffset + t.nbytes
    if (end > src.size) {
      throw new GGUFError('EBOUNDS', `data of tensor '${t.name}' (bytes ${t.absoluteOffset}..${end}) extends past the end of the file (${src.size})`)
    }
    dataEnd = Math.max(dataEnd, end)
  }
  return { version, alignment, kv, tensors, headerSize, dataOffset, dataEnd, fileSize: src.size }
}

/** Reads and validates the header of a GGUF file. Throws GGUFError. */
export function readGGUF(path: string): GGUFFile {
  let fd: number
  try {
    fd = fs.openSync(path, 'r')
  } catch (e) {
    throw new GGUFError('EIO', `cannot open ${path}: ${(e as Error).message}`)
  }
  try {
    const size = fs.fstatSync(fd).size
    return parse(fdSource(fd, size))
  } catch (e) {
    if (e instanceof GGUFError) throw e
    throw new GGUFError('EIO', `cannot read ${path}: ${(e as Error).message}`)
  } finally {
    fs.closeSync(fd)
  }
}

/** Same as readGGUF for a file already in memory (the buffer is the whole file). */
export function parseGGUF(bytes: Uint8Array): GGUFFile {
  return parse({ size: bytes.length, read: (pos, len) => bytes.subarray(pos, pos + len) })
}

/** Like readGGUF, but returns the error instead of throwing it. */
export function tryReadGGUF(path: string): { ok: true; file: GGUFFile } | { ok: false; error: GGUFError } {
  try {
    return { ok: true, file: readGGUF(path) }
  } catch (e) {
    if (e instanceof GGUFError) return { ok: false, error: e }
    throw e
  }
}

type KVValueOf<T extends GGUFValueType> = T extends GGUFValueType.UINT64 | GGUFValueType.INT64
  ? bigint
  : T extends GGUFValueType.BOOL
    ? boolean
    : T extends GGUFValueType.STRING
      ? string
      : T extends GGUFValueType.ARRAY
        ? GGUFArrayValue
        : number

/** The value of `key` if present with exactly the given type, else undefined. */
export function getKV<T extends GGUFValueType>(file: GGUFFile, key: string, type: T): KVValueOf<T> | undefined {
  const e = file.kv.get(key)
  return e && e.type === type ? (e.value as KVValueOf<T>) : undefined
}
