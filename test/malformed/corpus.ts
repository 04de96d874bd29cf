// The corpus of malformed model files, written from the tiny pair by generators (no binaries are
// committed). Each case names the code the load must reject with.
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { readGGUF } from '../../lib/gguf/reader'
import { type Edits, f32, i32, rewrite, str, u32 } from './rewrite'

export interface Pair {
  model: string
  mmproj: string
}

export interface ModelCase {
  name: string
  /** Writes the broken file(s) into `dir`; returns what to pass to loadModel. */
  make: (dir: string, pair: Pair) => { model: string; mmproj?: string }
  code: string
}

function bytesCase(name: string, which: 'model' | 'mmproj', code: string, damage: (src: Buffer) => Buffer): ModelCase {
  return {
    name,
    code,
    make: (dir, pair) => {
      const out = path.join(dir, `${name}.gguf`)
      fs.writeFileSync(out, damage(fs.readFileSync(pair[which])))
      return which === 'model' ? { model: out } : { model: pair.model, mmproj: out }
    },
  }
}

function editCase(name: string, which: 'model' | 'mmproj', code: string, edits: Edits): ModelCase {
  return {
    name,
    code,
    make: (dir, pair) => {
      const out = rewrite(pair[which], path.join(dir, `${name}.gguf`), edits)
      return which === 'model' ? { model: out } : { model: pair.model, mmproj: out }
    },
  }
}

const drop = (name: string): Edits => ({ tensors: (ts) => void ts.splice(ts.findIndex((t) => t.name === name), 1) })
const setKv = (key: string, v: ReturnType<typeof u32>): Edits => ({ kv: (kv) => void kv.set(key, v) })
const delKv = (key: string): Edits => ({ kv: (kv) => void kv.delete(key) })
const reshape = (name: string, shape: number[]): Edits => ({
  tensors: (ts) => {
    const t = ts.find((x) => x.name === name)!
    t.shape = shape
    t.from = undefined
  },
})

function dataOffset(file: string): number {
  return readGGUF(file).dataOffset
}

