// What `info` reports about a GGUF file, read from its header only (no weights are loaded).
import { type GGUFFile, type GGUFKV, getKV, readGGUF } from '../gguf/reader'
import { GGUFValueType } from '../gguf/types'

// llama.cpp's llama_ftype (include/llama.h): what general.file_type means.
const FILE_TYPES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 7: 'Q8_0', 8: 'Q5_0', 9: 'Q5_1', 10: 'Q2_K', 11: 'Q3_K_S', 12: 'Q3_K_M', 13: 'Q3_K_L',
  14: 'Q4_K_S', 15: 'Q4_K_M', 16: 'Q5_K_S', 17: 'Q5_K_M', 18: 'Q6_K', 19: 'IQ2_XXS', 20: 'IQ2_XS', 21: 'Q2_K_S', 22: 'IQ3_XS',
  23: 'IQ3_XXS', 24: 'IQ1_S', 25: 'IQ4_NL', 26: 'IQ3_S', 27: 'IQ3_M', 28: 'IQ2_S', 29: 'IQ2_M', 30: 'IQ4_XS', 31: 'IQ1_M', 32: 'BF16',
  36: 'TQ1_0', 37: 'TQ2_0', 38: 'MXFP4_MOE', 39: 'NVFP4', 40: 'Q1_0', 41: 'Q2_0',
}

export interface GGUFSummary {
  file: string
  sizeBytes: number
  ggufVersion: number
  /** 'projector' for an mmproj (architecture clip), 'model' otherwise */
  kind: 'model' | 'projector'
  architecture: string | null
  name: string | null
  /** The quantization: general.file_type's name, or (guessed) the type holding most of the weights. */
  fileType: string | null
  fileTypeGuessed: boolean
  parameters: number
  tensors: { count: number; bytes: number; types: Record<string, { count: number; bytes: number }> }
  /** Text models. */
  model: {
    contextLength: number | null
    embeddingLength: number | null
    layers: number | null
    heads: number | null
    headsKv: number | null
    feedForwardLength: number | null
    ropeFreqBase: number | null
    vocabSize: number | null
    tokenizer: string | null
    bosToken: number | null
    eosToken: number | null
  } | null
  /** Projectors (mmproj). */
  projector: {
    type: string | null
    hasVision: boolean
    hasAudio: boolean
    imageSize: number | null
    patchSize: number | null
    embeddingLength: number | null
    layers: number | null
    heads: number | null
    projectionDim: number | null
    imageMean: number[] | null
    imageStd: number[] | null
    /** The audio encoder, when there is one. */
    audio: {
      embeddingLength: number | null
      layers: number | null
      heads: number | null
      melBins: number | null
      /** frames stacked into one token (Ultravox, Voxtral) */
      stackFactor: number | null
      projectionDim: number | null
    } | null
  } | null
  chatTemplate: string | null
  /** Every metadata entry; arrays of more than 16 items as { type, length }. */
  metadata: Record<string, unknown>
}

function num(f: GGUFFile, key: string): number | null {
  const e = f.kv.get(key)
  if (!e) return null
  if (typeof e.value === 'number') return e.value
  if (typeof e.value === 'bigint') return Number(e.value)
  // some converters store per-layer values (e.g. head counts) as arrays: report the first
  if (e.type === GGUFValueType.ARRAY && e.value.values.length > 0) {
    const first: unknown = e.value.values[0]
    if (typeof first === 'number') return first
    if (typeof first === 'bigint') return Number(first)
  }
  return null
}

function str(f: GGUFFile, key: string): string | null {
  return getKV(f, key, GGUFValueType.STRING) ?? null
}

function floats(f: GGUFFile, key: string): number[] | null {
  const a = getKV(f, key, GGUFValueType.ARRAY)
  return a && a.itemType === GGUFValueType.FLOAT32 ? Array.from(a.values) : null
}

function metadataValue(e: GGUFKV): unknown {
  if (e.type !== GGUFValueType.ARRAY) return e.value
  const { itemType, values } = e.value
  if (values.length > 16) return { type: GGUFValueType[itemType], length: values.length }
  return Array.from(values as ArrayLike<unknown>)
}

