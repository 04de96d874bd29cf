// Sound for the audio tests, generated: deterministic tones and noise, written as WAV (16-bit PCM
// or 32-bit float) and as FLAC (verbatim subframes: lossless, so the same samples as the WAV).

/** Interleaved samples in [-1, 1]: a sequence of tones with a little noise, different per seed. */
export function tones(seconds: number, rate = 16000, channels = 1, seed = 1): Float32Array {
  let state = seed >>> 0 || 1
  const rand = (): number => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) / 0x100000000
  }
  const n = Math.round(seconds * rate)
  const freqs = Array.from({ length: 8 }, () => 100 + rand() * 1900)
  const out = new Float32Array(n * channels)
  for (let i = 0; i < n; i++) {
    const f = freqs[Math.floor((i * freqs.length) / n)]
    for (let c = 0; c < channels; c++) {
      const v = 0.4 * Math.sin((2 * Math.PI * f * (c + 1) * i) / rate) + 0.05 * (rand() * 2 - 1)
      // on the 16-bit grid as decoders read it (k / 32768): WAV, FLAC and raw PCM hold the same samples
      out[i * channels + c] = Math.max(-32768, Math.min(32767, Math.round(v * 32768))) / 32768
    }
  }
  return out
}

function riff(fmt: Buffer, data: Buffer): Buffer {
  const head = Buffer.alloc(12)
  head.write('RIFF', 0, 'latin1')
  head.writeUInt32LE(4 + 8 + fmt.length + 8 + data.length, 4)
  head.write('WAVE', 8, 'latin1')
  const fmtHead = Buffer.alloc(8)
  fmtHead.write('fmt ', 0, 'latin1')
  fmtHead.writeUInt32LE(fmt.length, 4)
  const dataHead = Buffer.alloc(8)
  dataHead.write('data', 0, 'latin1')
  dataHead.writeUInt32LE(data.length, 4)
  return Buffer.concat([head, fmtHead, fmt, dataHead, data])
}

// The fmt chunk: format 1 (PCM) or 3 (IEEE float), sample size in bytes.
function fmtChunk(format: 1 | 3, bytes: number, rate: number, channels: number): Buffer {
  const fmt = Buffer.alloc(16)
  fmt.writeUInt16LE(format, 0)
  fmt.writeUInt16LE(channels, 2)
  fmt.writeUInt32LE(rate, 4)
  fmt.writeUInt32LE(rate * channels * bytes, 8)
  fmt.writeUInt16LE(channels * bytes, 12)
  fmt.writeUInt16LE(8 * bytes, 14)
  return fmt
}

/** A 16-bit PCM WAV file. */
export function wav16(samples: Float32Array, rate: number, channels = 1): Buffer {
  const data = Buffer.alloc(samples.length * 2)
  for (let i = 0; i < samples.length; i++) data.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32768))), i * 2)
  return riff(fmtChunk(1, 2, rate, channels), data)
}

/** A 32-bit IEEE float WAV file. */
export function wavFloat(samples: Float32Array, rate: number, channels = 1): Buffer {
  return riff(fmtChunk(3, 4, rate, channels), Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength))
}

class Bits {
  private bytes: number[] = []
  private acc = 0
  private n = 0
  put(value: number, bits: number): void {
    for (let i = bits - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | (Math.floor(value / 2 ** i) & 1)
      if (++this.n === 8) {
        this.bytes.push(this.acc & 0xff)
        this.acc = 0
        this.n = 0
      }
    }
  }
  align(): void {
    while (this.n !== 0) this.put(0, 1)
  }
  get length(): number {
    return this.bytes.length
  }
  take(): number[] {
    return this.bytes
  }
}

function crc8(bytes: number[]): number {
  let crc = 0
  for (const b of bytes) {
    crc ^= b
    for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff
  }
  return crc
}

function crc16(bytes: number[]): number {
  let crc = 0
  for (const b of bytes) {
    crc ^= b << 8
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x8005) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}

// FLAC's UTF-8-like coding of the frame number
function utf8Number(v: number): number[] {
  if (v < 0x80) return [v]
  if (v < 0x800) return [0xc0 | (v >> 6), 0x80 | (v & 0x3f)]
  if (v < 0x10000) return [0xe0 | (v >> 12), 0x80 | ((v >> 6) & 0x3f), 0x80 | (v & 0x3f)]
  return [0xf0 | (v >> 18), 0x80 | ((v >> 12) & 0x3f), 0x80 | ((v >> 6) & 0x3f), 0x80 | (v & 0x3f)]
}

/** A 16-bit FLAC file with verbatim (uncompressed) subframes: what a WAV holds, losslessly. */
export function flac16(samples: Float32Array, rate: number, channels = 1): Buffer {
  const frames = samples.length / channels
  const block = 4096
  const info = new Bits()
  info.put(block, 16)
  info.put(block, 16)
  info.put(0, 24)
  info.put(0, 24)
  info.put(rate, 20)
  info.put(channels - 1, 3)
  info.put(15, 5)
  info.put(Math.floor(frames / 2 ** 32), 4)
  info.put(frames % 2 ** 32, 32)
  for (let i = 0; i < 16; i++) info.put(0, 8) // no MD5
  const out: number[] = [...Buffer.from('fLaC', 'latin1'), 0x80, 0, 0, 34, ...info.take()]
  for (let f = 0, start = 0; start < frames; f++, start += block) {
    const size = Math.min(block, frames - start)
    const head = new Bits()
    head.put(0x3ffe, 14)
    head.put(0, 1)
    head.put(0, 1) // fixed block size
    head.put(7, 4) // block size: 16 bits follow
    head.put(0, 4) // sample rate: from STREAMINFO
    head.put(channels - 1, 4) // independent channels
    head.put(4, 3) // 16 bits a sample
    head.put(0, 1)
    for (const b of utf8Number(f)) head.put(b, 8)
    head.put(size - 1, 16)
    const headBytes = head.take()
    const frame = new Bits()
    for (const b of headBytes) frame.put(b, 8)
    frame.put(crc8(headBytes), 8)
    for (let c = 0; c < channels; c++) {
      frame.put(0, 1)
      frame.put(1, 6) // VERBATIM
      frame.put(0, 1)
      for (let i = 0; i < size; i++) {
        const v = Math.max(-32768, Math.min(32767, Math.round(samples[(start + i) * channels + c] * 32768)))
        frame.put(v < 0 ? v + 65536 : v, 16)
      }
    }
    frame.align()
    const bytes = frame.take()
    out.push(...bytes, ...[crc16(bytes) >> 8, crc16(bytes) & 0xff])
  }
  return Buffer.from(out)
}
