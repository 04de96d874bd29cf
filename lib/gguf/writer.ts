// A streaming GGUF v3 writer.
//
// Metadata and tensor infos are small and are serialised in memory; tensor data is not: each
// tensor's values are produced by a callback while the file is written, a chunk of whole rows at
// a time, encoded to the tensor's storage type and written with fs.writeSync. Peak memory is one
// chunk (CHUNK_ELEMENTS floats plus its encoding) whatever the file size, which is what lets the
// >1 GB benchmark fixture be generated on a small CI machine.
//
// Shapes are given in ggml `ne` order: ne[0] is the contiguous dimension (the row length),
// i.e. the reverse of the numpy/PyTorch shape. This is the order llama.cpp's create_tensor calls
// and the GGUF tensor infos use, so shapes can be copied from llama.cpp source as they are.
// Values are produced in flat memory order: element (i0, i1, i2, i3) is at
// i0 + ne0 * (i1 + ne1 * (i2 + ne2 * i3)).

import * as fs from 'node:fs'
import * as os from 'node:os'
import { encodeF16, encodeQ4_0, encodeQ8_0 } from './quants'
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGML_TYPE_TRAITS,
  GGMLType,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GGUFValueType,
  alignUp,
  ggmlTypeName,
  nElements,
  tensorNBytes,
} from './types'

/** Storage types this writer can encode. */
export type WritableTensorType = GGMLType.F32 | GGMLType.F16 | GGMLType.Q4_0 | GGMLType.Q8_0

const WRITABLE = new Set<number>([GGMLType.F32, GGMLType.F16, GGMLType.Q4_0, GGMLType.Q8_0])

export type GGUFScalar = number | bigint | boolean | string

export type GGUFMetadataValue =
  | { type: GGUFValueType.UINT8 | GGUFValueType.INT8 | GGUFValueType.UINT16 | GGUFValueType.INT16; value: number }
  | { type: GGUFValueType.UINT32 | GGUFValueType.INT32; value: number }
  | { type: GGUFValueType.FLOAT32 | GGUFValueType.FLOAT64; value: number }
  | { type: GGUFValueType.UINT64 | GGUFValueType.INT64; value: number | bigint }
  | { type: GGUFValueType.BOOL; value: boolean }
  | { type: GGUFValueType.STRING; value: string }
  | {
      type: GGUFValueType.ARRAY
      itemType: Exclude<GGUFValueType, GGUFValueType.ARRAY>
      value: ArrayLike<GGUFScalar>
    }

export interface TensorSpec {
  name: string
  /** ggml `ne` order (row length first), 1 to 4 dimensions. */
  shape: readonly number[]
  type: WritableTensorType
  /**
   * Writes elements [start, start + out.length) of the tensor, in flat memory order, into `out`.
   * Called at write time, in increasing `start` order, always with whole rows. `out` is reused
   * between calls and arrives with stale contents.
   */
  fill: (out: Float32Array, start: number) => void
}

export interface WriteResult {
  path: string
  bytes: number
  tensors: number
}

// 1 Mi floats = 4 MiB per chunk: large enough that per-call overhead vanishes, small enough for CI.
const CHUNK_ELEMENTS = 1 << 20

class ByteSink {
  private buf = Buffer.alloc(1 << 16)
  length = 0

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.length + n) size *= 2
    const next = Buffer.alloc(size)
    this.buf.copy(next, 0, 0, this.length)
    this.buf = next
  }

  u8(v: number): void { this.reserve(1); this.buf.writeUInt8(v, this.length); this.length += 1 }
  i8(v: number): void { this.reserve(1); this.buf.writeInt8(v, this.length); this.length += 1 }
  u16(v: number): void { this.reserve(2); this.buf.writeUInt16LE(v, this.length); this.length += 2 }
  i16(v: number): void { this.reserve(2); this.buf.writeInt16LE(v, this.length); this.length += 2 }
  u32(v: number): void { this.reserve(4); this.buf.writeUInt32LE(v, this.length); this.length += 4 }
  i32(v: number): void { this.reserve(4); this.buf.writeInt32LE(v, this.length); this.length += 4 }
  f32(v: number): void { this.reserve(4); this.buf.writeFloatLE(v, this.length); this.length += 4 }
  f64(v: number): void { this.reserve(8); this.buf.writeDoubleLE(v, this.length); this.length += 8 }
  u64(v: bigint): void { this.reserve(8); this.buf.writeBigUInt64LE(v, this.length); this.length += 8 }
  i64(v: bigint): void { this.reserve(8); this.buf.writeBigInt64LE(v, this.length); this.length += 8 }
  bytes(b: Uint8Array): void { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8')
    this.u64(BigInt(b.length))
    this.bytes(b)
  }
  zeros(n: number): void { this.reserve(n); this.buf.fill(0, this.length, this.length + n); this.length += n }
  view(): Buffer { return this.buf.subarray(0, this.length) }
}

