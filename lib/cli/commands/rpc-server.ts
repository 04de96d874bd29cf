// llava-native rpc-server: this machine's devices for models loaded elsewhere (loadModel's rpcServers).
import type { Command } from 'commander'
import { startRpcServer } from '../../rpc'
import { CliError, EXIT, EXIT_CODES_HELP } from '../exit'

const SECURITY = `Security: the RPC protocol has no authentication and no encryption. Whoever reaches
the port can run computations on this machine and read or write the memory it serves. The
server listens on 127.0.0.1 unless --allow-remote is given; with it, run it only on a private
network or reach it through an SSH tunnel or WireGuard, never exposed to the internet.`

export function register(program: Command): void {
  program
    .command('rpc-server')
    .summary("serve this machine's devices to models loaded elsewhere (ggml RPC)")
    .description(
      "Runs ggml's RPC server (the protocol of llama.cpp's rpc-server) so that a model loaded on another machine, or in another process, can place layers on this machine's devices: loadModel({ rpcServers: ['host:port'] }). Runs until stopped with Ctrl-C.\n\n" +
        SECURITY,
    )
    .option('--host <address>', 'IPv4 address to listen on; anything but 127.x needs --allow-remote', '127.0.0.1')
    .option('--port <n>', 'TCP port', '50052')
    .option('--device <name...>', 'devices to serve (see listDevices()); default: the GPUs, else the CPU')
    .option('--threads <n>', 'CPU threads for the CPU device', '4')
    .option('--cache <dir>', "keep received tensors in this folder by hash, so that a client's next load sends less")
    .option('--allow-remote', 'listen on a non-loopback address (read the security note)')
    .addHelpText(
      'after',
      `
Examples:
  llava-native rpc-server --port 50052
  ssh -L 50052:127.0.0.1:50052 gpu-box   # then use rpcServers: ['127.0.0.1:50052'] here
  llava-native rpc-server --host 10.0.0.5 --allow-remote --device CUDA0

${EXIT_CODES_HELP}`,
    )
    .action(async (flags: { host: string; port: string; device?: string[]; threads: string; cache?: string; allowRemote?: boolean }) => serve(flags))
}

function integer(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new CliError(EXIT.USAGE, `${flag} must be a whole number, not ${JSON.stringify(value)}`)
  return Number(value)
}

async function serve(flags: { host: string; port: string; device?: string[]; threads: string; cache?: string; allowRemote?: boolean }): Promise<void> {
  const port = integer('--port', flags.port)
  const threads = integer('--threads', flags.threads)
  if (flags.allowRemote && !flags.host.startsWith('127.')) {
    process.stderr.write(`llava-native rpc-server: WARNING: listening on ${flags.host}, reachable from other machines.\n${SECURITY}\n`)
  }
  const server = await startRpcServer({
    host: flags.host,
    port,
    threads,
    devices: flags.device,
    cacheDir: flags.cache,
    allowRemote: Boolean(flags.allowRemote),
    onLog: (line) => process.stdout.write(`${line}\n`),
  })
  process.stdout.write(`llava-native rpc-server: listening on ${server.address} (pid ${server.pid})\n`)
  const stop = (): void => void server.close()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  const { code, signal } = await server.exited
  process.off('SIGINT', stop)
  process.off('SIGTERM', stop)
  // Ctrl-C reaches the server too (same process group): an ending by signal is a stop, not a failure
  if (signal === null && code !== 0) throw new CliError(EXIT.FAILURE, `the RPC server ended (${signal ?? `exit code ${code}`})`)
}
