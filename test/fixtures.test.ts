// The synthetic GGUF fixtures: byte-exact determinism, the GGUF layout read back through the
// reader, the quantisers against known blocks, and the reader's handling of damaged files.
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {
  buildGemmaVocab,
  buildLlamaVocab,
  ensurePair,
  pairCacheKey,
  writeTinyPair,
  writeTinyQwen25OmniPair,
  writeTinyUltravoxPair,
  writeTinyVoxtralPair,
  type ModelPair,
} from '../lib/fixtures'
import { GGUFError, getKV, parseGGUF, readGGUF, tryReadGGUF, type GGUFFile } from '../lib/gguf/reader'
import { encodeQ4_0, encodeQ8_0, f16BitsToF32, f32ToF16Bits } from '../lib/gguf/quants'
import { fillUniform, uniform } from '../lib/gguf/random'
import { GGMLType, GGUFValueType, alignUp } from '../lib/gguf/types'
import { GGUFWriter } from '../lib/gguf/writer'

// Pinned hashes: an accidental change to the writer, the PRNG, the vocab or a generator shows up
// here. The mlp pair's values are also what the Python reference
// (/work/shared/reference/synthetic-gguf/make_tiny_vlm_stdlib.py, seed 42) writes, byte for byte.
// Changing them on purpose also needs a GENERATOR_VERSION bump in lib/fixtures/cache.ts.
const TINY_MLP_SHA256 = {
  model: '773a2991c12ebf7cf8a55207261ab809964ac75691a7c0c7a45f9edb1c8d2bc5',
  mmproj: 'f82a3073713b2313d5fea41c62f5ca325a38d61d175668d6e3932f16711c47f8',
}
const TINY_QWEN25VL_SHA256 = {
  model: '45ed08bfa719ca79174168a1d1f1e8b30cd96c695544ff352c2f0421810fb9cc',
  mmproj: 'd4913ba7760c29847826f14e468ee005a3a675a99f63ebde985c5566ebb456f8',
}

const TINY_LFM2VL_SHA256 = {
  model: 'dea4114a35a77084fa95d350433c5abfa988ca612532a97919f86aab741fd486',
  mmproj: 'fcbb3d7e05ae1d57693ec68b44cdb5434b081691e5b6fcfb48e0079a281db761',
}

const TINY_SMOLVLM_SHA256 = {
  model: '9be5f1bc95a87e80447bc6be51bf7f639360181a0a7a4d44ca157d2cf488f52d',
  mmproj: 'c7fc897b0f1e28db6f20a8a993922080e8ee4379ce95694d6c50336e76ee74fd',
}

const TINY_PIXTRAL_SHA256 = {
  model: '2c544817db25c114d1fca10a3ffda749f965ea5a9439a836fbe88d284ff3743b',
  mmproj: '73f50629e28d2c7ede96c00c867f7323c7fa7a4affbe15fe02f1c20acb513439',
}

const TINY_GEMMA3_SHA256 = {
  model: '4712947e4c5d6327a97f372187dc388ff8dd4ace067eb19d0c123935e513d092',
  mmproj: 'eaa70667fb16b83741584da6dab16b877a7897e1ead0ceccd364a92bbc321d6f',
}

const dirs: string[] = []
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-fixtures-'))
  dirs.push(d)
  return d
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

const sha256 = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
const hashes = (p: ModelPair) => ({ model: sha256(p.model), mmproj: sha256(p.mmproj) })

function timed<T>(label: string, fn: () => T): T {
  const t0 = process.hrtime.bigint()
  const r = fn()
  console.log(`${label}: ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`)
  return r
}

/** float32 values of an F32 tensor, read from the file at its data offset */
function readF32(file: string, g: GGUFFile, name: string): Float32Array {
  const t = g.tensors.find((x) => x.name === name)!
  expect(t.type).toBe(GGMLType.F32)
  const buf = Buffer.alloc(t.nbytes)
  const fd = fs.openSync(file, 'r')
  try {
    fs.readSync(fd, buf, 0, t.nbytes, t.absoluteOffset)
  } finally {
    fs.closeSync(fd)
  }
  return new Float32Array(buf.buffer, buf.byteOffset, t.nElements)
}

