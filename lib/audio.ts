// Sound for audio-capable projectors (Ultravox, Qwen2-Audio, Qwen2.5-Omni, Voxtral, Gemma 3n/4,
// LFM2-Audio, …): inputs, and the encoded handle.

import { LlavaError } from './errors'
import { MediaEmbedding } from './media/embedding'
import type { NativeAudioInput, NativeEmbedding } from './native-types'
import { invalid } from './validate'

/** Raw PCM: float samples in [-1, 1], interleaved when there are several channels. */
export interface RawAudio {
  samples: Float32Array
  /** Hz, 1000 to 384000. */
  sampleRate: number
  /** 1 (default) to 32; mixed down to mono before encoding. */
  channels?: number
}

/**
 * Sound to listen to: a file path; a Buffer/Uint8Array/ArrayBuffer holding a WAV, MP3 or FLAC
 * file; or raw PCM. Decoded in-process (miniaudio, as llama.cpp's tools do) and resampled to the
 * model's rate.
 */
export type AudioInput = string | Uint8Array | ArrayBuffer | RawAudio

/** Default ceiling on a sound's length: 10 minutes. */
export const DEFAULT_MAX_AUDIO_SECONDS = 600
/** The largest maxAudioSeconds accepted: 4 hours. */
export const MAX_AUDIO_SECONDS = 4 * 3600

/**
 * @internal An input that is a sound whatever its bytes look like (a chat's audio part): told to
 * the native side as audio, which refuses it with ERR_AUDIO_DECODE if it is not.
 */
export class AsAudio {
  constructor(readonly input: AudioInput | { readonly bytes: unknown }) {}
}

export function isRawAudio(x: unknown): x is RawAudio {
  return x !== null && typeof x === 'object' && 'samples' in x && 'sampleRate' in x
}

/** Whether these first bytes start a WAV, MP3 or FLAC file (the test mtmd's own helper makes). */
export function looksLikeAudio(b: Uint8Array): boolean {
  const ascii = (at: number, s: string): boolean => b.length >= at + s.length && [...s].every((c, i) => b[at + i] === c.charCodeAt(0))
  if (ascii(0, 'RIFF') && ascii(8, 'WAVE')) return true
  if (ascii(0, 'fLaC') || ascii(0, 'ID3')) return true
  return b.length >= 2 && b[0] === 0xff && (b[1] & 0xe0) === 0xe0
}

export function toNativeAudio(input: unknown, option: string, maxSeconds: number): NativeAudioInput {
  if (typeof input === 'string') {
    if (input.length === 0 || input.includes('\0')) throw invalid(option, 'a file path, audio file bytes or raw PCM', input)
    return { kind: 'audio', source: 'path', path: input, maxSeconds }
  }
  if (input instanceof ArrayBuffer) return { kind: 'audio', source: 'bytes', data: new Uint8Array(input), maxSeconds }
  if (input instanceof Uint8Array) return { kind: 'audio', source: 'bytes', data: input, maxSeconds }
  if (isRawAudio(input)) {
    const { samples, sampleRate } = input
    const channels = input.channels ?? 1
    if (!(samples instanceof Float32Array)) throw invalid(`${option}.samples`, 'a Float32Array of samples', samples)
    if (!Number.isInteger(sampleRate) || sampleRate < 1000 || sampleRate > 384000) {
      throw invalid(`${option}.sampleRate`, 'an integer number of Hz between 1000 and 384000', sampleRate)
    }
    if (!Number.isInteger(channels) || channels < 1 || channels > 32) throw invalid(`${option}.channels`, 'an integer between 1 and 32', channels)
    if (samples.length === 0 || samples.length % channels !== 0) {
      throw new LlavaError('ERR_INVALID_ARGUMENT', `${option}.samples has ${samples.length} values: give a non-empty whole number of frames of ${channels} channel(s)`, {
        details: { option: `${option}.samples` },
      })
    }
    const seconds = samples.length / channels / sampleRate
    if (seconds > maxSeconds) {
      throw new LlavaError('ERR_AUDIO_DECODE', `${option} is ${seconds.toFixed(1)} s long, more than the limit of ${maxSeconds} s (raise maxAudioSeconds to allow it, or cut the sound first)`)
    }
    const data = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength)
    return { kind: 'audio', source: 'pcm', data, sampleRate, channels, maxSeconds }
  }
  throw invalid(option, 'a file path, a Buffer/Uint8Array of a WAV, MP3 or FLAC file, raw PCM { samples, sampleRate, channels } or an AudioEmbedding', input)
}

/**
 * An encoded sound: the audio encoder's output, reusable in any prompt or session of the model
 * that made it without encoding again. Dispose it when done, or let the model's dispose() do it.
 */
export class AudioEmbedding extends MediaEmbedding {
  /** Mono samples after resampling to `sampleRate`. */
  readonly samples: number
  /** The model's audio rate, Hz (16000 for Whisper-based encoders). */
  readonly sampleRate: number
  /** The sound's length. */
  readonly durationMs: number

  /** @internal */
  constructor(native: NativeEmbedding, owner: object, onDispose: (e: MediaEmbedding) => void) {
    super(native, owner, onDispose, 'audio embedding', 'encode the sound again with model.encodeAudio()')
    const info = native.info()
    this.samples = info.samples
    this.sampleRate = info.sampleRate
    this.durationMs = info.sampleRate > 0 ? (info.samples * 1000) / info.sampleRate : 0
  }
}