function checkInt(key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new TypeError(`metadata '${key}': ${String(v)} is not an integer in [${min}, ${max}]`)
  }
  return v
}

function toBigInt(key: string, v: unknown, min: bigint, max: bigint): bigint {
  let b: bigint
  if (typeof v === 'bigint') b = v
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v)
  else throw new TypeError(`metadata '${key}': ${String(v)} is not a 64-bit integer`)
  if (b < min || b > max) throw new TypeError(`metadata '${key}': ${b} is out of range`)
  return b
}

function writeScalar(sink: ByteSink, key: string, type: GGUFValueType, v: unknown): void {
  switch (type) {
    case GGUFValueType.UINT8:
      sink.u8(checkInt(key, v, 0, 0xff))
      break
    case GGUFValueType.INT8:
      sink.i8(checkInt(key, v, -0x80, 0x7f))
      break
    case GGUFValueType.UINT16:
      sink.u16(checkInt(key, v, 0, 0xffff))
      break
    case GGUFValueType.INT16:
      sink.i16(checkInt(key, v, -0x8000, 0x7fff))
      break
    case GGUFValueType.UINT32:
      sink.u32(checkInt(key, v, 0, 0xffffffff))
      break
    case GGUFValueType.INT32:
      sink.i32(checkInt(key, v, -0x80000000, 0x7fffffff))
      break
    case GGUFValueType.UINT64:
      sink.u64(toBigInt(key, v, 0n, 0xffffffffffffffffn))
      break
    case GGUFValueType.INT64:
      sink.i64(toBigInt(key, v, -0x8000000000000000n, 0x7fffffffffffffffn))
      break
    case GGUFValueType.FLOAT32:
    case GGUFValueType.FLOAT64:
      if (typeof v !== 'number') throw new TypeError(`metadata '${key}': ${String(v)} is not a number`)
      if (type === GGUFValueType.FLOAT32) sink.f32(v)
      else sink.f64(v)
      break
    case GGUFValueType.BOOL:
      if (typeof v !== 'boolean') throw new TypeError(`metadata '${key}': ${String(v)} is not a boolean`)
      sink.u8(v ? 1 : 0)
      break
    case GGUFValueType.STRING:
      if (typeof v !== 'string') throw new TypeError(`metadata '${key}': ${String(v)} is not a string`)
      sink.str(v)
      break
    default:
      throw new TypeError(`metadata '${key}': invalid value type ${String(type)}`)
  }
}

function writeValue(sink: ByteSink, key: string, v: GGUFMetadataValue): void {
  sink.u32(v.type)
  if (v.type === GGUFValueType.ARRAY) {
    if (v.itemType === (GGUFValueType.ARRAY as number)) throw new TypeError(`metadata '${key}': nested arrays are not supported`)
    sink.u32(v.itemType)
    sink.u64(BigInt(v.value.length))
    for (let i = 0; i < v.value.length; i++) writeScalar(sink, key, v.itemType, v.value[i])
  } else {
    writeScalar(sink, key, v.type, v.value)
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off)
}

export class GGUFWriter {
  private readonly kv = new Map<string, GGUFMetadataValue>()
  private readonly tensors: TensorSpec[] = []
  private readonly tensorNames = new Set<string>()

  constructor() {
    // tensor data is encoded through typed-array views, which are host-endian
    if (os.endianness() !== 'LE') throw new Error('GGUFWriter supports little-endian hosts only')
  }

  /** Metadata keys are written in insertion order; general.architecture should come first. */
  set(key: string, value: GGUFMetadataValue): this {
    if (key.length === 0) throw new TypeError('metadata key must not be empty')
    if (this.kv.has(key)) throw new Error(`duplicate metadata key '${key}'`)
    if (key === 'general.alignment') {
      const a = value.value
      if (value.type !== GGUFValueType.UINT32 || typeof a !== 'number' || a <= 0 || (a & (a - 1)) !== 0) {
        throw new TypeError('general.alignment must be a UINT32 power of two')
      }
    }
    // encode once now so that a bad value fails here, at the call that added it
    writeValue(new ByteSink(), key, value)
    this.kv.set(key, value)
    return this
  }

  string(key: string, value: string): this { return this.set(key, { type: GGUFValueType.STRING, value }) }
  /** llama.cpp reads integer hyperparameters only as UINT32; use this for all of them. */
  uint32(key: string, value: number): this { return this.set(key, { type: GGUFValueType.UINT32, value }) }
  int32(key: string, value: number): this { return this.set(key, { type: GGUFValueType.INT32, value }) }
  uint64(key: string, value: number | bigint): this { return this.set(key, { type: GGUFValueType.UINT64, value }) }
  float32(key: string, value: number): this { return this.set(key, { type: GGUFValueType.FLOAT32, value }) }
  bool(key: string, value: boolean): this { return this.set(key, { type: GGUFValueType.BOOL, value }) }
  array(key: string, itemType: Exclude<GGUFValueType, GGUFValueType.ARRAY>, value: ArrayLike<GGUFScalar>): this {
    return this.set(key, { type: GGUFValueType.ARRAY, itemType, value })
  }