describe('deterministic generation', () => {
  test.each([
    ['mlp', TINY_MLP_SHA256],
    ['gemma3', TINY_GEMMA3_SHA256],
    ['qwen2.5vl', TINY_QWEN25VL_SHA256],
    ['lfm2', TINY_LFM2VL_SHA256],
    ['idefics3', TINY_SMOLVLM_SHA256],
    ['pixtral', TINY_PIXTRAL_SHA256],
  ] as const)('tiny %s pair: same seed gives identical, pinned bytes; files < 1 MB', (projector, pinned) => {
    const a = timed(`writeTinyPair(${projector})`, () => writeTinyPair(tmp(), { projector }))
    const b = writeTinyPair(tmp(), { projector, seed: 42 })
    expect(hashes(a)).toEqual(pinned)
    expect(hashes(b)).toEqual(pinned)
    for (const f of [a.model, a.mmproj]) expect(fs.statSync(f).size).toBeLessThan(1 << 20)
  })

  test('a different seed gives different weights but the same layout', () => {
    const a = writeTinyPair(tmp())
    const b = writeTinyPair(tmp(), { seed: 7 })
    expect(sha256(b.model)).not.toBe(sha256(a.model))
    expect(sha256(b.mmproj)).not.toBe(sha256(a.mmproj))
    const ga = readGGUF(a.model)
    const gb = readGGUF(b.model)
    expect(gb.fileSize).toBe(ga.fileSize)
    expect(gb.tensors.map((t) => [t.name, t.shape, t.offset])).toEqual(ga.tensors.map((t) => [t.name, t.shape, t.offset]))
  })

  test('quantised text variants are deterministic and smaller', () => {
    const f32 = fs.statSync(writeTinyPair(tmp()).model).size
    for (const textType of ['f16', 'q8_0', 'q4_0'] as const) {
      const a = writeTinyPair(tmp(), { textType })
      const b = writeTinyPair(tmp(), { textType })
      expect(sha256(a.model)).toBe(sha256(b.model))
      expect(fs.statSync(a.model).size).toBeLessThan(f32)
      const g = readGGUF(a.model)
      const want = { f16: GGMLType.F16, q8_0: GGMLType.Q8_0, q4_0: GGMLType.Q4_0 }[textType]
      expect(g.tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!.type).toBe(want)
      expect(g.tensors.find((t) => t.name === 'blk.0.ffn_norm.weight')!.type).toBe(GGMLType.F32)
    }
  })
})

