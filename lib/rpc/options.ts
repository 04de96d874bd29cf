// Validation of the RPC options of loadModel(), listDevices() and startRpcServer().
import { isIPv4 } from 'node:net'
import { LlavaError } from '../errors'
import * as v from '../validate'

/** How long a remote server may take: to accept a connection, and to answer one call. */
export interface RpcTimeouts {
  /** Milliseconds to connect and shake hands. Default 10000. */
  connectMs?: number
  /**
   * Milliseconds one call may wait for a server's reply, a graph computation included. Default
   * 120000. A server that stops answering (a frozen host, a `kill -STOP`) fails the model's
   * calls with ERR_RPC after this long.
   */
  callMs?: number
}

export const DEFAULT_RPC_TIMEOUTS = { connectMs: 10_000, callMs: 120_000 } as const

/** 'host:port' endpoints, IPv4 addresses or host names (ggml's RPC client speaks IPv4). */
export function rpcServersOption(value: unknown): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw v.invalid('rpcServers', "an array of 'host:port' strings", value)
  if (value.length > 16) throw v.invalid('rpcServers', 'at most 16 servers (ggml-rpc’s limit)', value)
  const seen = new Set<string>()
  return value.map((e: unknown, i) => {
    const option = `rpcServers[${i}]`
    if (typeof e !== 'string') throw v.invalid(option, "a 'host:port' string", e)
    const m = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(e)
    if (!m || +m[2] < 1 || +m[2] > 65535) throw v.invalid(option, "'host:port' with an IPv4 address or host name and a port 1-65535", e)
    if (seen.has(e)) throw new LlavaError('ERR_INVALID_ARGUMENT', `${option}: ${e} is listed twice`, { details: { option } })
    seen.add(e)
    return e
  })
}

export function rpcTimeoutsOption(value: unknown): Required<RpcTimeouts> {
  if (value === undefined) return { ...DEFAULT_RPC_TIMEOUTS }
  const o = v.optionsObject<RpcTimeouts>('rpcTimeouts', value as RpcTimeouts)
  v.checkKeys('rpcTimeouts', o, ['connectMs', 'callMs'])
  return {
    connectMs: v.int('rpcTimeouts.connectMs', o.connectMs, 1, 3_600_000, DEFAULT_RPC_TIMEOUTS.connectMs),
    callMs: v.int('rpcTimeouts.callMs', o.callMs, 1, 86_400_000, DEFAULT_RPC_TIMEOUTS.callMs),
  }
}

export function tensorSplitOption(value: unknown): number[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.length === 0 || value.length > 16) throw v.invalid('tensorSplit', 'an array of 1 to 16 shares', value)
  const shares = value.map((x: unknown, i) => v.num(`tensorSplit[${i}]`, x, 0, Number.MAX_VALUE, 0))
  if (!shares.some((x) => x > 0)) throw v.invalid('tensorSplit', 'shares with at least one above 0', value)
  return shares
}

/** An IPv4 address this machine listens on; anything but loopback needs allowRemote. */
export function listenHostOption(host: unknown, allowRemote: boolean): string {
  const h = host === undefined ? '127.0.0.1' : v.str('host', host)
  if (!isIPv4(h)) throw v.invalid('host', 'an IPv4 address (e.g. 127.0.0.1, or 0.0.0.0 for every interface)', h)
  if (!h.startsWith('127.') && !allowRemote) {
    throw new LlavaError(
      'ERR_INVALID_ARGUMENT',
      `host ${h} would let other machines use this RPC server, and its protocol has no authentication: anyone who reaches the port can run computations and read or write its memory. ` +
        'Pass allowRemote: true (--allow-remote) only on a private network or behind an SSH tunnel or WireGuard.',
      { details: { option: 'host' } },
    )
  }
  return h
}
