// Models over several machines: ggml's RPC backend (llama.cpp's rpc-server protocol).
export { startRpcServer } from './server'
export type { RpcServer, StartRpcServerOptions } from './server'
export type { RpcTimeouts } from './options'
