export { LlavaError } from './errors'
export type { LlavaErrorCode } from './errors'
export { systemInfo } from './system'
export type { SystemInfo } from './system'
