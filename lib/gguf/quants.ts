// Encoders from float32 to the ggml storage types the fixtures use.
//
// They reproduce ggml's reference quantisers (ggml/src/ggml-quants.c: quantize_row_q8_0_ref,
// quantize_row_q4_0_ref) bit for bit, including their float32 intermediate roundings, so that a
// file written here has the same bytes llama-quantize would produce from the same F32 weights.
// Math.fround after each step stands in for C's float arithmetic: for +, -, *, / of two floats,
// rounding the exact double result to float gives the correctly rounded float result.

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** float32 -> IEEE half bits, round-to-nearest-even; NaN -> 0x7E00 like ggml_compute_fp32_to_fp16. */
export function f32ToF16Bits(value: number): number {
  f32[0] = value
  return f32BitsToF16Bits(u32[0])
}

function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00)
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    // half subnormal (or zero): shift the full 24-bit significand into place
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    let h = mant >>> shift
    const rem = mant & ((1 << shift) - 1)
    const halfway = 1 << (shift - 1)
    if (rem > halfway || (rem === halfway && (h & 1) !== 0)) h++
    return sign | h
  }
  let h = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  // a carry out of the mantissa correctly bumps the exponent, up to infinity
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++
  return sign | h
}

/** IEEE half bits -> number (for tests and the reader). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant ? NaN : sign * Infinity
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}

/** Encodes src as little-endian F16 into dst (2 bytes per value). */
export function encodeF16(src: Float32Array, dst: Uint8Array): void {
  if (dst.length < src.length * 2) throw new RangeError('F16 destination too small')
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length)
  for (let i = 0, o = 0; i < bits.length; i++, o += 2) {
    const h = f32BitsToF16Bits(bits[i])
    dst[o] = h & 0xff
    dst[o + 1] = h >>> 8
  }
}

/** Q8_0: per 32 values, fp16 d = amax / 127 then 32 int8 round(x / d) (roundf: half away from 0). */
export function encodeQ8_0(src: Float32Array, dst: Uint8Array): void {
  const n = src.length
  if (n % 32 !== 0) throw new RangeError('Q8_0 needs a multiple of 32 values')
  if (dst.length < (n / 32) * 34) throw new RangeError('Q8_0 destination too small')
  const fr = Math.fround
  for (let b = 0, o = 0; b < n; b += 32, o += 34) {
    let amax = 0
    for (let j = 0; j < 32; j++) {
      const a = Math.abs(src[b + j])
      if (a > amax) amax = a
    }
    const d = fr(amax / 127)
    const id = d !== 0 ? fr(1 / d) : 0
    const h = f32ToF16Bits(d)
    dst[o] = h & 0xff
    dst[o + 1] = h >>> 8
    for (let j = 0; j < 32; j++) {
      // roundf rounds halves away from zero. ((x + 128.5) | 0) - 128 is floor(x + 0.5), i.e.
      // halves rounded up (exact: |x| <= 127 and x is a float); then fix the negative ties, a
      // rare and well-predicted branch (branching on the sign of x is 2x slower on random data)
      const x = fr(src[b + j] * id)
      let q = ((x + 128.5) | 0) - 128
      if (q - x === 0.5 && x < 0) q -= 1
      dst[o + 2 + j] = q
    }
  }
}

/**
 * Q4_0: per 32 values, fp16 d = max / -8 where max is the value of largest magnitude (sign kept),
 * then 16 bytes; byte j holds element j in its low nibble and element j + 16 in its high nibble,
 * each stored as min(15, trunc(x / d + 8.5)).
 */
export function encodeQ4_0(src: Float32Array, dst: Uint8Array): void {
  const n = src.length
  if (n % 32 !== 0) throw new RangeError('Q4_0 needs a multiple of 32 values')
  if (dst.length < (n / 32) * 18) throw new RangeError('Q4_0 destination too small')
  const fr = Math.fround
  for (let b = 0, o = 0; b < n; b += 32, o += 18) {
    let amax = 0
    let max = 0
    for (let j = 0; j < 32; j++) {
      const v = src[b + j]
      const a = Math.abs(v)
      if (amax < a) {
        amax = a
        max = v
      }
    }
    const d = fr(max / -8)
    const id = d !== 0 ? fr(1 / d) : 0
    const h = f32ToF16Bits(d)
    dst[o] = h & 0xff
    dst[o + 1] = h >>> 8
    for (let j = 0; j < 16; j++) {
      // x * id lies in [-8, 8], so x + 8.5 is positive and `| 0` is C's truncating (int8_t) cast
      const x0 = fr(fr(src[b + j] * id) + 8.5) | 0
      const x1 = fr(fr(src[b + 16 + j] * id) + 8.5) | 0
      dst[o + 2 + j] = (x0 > 15 ? 15 : x0) | ((x1 > 15 ? 15 : x1) << 4)
    }
  }
}
