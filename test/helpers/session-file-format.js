// Reads and rewrites llava-native's session files (format version 2) for tests: the header
// fields, the record, llama.cpp's state, and a correct checksum after an edit.
'use strict'
const { xxh64 } = require('./xxh64')

const HEADER = 8 + 4 + 8 + 8 + 8 + 4 + 4 + 4 + 4 + 4 + 8 + 8 + 8
const CHECKSUM_AT = HEADER

function parse(buf) {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const h = {
    magic: buf.toString('latin1', 0, 8),
    version: v.getUint32(8, true),
    textFingerprint: v.getBigUint64(12, true),
    projectorFingerprint: v.getBigUint64(20, true),
    params: v.getBigUint64(28, true),
    embd: v.getInt32(36, true),
    vocab: v.getInt32(40, true),
    layers: v.getInt32(44, true),
    savedCtx: v.getUint32(48, true),
    nPast: v.getInt32(52, true),
    items: Number(v.getBigUint64(56, true)),
    recordBytes: Number(v.getBigUint64(64, true)),
    stateBytes: Number(v.getBigUint64(72, true)),
    checksum: v.getBigUint64(CHECKSUM_AT, true),
  }
  const recordAt = HEADER + 8
  const stateAt = recordAt + h.recordBytes
  return { header: h, recordAt, stateAt }
}

/** The checksum the file should carry: XXH64 of everything but the checksum field. */
function checksumOf(buf) {
  return xxh64(Buffer.concat([buf.subarray(0, CHECKSUM_AT), buf.subarray(CHECKSUM_AT + 8)]))
}

/** Writes the right checksum into `buf` (after an edit). */
function reseal(buf) {
  buf.writeBigUInt64LE(checksumOf(buf), CHECKSUM_AT)
  return buf
}

/**
 * Offsets of llama.cpp's KV state inside the file: the stream count, and for the first non-empty
 * stream its cell count and the first cell (each cell: i32 pos, u32 n_seq_id, i32 seq id).
 */
function kvLayout(buf) {
  const { stateAt } = parse(buf)
  const streamsAt = stateAt + 8
  const streams = buf.readUInt32LE(streamsAt)
  let at = streamsAt + 4
  for (let s = 0; s < streams; s++, at += 4) {
    const cells = buf.readUInt32LE(at)
    if (cells > 0) return { streamsAt, cellCountAt: at, cells, firstCellAt: at + 4, cellBytes: 12 }
  }
  return { streamsAt, cellCountAt: -1, cells: 0, firstCellAt: -1, cellBytes: 12 }
}

module.exports = { HEADER, CHECKSUM_AT, parse, checksumOf, reseal, kvLayout }