describe('GGUF layout of the tiny mlp pair', () => {
  let pair: ModelPair
  beforeAll(() => {
    pair = writeTinyPair(tmp())
  })

  test('text model header', () => {
    const g = readGGUF(pair.model)
    expect(g.version).toBe(3)
    expect(g.alignment).toBe(32)
    expect([...g.kv.keys()][0]).toBe('general.architecture')
    expect(getKV(g, 'general.architecture', GGUFValueType.STRING)).toBe('llama')
    // llama.cpp reads integer hyperparameters as UINT32 only
    for (const k of ['context_length', 'embedding_length', 'block_count', 'feed_forward_length',
      'attention.head_count', 'attention.head_count_kv', 'rope.dimension_count', 'vocab_size']) {
      expect(g.kv.get(`llama.${k}`)?.type).toBe(GGUFValueType.UINT32)
    }
    expect(getKV(g, 'llama.embedding_length', GGUFValueType.UINT32)).toBe(64)
    expect(getKV(g, 'llama.rope.dimension_count', GGUFValueType.UINT32)).toBe(16)
    expect(getKV(g, 'llama.attention.layer_norm_rms_epsilon', GGUFValueType.FLOAT32)).toBeCloseTo(1e-5, 10)
    expect(getKV(g, 'tokenizer.ggml.add_bos_token', GGUFValueType.BOOL)).toBe(true)
    expect(getKV(g, 'tokenizer.chat_template', GGUFValueType.STRING)).toContain("'USER: '")

    const tokens = getKV(g, 'tokenizer.ggml.tokens', GGUFValueType.ARRAY)!
    const vocab = buildLlamaVocab()
    expect(tokens.itemType).toBe(GGUFValueType.STRING)
    expect(tokens.values).toEqual(vocab.tokens)
    expect(tokens.values.length).toBe(getKV(g, 'llama.vocab_size', GGUFValueType.UINT32))
    const types = getKV(g, 'tokenizer.ggml.token_type', GGUFValueType.ARRAY)!
    expect(types.itemType).toBe(GGUFValueType.INT32)
    expect(Array.from(types.values as Int32Array)).toEqual(vocab.types)

    const nv = vocab.tokens.length
    const byName = new Map(g.tensors.map((t) => [t.name, t]))
    expect(g.tensors).toHaveLength(1 + 2 * 9 + 2)
    expect(byName.get('token_embd.weight')!.shape).toEqual([64, nv]) // ggml ne order
    expect(byName.get('blk.1.ffn_down.weight')!.shape).toEqual([128, 64])
    expect(byName.get('output.weight')!.shape).toEqual([64, nv])
  })

  test('tensor data: aligned, packed, inside the file, and the expected values', () => {
    const g = readGGUF(pair.model)
    expect(g.dataOffset % 32).toBe(0)
    let expected = 0
    for (const t of g.tensors) {
      expect(t.offset).toBe(expected)
      expect(t.absoluteOffset).toBe(g.dataOffset + t.offset)
      expected = alignUp(t.offset + t.nbytes, 32)
    }
    expect(g.fileSize).toBe(g.dataOffset + expected)

    expect(readF32(pair.model, g, 'blk.0.attn_norm.weight').every((v) => v === 1)).toBe(true)
    const q = readF32(pair.model, g, 'blk.0.attn_q.weight')
    expect(q).toEqual(uniform(42, 'blk.0.attn_q.weight', 64 * 64, Math.sqrt(3 / 64)))
    // control and byte tokens can never win: their output rows are zero
    const out = readF32(pair.model, g, 'output.weight')
    expect(out.subarray(0, 259 * 64).every((v) => v === 0)).toBe(true)
    expect(out.subarray(259 * 64).some((v) => v !== 0)).toBe(true)
  })

  test('mmproj header', () => {
    const g = readGGUF(pair.mmproj)
    expect(getKV(g, 'general.architecture', GGUFValueType.STRING)).toBe('clip')
    expect(getKV(g, 'clip.projector_type', GGUFValueType.STRING)).toBe('mlp')
    expect(getKV(g, 'clip.vision.projection_dim', GGUFValueType.UINT32)).toBe(64)
    const mean = getKV(g, 'clip.vision.image_mean', GGUFValueType.ARRAY)!
    expect(mean.itemType).toBe(GGUFValueType.FLOAT32)
    expect(mean.values).toHaveLength(3)
    const names = g.tensors.map((t) => t.name)
    expect(names).toEqual(expect.arrayContaining(['v.class_embd', 'v.patch_embd.weight', 'mm.0.weight', 'mm.2.bias']))
    expect(g.tensors.find((t) => t.name === 'v.patch_embd.weight')!.shape).toEqual([8, 8, 3, 32])
    expect(g.tensors.find((t) => t.name === 'v.position_embd.weight')!.shape).toEqual([32, 17])
  })

  test('gemma3 pair: projector keys and tensors', () => {
    const p = writeTinyPair(tmp(), { projector: 'gemma3' })
    const m = readGGUF(p.mmproj)
    expect(getKV(m, 'clip.projector_type', GGUFValueType.STRING)).toBe('gemma3')
    expect(m.tensors.find((t) => t.name === 'mm.input_projection.weight')!.shape).toEqual([64, 32])
    expect(m.tensors.find((t) => t.name === 'v.patch_embd.weight')!.type).toBe(GGMLType.F16)
    const t = readGGUF(p.model)
    expect(getKV(t, 'general.architecture', GGUFValueType.STRING)).toBe('gemma3')
    expect(getKV(t, 'gemma3.attention.key_length', GGUFValueType.UINT32)).toBe(16)
    const tokens = getKV(t, 'tokenizer.ggml.tokens', GGUFValueType.ARRAY)!.values as string[]
    expect(tokens.slice(0, 8)).toEqual([
      '<pad>', '<eos>', '<bos>', '<unk>', '<start_of_turn>', '<end_of_turn>', '<start_of_image>', '<end_of_image>',
    ])
  })
})