  get alignment(): number {
    const a = this.kv.get('general.alignment')
    return a ? (a.value as number) : GGUF_DEFAULT_ALIGNMENT
  }

  addTensor(spec: TensorSpec): this {
    const { name, shape, type } = spec
    if (Buffer.byteLength(name, 'utf8') >= GGML_MAX_NAME) throw new Error(`tensor name too long: '${name}'`)
    if (this.tensorNames.has(name)) throw new Error(`duplicate tensor '${name}'`)
    if (!WRITABLE.has(type)) throw new Error(`tensor '${name}': cannot encode type ${ggmlTypeName(type)}`)
    if (shape.length < 1 || shape.length > GGML_MAX_DIMS) throw new Error(`tensor '${name}': 1 to 4 dims, got ${shape.length}`)
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 1) throw new Error(`tensor '${name}': bad dimension ${d}`)
    }
    if (!Number.isSafeInteger(nElements(shape))) throw new Error(`tensor '${name}': too many elements`)
    const blck = GGML_TYPE_TRAITS.get(type)!.blockSize
    if (shape[0] % blck !== 0) {
      throw new Error(`tensor '${name}': row length ${shape[0]} is not a multiple of ${blck} (${ggmlTypeName(type)})`)
    }
    this.tensorNames.add(name)
    this.tensors.push({ ...spec, shape: [...shape] })
    return this
  }

  private header(): Buffer {
    const sink = new ByteSink()
    sink.u32(GGUF_MAGIC)
    sink.u32(GGUF_VERSION)
    sink.u64(BigInt(this.tensors.length))
    sink.u64(BigInt(this.kv.size))
    for (const [key, v] of this.kv) {
      sink.str(key)
      writeValue(sink, key, v)
    }
    const align = this.alignment
    let offset = 0
    for (const t of this.tensors) {
      sink.str(t.name)
      sink.u32(t.shape.length)
      for (const d of t.shape) sink.u64(BigInt(d))
      sink.u32(t.type)
      sink.u64(BigInt(offset))
      offset += alignUp(tensorNBytes(t.type, t.shape), align)
    }
    sink.zeros(alignUp(sink.length, align) - sink.length)
    return sink.view()
  }

  /** Writes the file at `path` (replacing it; removed again if a fill callback throws). */
  write(path: string): WriteResult {
    const align = this.alignment
    const head = this.header() // validates all metadata before the file is touched
    const fd = fs.openSync(path, 'w')
    let bytes = 0
    try {
      writeAll(fd, head)
      bytes += head.length

      const maxRow = Math.max(1, ...this.tensors.map((t) => t.shape[0]))
      const chunkCap = Math.max(CHUNK_ELEMENTS, maxRow)
      const values = new Float32Array(chunkCap)
      const encoded = new Uint8Array(chunkCap * 4)
      const zeros = new Uint8Array(align)

      for (const t of this.tensors) {
        const rowLen = t.shape[0]
        const total = nElements(t.shape)
        const rowsPerChunk = Math.max(1, Math.floor(chunkCap / rowLen))
        for (let start = 0; start < total; start += rowsPerChunk * rowLen) {
          const n = Math.min(rowsPerChunk * rowLen, total - start)
          const chunk = values.subarray(0, n)
          t.fill(chunk, start)
          const out = encode(t.type, chunk, encoded)
          writeAll(fd, out)
          bytes += out.length
        }
        const nbytes = tensorNBytes(t.type, t.shape)
        const pad = alignUp(nbytes, align) - nbytes
        if (pad > 0) {
          writeAll(fd, zeros.subarray(0, pad))
          bytes += pad
        }
      }
    } catch (e) {
      // do not leave a truncated file that looks like a model
      fs.closeSync(fd)
      fs.rmSync(path, { force: true })
      throw e
    }
    fs.closeSync(fd)
    return { path, bytes, tensors: this.tensors.length }
  }
}

function encode(type: WritableTensorType, src: Float32Array, scratch: Uint8Array): Uint8Array {
  switch (type) {
    case GGMLType.F32:
      return new Uint8Array(src.buffer, src.byteOffset, src.byteLength)
    case GGMLType.F16: {
      const out = scratch.subarray(0, src.length * 2)
      encodeF16(src, out)
      return out
    }
    case GGMLType.Q8_0: {
      const out = scratch.subarray(0, (src.length / 32) * 34)
      encodeQ8_0(src, out)
      return out
    }
    case GGMLType.Q4_0: {
      const out = scratch.subarray(0, (src.length / 32) * 18)
      encodeQ4_0(src, out)
      return out
    }
  }
}