export const MODEL_CASES: ModelCase[] = [
  // Not GGUF at all, or cut short.
  bytesCase('empty-file', 'model', 'ERR_MODEL_LOAD', () => Buffer.alloc(0)),
  bytesCase('random-bytes', 'model', 'ERR_MODEL_LOAD', () => pseudoRandom(65536, 'model')),
  bytesCase('random-after-magic', 'model', 'ERR_MODEL_LOAD', () => Buffer.concat([Buffer.from('GGUF'), pseudoRandom(65536, 'magic')])),
  bytesCase('magic-only', 'model', 'ERR_MODEL_LOAD', () => Buffer.from('GGUF')),
  bytesCase('version-99', 'model', 'ERR_MODEL_LOAD', (b) => {
    const c = Buffer.from(b)
    c.writeUInt32LE(99, 4)
    return c
  }),
  bytesCase('version-1', 'model', 'ERR_MODEL_LOAD', (b) => {
    const c = Buffer.from(b)
    c.writeUInt32LE(1, 4)
    return c
  }),
  bytesCase('truncated-header', 'model', 'ERR_MODEL_LOAD', (b) => b.subarray(0, 1000)),
  bytesCase('truncated-data', 'model', 'ERR_MODEL_LOAD', (b) => b.subarray(0, Math.floor(b.length * 0.9))),
  bytesCase('huge-tensor-count', 'model', 'ERR_MODEL_LOAD', (b) => {
    const c = Buffer.from(b)
    c.writeBigUInt64LE(0xffffffffffffn, 8)
    return c
  }),
  bytesCase('huge-kv-count', 'model', 'ERR_MODEL_LOAD', (b) => {
    const c = Buffer.from(b)
    c.writeBigUInt64LE(0xffffffffffffn, 16)
    return c
  }),
  bytesCase('huge-key-length', 'model', 'ERR_MODEL_LOAD', (b) => {
    const c = Buffer.from(b)
    c.writeBigUInt64LE(0x7fffffffffffn, 24)
    return c
  }),
  bytesCase('zeroed-tensor-infos', 'model', 'ERR_MODEL_LOAD', (b) => {
    const c = Buffer.from(b)
    const end = dataOffsetOf(b)
    c.fill(0, end - 600, end)
    return c
  }),
  // Metadata llama.cpp reads with a fixed type, or needs in range.
  editCase('no-architecture', 'model', 'ERR_MODEL_LOAD', delKv('general.architecture')),
  editCase('unknown-architecture', 'model', 'ERR_MODEL_LOAD', setKv('general.architecture', str('no-such-arch'))),
  editCase('architecture-not-string', 'model', 'ERR_MODEL_LOAD', setKv('general.architecture', u32(7))),
  editCase('block-count-zero', 'model', 'ERR_MODEL_LOAD', setKv('llama.block_count', u32(0))),
  editCase('block-count-int32', 'model', 'ERR_MODEL_LOAD', setKv('llama.block_count', i32(2))),
  editCase('block-count-huge', 'model', 'ERR_MODEL_LOAD', setKv('llama.block_count', u32(100000))),
  editCase('embedding-length-float', 'model', 'ERR_MODEL_LOAD', setKv('llama.embedding_length', f32(64))),
  editCase('embedding-length-zero', 'model', 'ERR_MODEL_LOAD', setKv('llama.embedding_length', u32(0))),
  editCase('head-count-zero', 'model', 'ERR_MODEL_LOAD', setKv('llama.attention.head_count', u32(0))),
  editCase('head-count-int32', 'model', 'ERR_MODEL_LOAD', setKv('llama.attention.head_count', i32(4))),
  editCase('head-count-not-dividing', 'model', 'ERR_MODEL_LOAD', setKv('llama.attention.head_count', u32(3))),
  editCase('head-count-kv-huge', 'model', 'ERR_MODEL_LOAD', setKv('llama.attention.head_count_kv', u32(0x20000004))),
  editCase('head-count-kv-not-dividing', 'model', 'ERR_MODEL_LOAD', setKv('llama.attention.head_count_kv', u32(3))),
  editCase('context-length-int32', 'model', 'ERR_MODEL_LOAD', setKv('llama.context_length', i32(2048))),
  editCase('rope-dims-too-large', 'model', 'ERR_MODEL_LOAD', setKv('llama.rope.dimension_count', u32(4096))),
  editCase('eps-negative', 'model', 'ERR_MODEL_LOAD', setKv('llama.attention.layer_norm_rms_epsilon', f32(-1))),
  editCase('mmproj-eps-negative', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.vision.attention.layer_norm_epsilon', f32(-0.5))),
  editCase('eps-as-string', 'model', 'ERR_MODEL_LOAD', setKv('llama.attention.layer_norm_rms_epsilon', str('small'))),
  editCase('no-tokens', 'model', 'ERR_MODEL_LOAD', delKv('tokenizer.ggml.tokens')),
  editCase('no-tokenizer-model', 'model', 'ERR_MODEL_LOAD', delKv('tokenizer.ggml.model')),
  editCase('bos-out-of-vocab', 'model', 'ERR_MODEL_LOAD', setKv('tokenizer.ggml.bos_token_id', u32(999999))),
  editCase('bos-int32', 'model', 'ERR_MODEL_LOAD', setKv('tokenizer.ggml.bos_token_id', i32(1))),
  editCase('scores-too-short', 'model', 'ERR_MODEL_LOAD', {
    kv: (kv) => void kv.set('tokenizer.ggml.scores', { type: 9, itemType: 6, value: [0, 0, 0] } as never),
  }),
  // Tensors missing, misshapen or placed outside the file.
  editCase('missing-token-embd', 'model', 'ERR_MODEL_LOAD', drop('token_embd.weight')),
  editCase('missing-output-norm', 'model', 'ERR_MODEL_LOAD', drop('output_norm.weight')),
  editCase('missing-layer-tensor', 'model', 'ERR_MODEL_LOAD', drop('blk.1.ffn_down.weight')),
  editCase('wrong-shape', 'model', 'ERR_MODEL_LOAD', reshape('blk.0.attn_q.weight', [32, 64])),
  bytesCase('tensor-offset-outside-file', 'model', 'ERR_MODEL_LOAD', (b) => {
    const c = Buffer.from(b)
    // the last tensor info's offset field sits just before the (aligned) data section
    const info = lastTensorOffsetPos(b)
    c.writeBigUInt64LE(BigInt(b.length * 4), info)
    return c
  }),
  bytesCase('tensor-type-invalid', 'model', 'ERR_MODEL_LOAD', (b) => {
    const c = Buffer.from(b)
    c.writeUInt32LE(250, lastTensorOffsetPos(b) - 4)
    return c
  }),
  // Projectors.
  bytesCase('mmproj-random-bytes', 'mmproj', 'ERR_MMPROJ_LOAD', () => pseudoRandom(65536, 'mmproj')),
  bytesCase('mmproj-truncated', 'mmproj', 'ERR_MMPROJ_LOAD', (b) => b.subarray(0, Math.floor(b.length / 2))),
  editCase('mmproj-image-size-int32', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.vision.image_size', i32(32))),
  editCase('mmproj-patch-size-float', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.vision.patch_size', f32(8))),
  editCase('mmproj-image-size-zero', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.vision.image_size', u32(0))),
  editCase('mmproj-patch-size-zero', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.vision.patch_size', u32(0))),
  editCase('mmproj-patch-larger-than-image', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.vision.patch_size', u32(64))),
  editCase('mmproj-head-count-zero', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.vision.attention.head_count', u32(0))),
  editCase('mmproj-block-count-zero', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.vision.block_count', u32(0))),
  editCase('mmproj-block-count-huge', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.vision.block_count', u32(100000))),
  editCase('mmproj-unknown-projector', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.projector_type', str('no-such-projector'))),
  editCase('mmproj-projector-type-int', 'mmproj', 'ERR_MMPROJ_LOAD', setKv('clip.projector_type', u32(1))),
  editCase('mmproj-missing-mm0', 'mmproj', 'ERR_MMPROJ_LOAD', drop('mm.0.weight')),
  editCase('mmproj-missing-mm2', 'mmproj', 'ERR_MMPROJ_LOAD', drop('mm.2.weight')),
  editCase('mmproj-missing-patch-embd', 'mmproj', 'ERR_MMPROJ_LOAD', drop('v.patch_embd.weight')),
  editCase('mmproj-missing-position-embd', 'mmproj', 'ERR_MMPROJ_LOAD', drop('v.position_embd.weight')),
  editCase('mmproj-missing-layer-tensor', 'mmproj', 'ERR_MMPROJ_LOAD', drop('v.blk.1.attn_q.weight')),
  editCase('mmproj-wrong-patch-shape', 'mmproj', 'ERR_MMPROJ_LOAD', reshape('v.patch_embd.weight', [8, 8, 3, 16])),
  editCase('mmproj-no-vision-flag', 'mmproj', 'ERR_MMPROJ_LOAD', {
    kv: (kv) => {
      kv.delete('clip.has_vision_encoder')
      kv.delete('clip.projector_type')
      kv.delete('clip.has_llava_projector')
    },
  }),
  editCase('mmproj-projection-mismatch', 'mmproj', 'ERR_MMPROJ_MISMATCH', {
    kv: (kv) => void kv.set('clip.vision.projection_dim', u32(32)),
    tensors: (ts) => {
      for (const t of ts) {
        if (t.name === 'mm.2.weight') Object.assign(t, { shape: [64, 32], from: undefined })
        if (t.name === 'mm.2.bias') Object.assign(t, { shape: [32], from: undefined })
      }
    },
  }),
  {
    name: 'text-model-as-mmproj',
    code: 'ERR_MMPROJ_LOAD',
    make: (_dir, pair) => ({ model: pair.model, mmproj: pair.model }),
  },
  {
    name: 'mmproj-as-text-model',
    code: 'ERR_MODEL_LOAD',
    make: (_dir, pair) => ({ model: pair.mmproj }),
  },
]

/** Deterministic noise: a SHA-256 chain. */
export function pseudoRandom(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n)
  let block = crypto.createHash('sha256').update(seed).digest()
  for (let off = 0; off < n; off += block.length) {
    block.copy(out, off)
    block = crypto.createHash('sha256').update(block).digest()
  }
  return out
}

function dataOffsetOf(b: Buffer): number {
  const tmp = path.join(require('node:os').tmpdir(), `llava-corpus-${process.pid}-${Math.random().toString(36).slice(2)}.gguf`)
  fs.writeFileSync(tmp, b)
  try {
    return dataOffset(tmp)
  } finally {
    fs.rmSync(tmp, { force: true })
  }
}

function lastTensorOffsetPos(b: Buffer): number {
  const tmp = path.join(require('node:os').tmpdir(), `llava-corpus-${process.pid}-${Math.random().toString(36).slice(2)}.gguf`)
  fs.writeFileSync(tmp, b)
  try {
    return readGGUF(tmp).headerSize - 8
  } finally {
    fs.rmSync(tmp, { force: true })
  }
}