describe('audio pairs', () => {
  test.each([
    ['ultravox', writeTinyUltravoxPair, { model: '5aec16c3a564d541dd8adb9287b7274e993920df6ae1023de811211e5bb94756', mmproj: '03d3f5d6accc898a4c3afc098c47f1684ec4aaacbe0130d37cc2d3114ddf0838' }],
    ['voxtral', writeTinyVoxtralPair, { model: 'c09c5d841885790486a477e3ddc804446ac192992867974a8754750462950352', mmproj: '72586bf374d5bdca431e576f9faa377a37952b6e7151217dbd4cfcafbdb6ada1' }],
    ['qwen2.5o', writeTinyQwen25OmniPair, { model: '2da3c59a2dec15074bd7232c86998765e20af42534bbdc662a5dc25c019b1d92', mmproj: '81b3fe64def6de495256074a7fd74b271215bbc6c9eb3d0e12cccfc0ce42041a' }],
  ] as const)('tiny %s pair: pinned bytes, < 1 MB a file, Whisper keys as the converter writes them', (projector, write, pinned) => {
    const p = write(tmp())
    expect(hashes(p)).toEqual(pinned)
    for (const f of [p.model, p.mmproj]) expect(fs.statSync(f).size).toBeLessThan(1 << 20)
    const m = readGGUF(p.mmproj)
    expect(getKV(m, 'clip.projector_type', GGUFValueType.STRING)).toBe(projector)
    expect(getKV(m, 'clip.has_audio_encoder', GGUFValueType.BOOL)).toBe(true)
    expect(getKV(m, 'clip.audio.num_mel_bins', GGUFValueType.UINT32)).toBe(128)
    // conv biases as the converter unsqueezes them, F16 kernels, no key bias
    expect(m.tensors.find((t) => t.name === 'a.conv1d.1.bias')!.shape).toEqual([1, 64])
    expect(m.tensors.find((t) => t.name === 'a.conv1d.1.weight')!.type).toBe(GGMLType.F16)
    expect(m.tensors.some((t) => t.name === 'a.blk.0.attn_k.bias')).toBe(false)
    if (projector === 'ultravox') expect(getKV(m, 'clip.audio.projector.stack_factor', GGUFValueType.UINT32)).toBe(8)
    else if (projector === 'voxtral') expect(getKV(m, 'clip.audio.projector.stack_factor', GGUFValueType.UINT32)).toBe(4)
    else expect(getKV(m, 'clip.has_vision_encoder', GGUFValueType.BOOL)).toBe(true)
  })
})

describe('qwen2.5vl pair', () => {
  test('keys and tensors as conversion/qwenvl.py writes them', () => {
    const p = writeTinyPair(tmp(), { projector: 'qwen2.5vl' })
    const m = readGGUF(p.mmproj)
    expect(getKV(m, 'clip.projector_type', GGUFValueType.STRING)).toBe('qwen2.5vl_merger')
    expect(getKV(m, 'clip.vision.n_wa_pattern', GGUFValueType.UINT32)).toBe(2)
    expect(getKV(m, 'clip.use_silu', GGUFValueType.BOOL)).toBe(true)
    // the Conv3D kernel split in two temporal halves, no patch bias, no position embedding
    expect(m.tensors.filter((t) => t.name.startsWith('v.patch_embd')).map((t) => t.name)).toEqual(['v.patch_embd.weight', 'v.patch_embd.weight.1'])
    expect(m.tensors.some((t) => t.name.startsWith('v.position_embd'))).toBe(false)
    expect(m.tensors.find((t) => t.name === 'mm.0.weight')!.shape).toEqual([256, 256])
    expect(m.tensors.find((t) => t.name === 'mm.2.weight')!.shape).toEqual([256, 64])
    const t = readGGUF(p.model)
    expect(getKV(t, 'general.architecture', GGUFValueType.STRING)).toBe('qwen2vl')
    expect(Array.from(getKV(t, 'qwen2vl.rope.dimension_sections', GGUFValueType.ARRAY)!.values as ArrayLike<number>)).toEqual([2, 3, 3, 0])
    expect(t.tensors.some((x) => x.name === 'blk.0.attn_q.bias')).toBe(true)
    const tokens = getKV(t, 'tokenizer.ggml.tokens', GGUFValueType.ARRAY)!.values as string[]
    expect(tokens.slice(0, 7)).toEqual(['<unk>', '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|vision_start|>', '<|vision_end|>', '<|image_pad|>'])
  })
})

describe('random', () => {
  test('matches the Python reference generator bit for bit', () => {
    const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length))
    expect(bits(uniform(42, 'token_embd.weight', 5))).toEqual([1064171150, 1058884088, 1033670928, 3206297462, 1039456080])
    expect(bits(uniform(0xffffffff, 'v.class_embd', 3))).toEqual([1048875952, 1034065568, 1062932596])
  })

  test('any slice can be generated on its own, including past 2^32', () => {
    const whole = uniform(3, 't', 1000, 0.5)
    const part = new Float32Array(10)
    fillUniform(part, 3, 't', 500, 0.5)
    expect(part).toEqual(whole.subarray(500, 510))
    const far = new Float32Array(3)
    fillUniform(far, 9, 'abc', 2 ** 32 + 5, 0.25) // values from the Python formula
    expect(Array.from(new Uint32Array(far.buffer))).toEqual([3185099080, 3181158988, 1041543546])
  })

  test('values are uniform in [-scale, scale)', () => {
    const v = uniform(1, 'x', 100000, 2)
    let min = Infinity
    let max = -Infinity
    let sum = 0
    for (const x of v) {
      min = Math.min(min, x)
      max = Math.max(max, x)
      sum += x
    }
    expect(min).toBeGreaterThanOrEqual(-2)
    expect(max).toBeLessThan(2)
    expect(Math.abs(sum / v.length)).toBeLessThan(0.02)
    expect(() => uniform(-1, 'x', 1)).toThrow(RangeError)
    expect(() => uniform(2 ** 32, 'x', 1)).toThrow(RangeError)
  })
})