export function summarize(file: string): GGUFSummary {
  const f = readGGUF(file)
  const architecture = str(f, 'general.architecture')
  const kind = architecture === 'clip' || f.kv.has('clip.projector_type') || f.kv.has('clip.has_vision_encoder') ? 'projector' : 'model'

  const types: GGUFSummary['tensors']['types'] = {}
  let parameters = 0
  let bytes = 0
  for (const t of f.tensors) {
    const entry = (types[t.typeName] ??= { count: 0, bytes: 0 })
    entry.count++
    entry.bytes += t.nbytes
    parameters += t.nElements
    bytes += t.nbytes
  }

  const ftype = num(f, 'general.file_type')
  let fileType = ftype !== null && ftype !== 1024 ? (FILE_TYPES[ftype] ?? `unknown (${ftype})`) : null
  let fileTypeGuessed = false
  if (fileType === null && f.tensors.length > 0) {
    // the type of the matrices holding most bytes (1-d tensors such as norms stay F32 in any file)
    const matrixBytes = new Map<string, number>()
    for (const t of f.tensors) if (t.shape.length >= 2) matrixBytes.set(t.typeName, (matrixBytes.get(t.typeName) ?? 0) + t.nbytes)
    const top = [...matrixBytes].sort((a, b) => b[1] - a[1])[0]
    if (top) {
      fileType = top[0]
      fileTypeGuessed = true
    }
  }

  const a = architecture ?? ''
  const tokens = getKV(f, 'tokenizer.ggml.tokens', GGUFValueType.ARRAY)
  const model: GGUFSummary['model'] =
    kind === 'model'
      ? {
          contextLength: num(f, `${a}.context_length`),
          embeddingLength: num(f, `${a}.embedding_length`),
          layers: num(f, `${a}.block_count`),
          heads: num(f, `${a}.attention.head_count`),
          headsKv: num(f, `${a}.attention.head_count_kv`) ?? num(f, `${a}.attention.head_count`),
          feedForwardLength: num(f, `${a}.feed_forward_length`),
          ropeFreqBase: num(f, `${a}.rope.freq_base`),
          vocabSize: tokens ? tokens.values.length : num(f, `${a}.vocab_size`),
          tokenizer: str(f, 'tokenizer.ggml.model'),
          bosToken: num(f, 'tokenizer.ggml.bos_token_id'),
          eosToken: num(f, 'tokenizer.ggml.eos_token_id'),
        }
      : null
  const projector: GGUFSummary['projector'] =
    kind === 'projector'
      ? {
          type: str(f, 'clip.vision.projector_type') ?? str(f, 'clip.projector_type'),
          hasVision: getKV(f, 'clip.has_vision_encoder', GGUFValueType.BOOL) ?? false,
          hasAudio: getKV(f, 'clip.has_audio_encoder', GGUFValueType.BOOL) ?? false,
          imageSize: num(f, 'clip.vision.image_size'),
          patchSize: num(f, 'clip.vision.patch_size'),
          embeddingLength: num(f, 'clip.vision.embedding_length'),
          layers: num(f, 'clip.vision.block_count'),
          heads: num(f, 'clip.vision.attention.head_count'),
          projectionDim: num(f, 'clip.vision.projection_dim'),
          imageMean: floats(f, 'clip.vision.image_mean'),
          imageStd: floats(f, 'clip.vision.image_std'),
          audio: (getKV(f, 'clip.has_audio_encoder', GGUFValueType.BOOL) ?? false)
            ? {
                embeddingLength: num(f, 'clip.audio.embedding_length'),
                layers: num(f, 'clip.audio.block_count'),
                heads: num(f, 'clip.audio.attention.head_count'),
                melBins: num(f, 'clip.audio.num_mel_bins'),
                stackFactor: num(f, 'clip.audio.projector.stack_factor'),
                projectionDim: num(f, 'clip.audio.projection_dim'),
              }
            : null,
        }
      : null

  const metadata: Record<string, unknown> = {}
  for (const [k, e] of f.kv) metadata[k] = metadataValue(e)

  return {
    file,
    sizeBytes: f.fileSize,
    ggufVersion: f.version,
    kind,
    architecture,
    name: str(f, 'general.name'),
    fileType,
    fileTypeGuessed,
    parameters,
    tensors: { count: f.tensors.length, bytes, types },
    model,
    projector,
    chatTemplate: str(f, 'tokenizer.chat_template'),
    metadata,
  }
}
