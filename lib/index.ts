export { LlavaError } from './errors'
export type { LlavaErrorCode } from './errors'
export { listDevices, systemInfo } from './system'
export type { DeviceInfo, ListDevicesOptions, SystemInfo } from './system'
export { startRpcServer } from './rpc'
export type { RpcServer, RpcTimeouts, StartRpcServerOptions } from './rpc'
export type { CpuBudget, CpuWait, CpuWaitInfo } from './cpu'
export { AUTO_SPIN_COUNT, setCpuWait } from './cpu'
export { loadModel, Model } from './model'
export { resolveModel, listCachedModels, removeCachedModel } from './hub'
export type { ResolveModelOptions, ResolvedModel, ResolvedFile, DownloadProgress, CachedModel } from './hub'
export type { Isolation } from './isolation'
export type { LoadModelOptions, ModelInfo, EncodeImageOptions, EncodeAudioOptions, RenderedChatInfo, TokenCount } from './model'
export { ImageEmbedding } from './image'
export type { ImageBackground, ImageInput, RawImage } from './image'
export { AudioEmbedding } from './audio'
export type { AudioInput, RawAudio } from './audio'
export { MediaEmbedding } from './media/embedding'
export type { MediaInput } from './media/input'
export { Session } from './session'
export { SessionGroup } from './session-group'
export type { SessionGroupOptions } from './session-group'
export type {
  SessionOptions,
  GenerateOptions,
  CompleteOptions,
  CompletionResult,
  GeneratedPiece,
  TokenChoice,
  TokenLogprob,
  GenerationStream,
  StopReason,
  ChatOptions,
  ChatResult,
  ChatStream,
} from './session'
export type {
  ChatMessage,
  ChatContentPart,
  ChatRole,
  ChatMessageToolCall,
  ChatRenderOptions,
  ChatTool,
  ReasoningOptions,
  ToolCall,
  ChatPiece,
} from './chat'
export type { ResponseFormat } from './structured/response-format'
export type { JsonSchemaToType, ResponseJson } from './structured/schema-type'
export { SCHEMA_LIMITS } from './structured/response-format'
export { setLogger } from './logging'
export type { LogLevel } from './logging'
