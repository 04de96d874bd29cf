// GGUF v3 reading and writing (no dependencies beyond node built-ins).

export * from './types'
export { GGUFWriter } from './writer'
export type { GGUFMetadataValue, GGUFScalar, TensorSpec, WritableTensorType, WriteResult } from './writer'
export { GGUFError, getKV, parseGGUF, readGGUF, tryReadGGUF } from './reader'
export type { GGUFArrayValue, GGUFErrorCode, GGUFFile, GGUFKV, GGUFTensorInfo } from './reader'
export { encodeF16, encodeQ4_0, encodeQ8_0, f16BitsToF32, f32ToF16Bits } from './quants'
export { fillUniform, fnv1a64, tensorKey, uniform } from './random'
