// Deterministic, platform-independent weights for synthetic GGUF fixtures.
//
// Value i of tensor `name` under `seed` is a pure function of (seed, name, i): splitmix64's
// finaliser applied to key + (i + 1) * GOLDEN, where key = fnv1a64(name) ^ (seed * GOLDEN).
// This is bit-for-bit the generator of the Python reference
// (/work/shared/reference/synthetic-gguf/make_tiny_vlm_stdlib.py), so the tiny pair can be
// cross-checked against an independent implementation. Being counter-based, any slice of a
// tensor can be generated on its own, which is what lets the writer stream >1 GB files in chunks.
//
// JavaScript has no fast 64-bit integers (BigInt is ~50x slower), so the 64-bit state lives in
// two uint32 halves and the 64x64 multiplies are done with Math.imul plus a 16-bit-limb high
// product. Everything is integer arithmetic, so results cannot depend on the platform's libm.

const GOLD_HI = 0x9e3779b9
const GOLD_LO = 0x7f4a7c15
const M1_HI = 0xbf58476d
const M1_LO = 0x1ce4e5b9
const M2_HI = 0x94d049bb
const M2_LO = 0x133111eb
const M1_L0 = M1_LO & 0xffff
const M1_L1 = M1_LO >>> 16
const M2_L0 = M2_LO & 0xffff
const M2_L1 = M2_LO >>> 16

const TWO_POW_23 = 8388608

/** High 32 bits of the 64-bit product of two uint32 values. */
function mulhi32(a: number, b: number): number {
  const a0 = a & 0xffff
  const a1 = a >>> 16
  const b0 = b & 0xffff
  const b1 = b >>> 16
  const p0 = a0 * b0
  const p1 = a1 * b0
  const p2 = a0 * b1
  // every partial product is < 2^32 and every sum < 2^53, so plain doubles are exact here
  const mid = (p0 >>> 16) + (p1 & 0xffff) + (p2 & 0xffff)
  return (a1 * b1 + (p1 >>> 16) + (p2 >>> 16) + Math.floor(mid / 65536)) >>> 0
}

/** 64-bit a * b mod 2^64, each given as [hi, lo] uint32 halves. */
function mul64(aHi: number, aLo: number, bHi: number, bLo: number): [number, number] {
  const lo = Math.imul(aLo, bLo) >>> 0
  const hi = (mulhi32(aLo, bLo) + Math.imul(aLo, bHi) + Math.imul(aHi, bLo)) >>> 0
  return [hi, lo]
}

function add64(aHi: number, aLo: number, bHi: number, bLo: number): [number, number] {
  const lo = (aLo + bLo) >>> 0
  const carry = lo < aLo ? 1 : 0
  return [(aHi + bHi + carry) >>> 0, lo]
}

/** FNV-1a 64 over the UTF-8 bytes of `s`, as [hi, lo]. */
export function fnv1a64(s: string): [number, number] {
  let hi = 0xcbf29ce4
  let lo = 0x84222325
  for (const byte of Buffer.from(s, 'utf8')) {
    lo = (lo ^ byte) >>> 0
    // multiply by the FNV prime 0x100000001B3 = 2^40 + 0x1B3
    const m = mul64(hi, lo, 0x100, 0x1b3)
    hi = m[0]
    lo = m[1]
  }
  return [hi, lo]
}

function assertSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`)
  }
}

/** The per-tensor 64-bit key: fnv1a64(name) ^ (seed * GOLDEN mod 2^64). */
export function tensorKey(seed: number, name: string): [number, number] {
  assertSeed(seed)
  const [nHi, nLo] = fnv1a64(name)
  const [sHi, sLo] = mul64(0, seed >>> 0, GOLD_HI, GOLD_LO)
  return [(nHi ^ sHi) >>> 0, (nLo ^ sLo) >>> 0]
}

/**
 * Fills `out` with values start .. start + out.length - 1 of the stream for (seed, name),
 * each uniform in [-1, 1) with 24-bit resolution, multiplied by `scale` (the product is
 * rounded to float32 by the Float32Array store, exactly like the reference's f32(v * s)).
 */
export function fillUniform(out: Float32Array, seed: number, name: string, start = 0, scale = 1): void {
  if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`bad start index ${start}`)
  const [kHi, kLo] = tensorKey(seed, name)
  // z = key + start * GOLDEN; the loop adds GOLDEN before mixing, giving key + (i + 1) * GOLDEN
  const off = mul64(Math.floor(start / 4294967296) >>> 0, start >>> 0, GOLD_HI, GOLD_LO)
  const [zHi, zLo] = add64(kHi, kLo, off[0], off[1])
  fillCore(out, zHi | 0, zLo | 0, Math.fround(scale))
}

// The hot loop (~1.4e9 iterations for the bench preset). Written so that V8 keeps every value
// in int32 registers: state and products are signed int32 (`| 0`, Math.imul), unsigned order is
// compared by flipping the sign bit, and mulhi32 is inlined with the constants pre-split into
// 16-bit limbs. Mixing uint32 (`>>> 0`) values above 2^31 in makes V8 fall back to doubles and
// runs 2-3x slower.
const S_GOLD_HI = GOLD_HI | 0
const S_GOLD_LO = GOLD_LO | 0
const S_M1_HI = M1_HI | 0
const S_M1_LO = M1_LO | 0
const S_M2_HI = M2_HI | 0
const S_M2_LO = M2_LO | 0
const SIGN = 0x80000000 | 0
const INV_2_23 = 1 / TWO_POW_23

function fillCore(out: Float32Array, zHi: number, zLo: number, s: number): void {
  const imul = Math.imul
  const n = out.length
  for (let i = 0; i < n; i++) {
    // z += GOLDEN (with carry: lo0 < zLo as unsigned)
    const lo0 = (zLo + S_GOLD_LO) | 0
    zHi = (zHi + S_GOLD_HI + ((lo0 ^ SIGN) < (zLo ^ SIGN) ? 1 : 0)) | 0
    zLo = lo0

    // z ^= z >> 30
    let lo = zLo ^ ((zLo >>> 30) | (zHi << 2))
    let hi = zHi ^ (zHi >>> 30)
    // z *= M1
    let a0 = lo & 0xffff
    let a1 = lo >>> 16
    let p1 = imul(a1, M1_L0)
    let p2 = imul(a0, M1_L1)
    let mid = (imul(a0, M1_L0) >>> 16) + (p1 & 0xffff) + (p2 & 0xffff)
    let mh = (imul(a1, M1_L1) + (p1 >>> 16) + (p2 >>> 16) + (mid >>> 16)) | 0
    const h1 = (mh + imul(lo, S_M1_HI) + imul(hi, S_M1_LO)) | 0
    lo = imul(lo, S_M1_LO)
    hi = h1
    // z ^= z >> 27
    lo = lo ^ ((lo >>> 27) | (hi << 5))
    hi = hi ^ (hi >>> 27)
    // z *= M2; only the top 24 bits are used, and the final `z ^= z >> 31` of splitmix64
    // cannot change bits 40..63, so only the high word is computed and that step is skipped.
    a0 = lo & 0xffff
    a1 = lo >>> 16
    p1 = imul(a1, M2_L0)
    p2 = imul(a0, M2_L1)
    mid = (imul(a0, M2_L0) >>> 16) + (p1 & 0xffff) + (p2 & 0xffff)
    mh = (imul(a1, M2_L1) + (p1 >>> 16) + (p2 >>> 16) + (mid >>> 16)) | 0
    const h2 = (mh + imul(lo, S_M2_HI) + imul(hi, S_M2_LO)) | 0

    out[i] = ((h2 >>> 8) * INV_2_23 - 1) * s
  }
}

/** Convenience: a fresh array of `n` values (small tensors and tests only). */
export function uniform(seed: number, name: string, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n)
  fillUniform(out, seed, name, 0, scale)
  return out
}