describe('quantisers (bit-exact with ggml quantize_row_*_ref)', () => {
  test('f32 -> f16 rounding', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [Infinity, 0x7c00],
      [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [-0, 0x8000],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [NaN, 0x7e00],
    ]
    for (const [x, h] of cases) expect([x, f32ToF16Bits(x)]).toEqual([x, h])
    expect(f16BitsToF32(0x3555)).toBeCloseTo(1 / 3, 3)
  })

  test('Q4_0 block: d = max / -8, nibbles j | (j + 16) << 4', () => {
    const dst = new Uint8Array(18)
    encodeQ4_0(Float32Array.from({ length: 32 }, (_, j) => j - 16), dst)
    // d = -16 / -8 = 2 (fp16 0x4000); element 0 (-16) -> 0, element 16 (0) -> 8, 31 (15) -> 15
    expect(Array.from(dst)).toEqual([0, 64, 128, 145, 145, 162, 162, 179, 179, 196, 196, 213, 213, 230, 230, 247, 247, 248])
  })

  test('Q8_0 block: d = amax / 127, round half away from zero', () => {
    const dst = new Uint8Array(34)
    encodeQ8_0(Float32Array.from({ length: 32 }, (_, j) => (j - 16) / 4), dst)
    expect(Array.from(dst)).toEqual([
      8, 40, 129, 137, 145, 153, 161, 169, 177, 185, 192, 200, 208, 216, 224, 232, 240, 248,
      0, 8, 16, 24, 32, 40, 48, 56, 64, 71, 79, 87, 95, 103, 111, 119,
    ])
    const ties = new Float32Array(32)
    ties.set([127, -2.5, 2.5, -0.5, 0.5])
    encodeQ8_0(ties, dst) // d = 1, so the values are quantised as they are
    expect(Array.from(new Int8Array(dst.buffer, 2, 5))).toEqual([127, -3, 3, -1, 1])
    const zeros = new Uint8Array(34).fill(7)
    encodeQ8_0(new Float32Array(32), zeros)
    expect(zeros.every((b) => b === 0)).toBe(true)
  })
})

