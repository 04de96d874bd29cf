// XXH64 (seed 0), the checksum of llava-native's session files, in plain JavaScript: tests use it
// to write files whose checksum is right but whose content is hostile.
'use strict'
const M = (1n << 64n) - 1n
const P1 = 0x9e3779b185ebca87n
const P2 = 0xc2b2ae3d27d4eb4fn
const P3 = 0x165667b19e3779f9n
const P4 = 0x85ebca77c2b2ae63n
const P5 = 0x27d4eb2f165667c5n

const rotl = (x, r) => ((x << r) | (x >> (64n - r))) & M
const round = (acc, input) => (rotl((acc + input * P2) & M, 31n) * P1) & M
const merge = (acc, v) => (((acc ^ round(0n, v)) * P1 + P4) & M)

function xxh64(buf, seed = 0n) {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const len = buf.length
  let i = 0
  let h
  if (len >= 32) {
    let v1 = (seed + P1 + P2) & M
    let v2 = (seed + P2) & M
    let v3 = seed
    let v4 = (seed - P1) & M
    for (; i <= len - 32; i += 32) {
      v1 = round(v1, view.getBigUint64(i, true))
      v2 = round(v2, view.getBigUint64(i + 8, true))
      v3 = round(v3, view.getBigUint64(i + 16, true))
      v4 = round(v4, view.getBigUint64(i + 24, true))
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M
    h = merge(merge(merge(merge(h, v1), v2), v3), v4)
  } else {
    h = (seed + P5) & M
  }
  h = (h + BigInt(len)) & M
  for (; i + 8 <= len; i += 8) {
    h ^= round(0n, view.getBigUint64(i, true))
    h = (rotl(h, 27n) * P1 + P4) & M
  }
  if (i + 4 <= len) {
    h ^= (BigInt(view.getUint32(i, true)) * P1) & M
    h = (rotl(h, 23n) * P2 + P3) & M
    i += 4
  }
  for (; i < len; i++) {
    h ^= (BigInt(buf[i]) * P5) & M
    h = (rotl(h, 11n) * P1) & M
  }
  h ^= h >> 33n
  h = (h * P2) & M
  h ^= h >> 29n
  h = (h * P3) & M
  h ^= h >> 32n
  return h
}

module.exports = { xxh64 }
