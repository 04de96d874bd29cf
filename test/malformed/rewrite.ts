// Rewrites a (tiny, F32) GGUF file with edits to its metadata and tensors: the building block of
// the malformed-model corpus. Byte-level damage (truncation, random bytes) is done on buffers.
import * as fs from 'node:fs'
import { type GGUFKV, readGGUF } from '../../lib/gguf/reader'
import { GGMLType, GGUFValueType } from '../../lib/gguf/types'
import { type GGUFMetadataValue, GGUFWriter } from '../../lib/gguf/writer'

export interface TensorEdit {
  name: string
  shape: number[]
  /** Source tensor to copy values from (F32), or undefined for zeros. */
  from?: string
}

export interface Edits {
  kv?: (kv: Map<string, GGUFMetadataValue>) => void
  tensors?: (tensors: TensorEdit[]) => void
}

function toWritable(v: GGUFKV): GGUFMetadataValue {
  if (v.type === GGUFValueType.ARRAY) {
    const a = v.value
    return { type: GGUFValueType.ARRAY, itemType: a.itemType as Exclude<GGUFValueType, GGUFValueType.ARRAY>, value: a.values as ArrayLike<number> }
  }
  return v as GGUFMetadataValue
}

export function rewrite(src: string, dst: string, edits: Edits): string {
  const file = readGGUF(src)
  const bytes = fs.readFileSync(src)
  const kv = new Map<string, GGUFMetadataValue>()
  for (const [k, v] of file.kv) kv.set(k, toWritable(v))
  edits.kv?.(kv)
  const infos = new Map(file.tensors.map((t) => [t.name, t]))
  const tensors: TensorEdit[] = file.tensors.map((t) => ({ name: t.name, shape: [...t.shape], from: t.name }))
  edits.tensors?.(tensors)

  const w = new GGUFWriter()
  for (const [k, v] of kv) w.set(k, v)
  for (const t of tensors) {
    const info = t.from ? infos.get(t.from) : undefined
    if (info && info.type !== GGMLType.F32) throw new Error(`rewrite copies F32 tensors only (${info.name})`)
    w.addTensor({
      name: t.name,
      shape: t.shape,
      type: GGMLType.F32,
      fill: (out, start) => {
        if (!info) return void out.fill(0)
        const n = Math.min(out.length, Math.max(0, info.nElements - start))
        const view = new Float32Array(bytes.buffer.slice(bytes.byteOffset + info.absoluteOffset + start * 4, bytes.byteOffset + info.absoluteOffset + (start + n) * 4))
        out.set(view)
        out.fill(0, n)
      },
    })
  }
  w.write(dst)
  return dst
}

export const u32 = (value: number): GGUFMetadataValue => ({ type: GGUFValueType.UINT32, value })
export const i32 = (value: number): GGUFMetadataValue => ({ type: GGUFValueType.INT32, value })
export const f32 = (value: number): GGUFMetadataValue => ({ type: GGUFValueType.FLOAT32, value })
export const str = (value: string): GGUFMetadataValue => ({ type: GGUFValueType.STRING, value })