describe('vocab', () => {
  test('llama vocab: reference layout, padding to 32000 with silent fillers', () => {
    const v = buildLlamaVocab()
    expect(v.tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>'])
    expect(v.tokens[259]).toBe('\u2581')
    expect(v.silent).toEqual([[0, 259]])
    const big = buildLlamaVocab({ size: 32000 })
    expect(big.tokens).toHaveLength(32000)
    expect(new Set(big.tokens).size).toBe(32000)
    expect(big.tokens.slice(0, v.tokens.length)).toEqual(v.tokens)
    expect(big.silent).toEqual([[0, 259], [v.tokens.length, 32000]])
    expect(() => buildLlamaVocab({ size: 10 })).toThrow(RangeError)
  })

  test('gemma vocab keeps markers among the silent specials', () => {
    const v = buildGemmaVocab()
    expect(v.silent).toEqual([[0, 8 + 256]])
    expect(new Set(v.tokens).size).toBe(v.tokens.length)
  })
})

describe('GGUFWriter validation', () => {
  const fill = (o: Float32Array) => o.fill(0)
  test('rejects what llama.cpp would reject', () => {
    const w = new GGUFWriter()
    w.string('general.architecture', 'x')
    expect(() => w.string('general.architecture', 'y')).toThrow(/duplicate/)
    expect(() => w.uint32('a', -1)).toThrow(/not an integer in \[0, 4294967295\]/)
    expect(() => w.int32('b', 2 ** 31)).toThrow(TypeError)
    expect(() => w.array('c', GGUFValueType.FLOAT32, [1, 'x'])).toThrow(/not a number/)
    expect(w.alignment).toBe(32)
    w.addTensor({ name: 't', shape: [32], type: GGMLType.Q4_0, fill })
    expect(() => w.addTensor({ name: 't', shape: [32], type: GGMLType.F32, fill })).toThrow(/duplicate/)
    expect(() => w.addTensor({ name: 'u', shape: [48], type: GGMLType.Q8_0, fill })).toThrow(/multiple of 32/)
    expect(() => w.addTensor({ name: 'x'.repeat(64), shape: [1], type: GGMLType.F32, fill })).toThrow(/too long/)
    expect(() => w.addTensor({ name: 'v', shape: [1, 1, 1, 1, 1], type: GGMLType.F32, fill })).toThrow(/dims/)
    expect(() => new GGUFWriter().set('general.alignment', { type: GGUFValueType.UINT32, value: 48 })).toThrow(/power of two/)
    const failing = new GGUFWriter().string('general.architecture', 'x')
    failing.addTensor({ name: 'boom', shape: [4], type: GGMLType.F32, fill: () => { throw new Error('boom') } })
    const file = path.join(tmp(), 'partial.gguf')
    expect(() => failing.write(file)).toThrow('boom')
    expect(fs.existsSync(file)).toBe(false)
  })

  test('custom alignment, every value type, chunked multi-row tensors', () => {
    const w = new GGUFWriter()
    w.string('general.architecture', 'test')
    w.set('general.alignment', { type: GGUFValueType.UINT32, value: 64 })
    w.set('u8', { type: GGUFValueType.UINT8, value: 255 })
    w.set('i8', { type: GGUFValueType.INT8, value: -128 })
    w.set('u16', { type: GGUFValueType.UINT16, value: 65535 })
    w.set('i16', { type: GGUFValueType.INT16, value: -32768 })
    w.int32('i32', -5)
    w.uint64('u64', 2n ** 64n - 1n)
    w.set('i64', { type: GGUFValueType.INT64, value: -(2n ** 63n) })
    w.set('f64', { type: GGUFValueType.FLOAT64, value: Math.PI })
    w.array('bools', GGUFValueType.BOOL, [true, false])
    w.array('u64s', GGUFValueType.UINT64, [1n, 2])
    w.array('empty', GGUFValueType.STRING, [])
    const rows = 3000 // more than one 1 Mi-element chunk
    w.addTensor({ name: 'big', shape: [512, rows], type: GGMLType.F32, fill: (o, s) => { for (let i = 0; i < o.length; i++) o[i] = s + i } })
    w.addTensor({ name: 'h', shape: [3], type: GGMLType.F16, fill: (o) => o.set([1, -2, 0.5]) })
    const file = path.join(tmp(), 'all.gguf')
    w.write(file)
    const g = readGGUF(file)
    expect(g.alignment).toBe(64)
    expect(g.dataOffset % 64).toBe(0)
    expect(getKV(g, 'u8', GGUFValueType.UINT8)).toBe(255)
    expect(getKV(g, 'i8', GGUFValueType.INT8)).toBe(-128)
    expect(getKV(g, 'u16', GGUFValueType.UINT16)).toBe(65535)
    expect(getKV(g, 'i16', GGUFValueType.INT16)).toBe(-32768)
    expect(getKV(g, 'i32', GGUFValueType.INT32)).toBe(-5)
    expect(getKV(g, 'u64', GGUFValueType.UINT64)).toBe(2n ** 64n - 1n)
    expect(getKV(g, 'i64', GGUFValueType.INT64)).toBe(-(2n ** 63n))
    expect(getKV(g, 'f64', GGUFValueType.FLOAT64)).toBe(Math.PI)
    expect(getKV(g, 'bools', GGUFValueType.ARRAY)!.values).toEqual([true, false])
    expect(Array.from(getKV(g, 'u64s', GGUFValueType.ARRAY)!.values as BigUint64Array)).toEqual([1n, 2n])
    expect(getKV(g, 'empty', GGUFValueType.ARRAY)!.values).toEqual([])
    expect(getKV(g, 'u8', GGUFValueType.INT8)).toBeUndefined() // wrong type asked
    const big = readF32(file, g, 'big')
    expect(big[0]).toBe(0)
    expect(big[512 * rows - 1]).toBe(512 * rows - 1)
    expect(big.every((v, i) => v === i)).toBe(true)
    const h = g.tensors.find((t) => t.name === 'h')!
    expect(h.nbytes).toBe(6)
    expect(g.fileSize).toBe(g.dataOffset + alignUp(h.offset + 6, 64))
  })
})

describe('reader: damaged and hostile files', () => {
  let good: Buffer
  beforeAll(() => {
    good = fs.readFileSync(writeTinyPair(tmp()).mmproj)
  })

  const code = (bytes: Uint8Array): string => {
    try {
      parseGGUF(bytes)
      return 'ok'
    } catch (e) {
      if (!(e instanceof GGUFError)) throw e
      return e.code
    }
  }

  /** the tiny file with bytes [at, at + patch.length) replaced */
  const patched = (at: number, patch: number[] | Buffer): Buffer => {
    const b = Buffer.from(good)
    Buffer.from(patch).copy(b, at)
    return b
  }
  const u64 = (v: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b }
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b }

  test('the untouched file parses', () => {
    expect(code(good)).toBe('ok')
  })

  test('header fields', () => {
    expect(code(patched(0, [0x47, 0x47, 0x55, 0x47]))).toBe('ENOTGGUF')
    expect(code(good.subarray(0, 3))).toBe('ENOTGGUF')
    expect(code(patched(4, u32(1)))).toBe('EVERSION')
    expect(code(patched(4, u32(0x03000000)))).toBe('EVERSION') // byte-swapped
    expect(code(patched(8, u64(2n ** 40n)))).toBe('ETRUNCATED') // tensor count
    expect(code(patched(16, u64(2n ** 62n)))).toBe('ELIMIT') // kv count beyond 2^53
    expect(code(patched(24, u64(2n ** 40n)))).toBe('ETRUNCATED') // first key length
  })

  test('truncation anywhere in the header or the data is reported, never thrown raw', () => {
    const g = parseGGUF(good)
    for (let n = 0; n < g.dataOffset; n += 1) {
      expect(['ENOTGGUF', 'ETRUNCATED']).toContain(code(good.subarray(0, n)))
    }
    expect(code(good.subarray(0, g.dataOffset + 10))).toBe('EBOUNDS')
    expect(code(good.subarray(0, good.length - 40))).toBe('EBOUNDS')
  })

  test('bad tensor infos', () => {
    const g = parseGGUF(good)
    const first = g.tensors[0] // v.patch_embd.weight, 4 dims
    // tensor info layout: u64 name length, name, u32 n_dims, n_dims x i64, u32 type, u64 offset
    const infos = good.indexOf(Buffer.from(first.name), 24) - 8
    const dimsAt = infos + 8 + first.name.length
    const typeAt = dimsAt + 4 + 8 * first.shape.length
    expect(good.readUInt32LE(dimsAt)).toBe(4)
    expect(code(patched(dimsAt, u32(5)))).toBe('EBADTENSOR')
    expect(code(patched(dimsAt + 4, u64(2n ** 64n - 1n)))).toBe('EBADTENSOR') // ne[0] = -1
    expect(code(patched(typeAt, u32(4)))).toBe('EBADTENSOR') // removed Q4_2
    expect(code(patched(typeAt, u32(GGMLType.Q8_0)))).toBe('EBADTENSOR') // row of 8 not a block multiple
    expect(code(patched(typeAt + 4, u64(32n)))).toBe('EOFFSET')
  })

  /** a small file with two same-length keys and two same-length tensors, to patch */
  function small(): Buffer {
    const w = new GGUFWriter()
    w.string('general.architecture', 'test')
    w.set('general.alignment', { type: GGUFValueType.UINT32, value: 64 })
    w.bool('aaaa', true)
    w.array('bbbb', GGUFValueType.UINT8, [1, 2, 3])
    w.addTensor({ name: 'ta', shape: [4], type: GGMLType.F32, fill: (o) => o.fill(1) })
    w.addTensor({ name: 'tb', shape: [4], type: GGMLType.F32, fill: (o) => o.fill(2) })
    const file = path.join(tmp(), 'small.gguf')
    w.write(file)
    return fs.readFileSync(file)
  }

  test('duplicates, bad values, bad alignment', () => {
    const b = small()
    expect(code(b)).toBe('ok')
    const edit = (fn: (c: Buffer) => void) => {
      const c = Buffer.from(b)
      fn(c)
      return code(c)
    }
    const a = b.indexOf('aaaa')
    const bb = b.indexOf('bbbb')
    const tb = b.indexOf('tb')
    const align = b.indexOf('general.alignment') + 'general.alignment'.length + 4
    expect(b.readUInt32LE(align)).toBe(64)
    expect(edit((c) => c.write('aaaa', bb))).toBe('EDUPLICATE')
    expect(edit((c) => c.write('ta', tb))).toBe('EDUPLICATE')
    expect(edit((c) => (c[a + 4 + 4] = 2))).toBe('EBADVALUE') // bool byte 2
    expect(edit((c) => c.writeUInt32LE(13, a + 4))).toBe('EBADVALUE') // unknown value type
    expect(edit((c) => c.writeUInt32LE(GGUFValueType.ARRAY, bb + 4 + 4))).toBe('EBADVALUE') // nested array
    expect(edit((c) => c.writeBigUInt64LE(2n ** 50n, bb + 4 + 4 + 4))).toBe('ETRUNCATED') // array length
    expect(edit((c) => c.writeBigUInt64LE(0n, a - 8))).toBe('EBADVALUE') // empty key
    expect(edit((c) => c.writeUInt32LE(48, align))).toBe('EBADALIGN')
    expect(edit((c) => c.writeUInt32LE(GGUFValueType.INT32, align - 4))).toBe('EBADALIGN')
  })

  test('random corruption of the header never escapes as a non-GGUF error', () => {
    const g = parseGGUF(good)
    let state = 12345
    const rnd = (n: number) => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0
      return state % n
    }
    const seen = new Set<string>()
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(good)
      for (let k = 0; k < 1 + rnd(4); k++) b[rnd(g.headerSize)] = rnd(256)
      seen.add(code(b))
    }
    expect(seen.size).toBeGreaterThan(1)
  })

  test('readGGUF and tryReadGGUF on files', () => {
    const dir = tmp()
    expect(tryReadGGUF(path.join(dir, 'missing.gguf'))).toMatchObject({ ok: false, error: { code: 'EIO' } })
    const cut = path.join(dir, 'cut.gguf')
    fs.writeFileSync(cut, good.subarray(0, 100))
    expect(tryReadGGUF(cut)).toMatchObject({ ok: false, error: { code: 'ETRUNCATED' } })
    const whole = path.join(dir, 'whole.gguf')
    fs.writeFileSync(whole, good)
    const r = tryReadGGUF(whole)
    expect(r.ok).toBe(true)
  })
})

