// Hostile sound files and audio projectors, built at test time from the generated ones. Each case
// names the code it must be refused with and, where it matters, what the message says.
import * as fs from 'node:fs'
import { flac16, tones, wav16 } from '../helpers/audio'

export interface SoundCase {
  name: string
  make: () => Buffer
  /** always ERR_AUDIO_DECODE; `says`: a part of the message */
  says: string
  /** its header is sound, the damage shows only when decoding: countTokens (headers only) counts it */
  headerOnly?: boolean
}

const good = (): Buffer => wav16(tones(2, 16000, 1, 9), 16000)
const patched = (patch: (b: Buffer) => void) => (): Buffer => {
  const b = good()
  patch(b)
  return b
}

export const SOUND_CASES: SoundCase[] = [
  { name: 'truncated: half its data gone', make: () => good().subarray(0, 44 + (good().length - 44) / 2), says: 'truncated' },
  { name: 'a header and garbage', make: () => Buffer.concat([good().subarray(0, 12), Buffer.from('garbage garbage garbage')]), says: '' },
  { name: 'claims 37 hours (data size 4 GiB) and holds 2 s', make: patched((b) => b.writeUInt32LE(0xfffffff0, 40)), says: 'truncated' },
  { name: 'a sample rate of 1 Hz', make: patched((b) => b.writeUInt32LE(1, 24)), says: 'sample rate' },
  { name: 'a sample rate of 4 GHz', make: patched((b) => b.writeUInt32LE(4_000_000_000, 24)), says: '' },
  { name: '65535 channels', make: patched((b) => b.writeUInt16LE(65535, 22)), says: '' },
  { name: 'no samples', make: () => wav16(new Float32Array(0), 16000), says: '' },
  { name: 'one sample', make: () => wav16(new Float32Array([0.5]), 16000), says: 'at least 100 ms' },
  // mtmd's preprocessors need whole frames: LFM2-Audio's asserts on fewer than two 10 ms hops
  { name: '50 ms', make: () => wav16(tones(0.05, 16000, 1, 3), 16000), says: 'at least 100 ms' },
  { name: 'empty', make: () => Buffer.alloc(0), says: '' },
  { name: 'an MP3 sync word and noise', make: () => Buffer.concat([Buffer.from([0xff, 0xfb, 0x90, 0x00]), Buffer.alloc(64, 0x55)]), says: '' },
  { name: 'fLaC and nothing', make: () => Buffer.from('fLaC'), says: '' },
  { name: 'a FLAC cut before its stated length', make: () => flac16(tones(1, 16000, 1, 4), 16000).subarray(0, 12000), says: 'truncated', headerOnly: true },
]

export interface AudioProjectorCase {
  name: string
  edit: (b: Buffer) => Buffer
  code: string
  says: string
}

// GGUF byte edits that keep the file readable: a tensor renamed to a name of the same length, a
// tensor's dimensions (with the element count kept: GGUF's own parser checks the data layout), a
// UINT32 key's value. Tensor info: name, n_dims u32, ne u64 each, type, offset.
function rename(b: Buffer, from: string, to: string): Buffer {
  const at = b.indexOf(Buffer.from(from, 'latin1'))
  if (at < 0 || from.length !== to.length) throw new Error(`cannot rename ${from}`)
  b.write(to, at, 'latin1')
  return b
}

function setDims(b: Buffer, name: string, ne: number[]): Buffer {
  const key = Buffer.alloc(8 + name.length)
  key.writeBigUInt64LE(BigInt(name.length))
  key.write(name, 8, 'latin1')
  const at = b.indexOf(key)
  if (at < 0 || b.readUInt32LE(at + key.length) !== ne.length) throw new Error(`no ${ne.length}-D tensor ${name}`)
  ne.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), at + key.length + 4 + 8 * i))
  return b
}

function setU32(b: Buffer, name: string, value: number): Buffer {
  const at = b.indexOf(Buffer.from(name, 'latin1'))
  if (at < 0) throw new Error(`no key ${name}`)
  b.writeUInt32LE(value, at + name.length + 4)
  return b
}

/**
 * Edits of the tiny Ultravox projector: what llama.cpp's Whisper graph would dereference, assert
 * on or multiply with the wrong width (bench/fuzz.js found the first: one flipped byte in a
 * tensor name, and a segmentation fault).
 */
export const AUDIO_PROJECTOR_CASES: AudioProjectorCase[] = [
  { name: 'a layer without its value projection', edit: (b) => rename(b, 'a.blk.0.attn_v.weight', 'a.blk.0.attn_v.weighT'), code: 'ERR_MMPROJ_LOAD', says: 'attn_v.weight' },
  { name: 'a layer norm without its bias (the graph asserts)', edit: (b) => rename(b, 'a.blk.1.ln2.bias', 'a.blk.1.ln2.biaS'), code: 'ERR_MMPROJ_LOAD', says: 'ln2.bias' },
  { name: 'a key bias instead of a query bias', edit: (b) => rename(b, 'a.blk.0.attn_q.bias', 'a.blk.0.attn_k.bias'), code: 'ERR_MMPROJ_LOAD', says: 'attn_' },
  { name: 'positions for 15 s, twice as wide', edit: (b) => setDims(b, 'a.position_embd.weight', [128, 750]), code: 'ERR_MMPROJ_LOAD', says: '1500 or more' },
  { name: '64 mel bins in the first convolution, 128 in the key', edit: (b) => setDims(b, 'a.conv1d.1.weight', [3, 64, 128]), code: 'ERR_MMPROJ_LOAD', says: 'a.conv1d.1.weight' },
  { name: 'a stack factor of 0', edit: (b) => setU32(b, 'clip.audio.projector.stack_factor', 0), code: 'ERR_MMPROJ_LOAD', says: 'stack_factor' },
  { name: 'a last projection that takes another width than the one before gives', edit: (b) => setDims(b, 'mm.a.mlp.2.weight', [128, 32]), code: 'ERR_MMPROJ_LOAD', says: 'mm.a.mlp.2.weight' },
  { name: 'no mel bin count', edit: (b) => rename(b, 'clip.audio.num_mel_bins', 'clip.audio.num_mel_binZ'), code: 'ERR_MMPROJ_LOAD', says: 'num_mel_bins' },
]

/** A projector file edited by `c`, written to `file`. */
export function writeEdited(source: string, file: string, c: AudioProjectorCase): string {
  fs.writeFileSync(file, c.edit(fs.readFileSync(source)))
  return file
}
