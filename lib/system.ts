import { type CpuBudget, type CpuWaitInfo, cpuWaitInfo, systemCpuBudget } from './cpu'
import { fromNative } from './errors'
import { binding } from './native'
import { rpcServersOption, rpcTimeoutsOption, type RpcTimeouts } from './rpc/options'
import { checkKeys, optionsObject } from './validate'
import type { NativeDeviceInfo } from './native-types'

/** What this build of llava-native contains and what the machine offers. */
export interface SystemInfo {
  /** The llama.cpp commit compiled into the addon. */
  llamaCppCommit: string
  /** ggml backends compiled in, e.g. `['CPU']` or `['CUDA', 'CPU']`. */
  backends: string[]
  /** Devices those backends see. */
  devices: NativeDeviceInfo[]
  /** llama.cpp's CPU feature summary, e.g. `CPU : SSE3 = 1 | AVX2 = 1 | ...`. */
  cpuFeatures: string
  supportsMmap: boolean
  supportsGpuOffload: boolean
  /**
   * The CPUs this process may use (affinity, physical cores, the container's CPU quota) and the
   * default thread count they give.
   */
  cpu: CpuBudget & {
    /** How the CPU threads wait for each other (see setCpuWait()). */
    wait: CpuWaitInfo
  }
  /** The addon's N-API version and the version of llava-native. */
  napiVersion: number
  version: string
}

/** Describes the native build: llama.cpp commit, compiled-in backends, devices and CPU features. */
export function systemInfo(): SystemInfo {
  const raw = binding().systemInfo()
  return {
    llamaCppCommit: raw.llamaCppCommit,
    backends: raw.backends,
    devices: raw.devices,
    cpuFeatures: raw.cpuFeatures,
    supportsMmap: raw.supportsMmap,
    supportsGpuOffload: raw.supportsGpuOffload,
    cpu: { ...systemCpuBudget(), wait: cpuWaitInfo() },
    napiVersion: 8,
    version: require('../package.json').version as string,
  }
}

/** A compute device ggml can use. */
export interface DeviceInfo {
  /** The name to pass as `mmprojDevice` or to `startRpcServer({ devices })`; RPC devices are RPC0, RPC1, … in connection order. */
  name: string
  description: string
  /** 'cpu', 'gpu' (discrete), 'igpu' (integrated), 'accel', or 'rpc' (a device of an RPC server). */
  kind: 'cpu' | 'gpu' | 'igpu' | 'accel' | 'rpc'
  /** The RPC server ('host:port') of an 'rpc' device. */
  endpoint?: string
  /** Bytes; 0 where the backend does not report it. */
  memoryFree: number
  memoryTotal: number
}

export interface ListDevicesOptions {
  /** Also connect to these RPC servers ('host:port') and list their devices after the local ones. */
  rpcServers?: string[]
  rpcTimeouts?: RpcTimeouts
}

/** The devices this build can run on: the CPU, and GPUs of the backends compiled in (CUDA, Vulkan, Metal). */
export function listDevices(): DeviceInfo[]
/** The local devices and those of the given RPC servers (connecting to them off the JS thread; ERR_RPC if one cannot be used). */
export function listDevices(options: ListDevicesOptions): Promise<DeviceInfo[]>
export function listDevices(options?: ListDevicesOptions): DeviceInfo[] | Promise<DeviceInfo[]> {
  const local = binding()
    .systemInfo()
    .devices.map((d): DeviceInfo => ({ name: d.name, description: d.description, kind: d.type, memoryFree: d.memoryFree, memoryTotal: d.memoryTotal }))
  if (options === undefined) return local
  const o = optionsObject('listDevices()', options)
  checkKeys('listDevices()', o, ['rpcServers', 'rpcTimeouts'])
  const servers = rpcServersOption(o.rpcServers)
  const timeouts = rpcTimeoutsOption(o.rpcTimeouts)
  if (servers.length === 0) return Promise.resolve(local)
  return binding()
    .rpcDevices(servers, timeouts)
    .then(
      (remote) => [...local, ...remote.map((d): DeviceInfo => ({ name: d.name, description: d.description, kind: 'rpc', endpoint: d.endpoint, memoryFree: d.memoryFree, memoryTotal: d.memoryTotal }))],
      (err: unknown) => {
        throw fromNative(err)
      },
    )
}