describe('ensurePair cache', () => {
  test('generates once, reuses, regenerates damaged files, leaves no temp files', () => {
    const cacheDir = tmp()
    const a = timed('ensurePair(tiny) cold', () => ensurePair('tiny', { cacheDir }))
    expect(hashes(a)).toEqual(TINY_MLP_SHA256)
    expect(path.dirname(a.model)).toBe(path.join(cacheDir, pairCacheKey('tiny')))
    const mtime = fs.statSync(a.model).mtimeMs
    const b = timed('ensurePair(tiny) warm', () => ensurePair('tiny', { cacheDir }))
    expect(b).toEqual(a)
    expect(fs.statSync(b.model).mtimeMs).toBe(mtime)

    fs.truncateSync(a.mmproj, 1000)
    const c = ensurePair('tiny', { cacheDir })
    expect(hashes(c)).toEqual(TINY_MLP_SHA256)

    const g = ensurePair('tiny-gemma3', { cacheDir })
    expect(hashes(g)).toEqual(TINY_GEMMA3_SHA256)
    const walk = (d: string): string[] =>
      fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? [e.name, ...walk(path.join(d, e.name))] : [e.name]))
    expect(walk(cacheDir).filter((f) => f.includes('.tmp'))).toEqual([])
  })

  test('the cache key covers every parameter', () => {
    const keys = new Set([
      pairCacheKey('tiny'),
      pairCacheKey('tiny', { seed: 1 }),
      pairCacheKey('tiny', { textType: 'q4_0' }),
      pairCacheKey('tiny-gemma3'),
      pairCacheKey('bench'),
      pairCacheKey('bench', { textType: 'q8_0' }),
    ])
    expect(keys.size).toBe(6)
    expect(pairCacheKey('tiny', { seed: 42 })).toBe(pairCacheKey('tiny'))
    expect(() => ensurePair('bench', { cacheDir: tmp(), textType: 'f32' })).toThrow(RangeError)
  })

  test('defaults to $LLAVA_NATIVE_CACHE_DIR', () => {
    const cacheDir = tmp()
    const saved = process.env.LLAVA_NATIVE_CACHE_DIR
    process.env.LLAVA_NATIVE_CACHE_DIR = cacheDir
    try {
      expect(ensurePair('tiny').model.startsWith(cacheDir + path.sep)).toBe(true)
    } finally {
      if (saved === undefined) delete process.env.LLAVA_NATIVE_CACHE_DIR
      else process.env.LLAVA_NATIVE_CACHE_DIR = saved
    }
  })
})
