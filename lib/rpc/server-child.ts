// The process an RPC server runs in (startRpcServer): ggml's server loop never returns, so it has
// a process of its own, which close() ends. Options come as JSON in argv[2].
import { binding } from '../native'

// parentPid: on Linux the process ends when its parent does, however the parent ended
const options = JSON.parse(process.argv[2] ?? '{}') as { host: string; port: number; devices?: string[]; threads: number; cacheDir?: string; parentPid?: number }
try {
  binding().rpcServe(options)
} catch (err) {
  process.stderr.write(`llava-native rpc-server: ${(err as Error).message}\n`)
  process.exit(3)
}
