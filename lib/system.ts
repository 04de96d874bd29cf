import { type CpuBudget, type CpuWaitInfo, cpuWaitInfo, systemCpuBudget } from './cpu'
import { binding } from './native'
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
  name: string
  description: string
  /** 'cpu', 'gpu' (discrete), 'igpu' (integrated) or 'accel'. */
  kind: 'cpu' | 'gpu' | 'igpu' | 'accel'
  /** Bytes; 0 where the backend does not report it. */
  memoryFree: number
  memoryTotal: number
}

/** The devices this build can run on: the CPU, and GPUs of the backends compiled in (CUDA, Vulkan, Metal). */
export function listDevices(): DeviceInfo[] {
  return binding()
    .systemInfo()
    .devices.map((d) => ({ name: d.name, description: d.description, kind: d.type, memoryFree: d.memoryFree, memoryTotal: d.memoryTotal }))
}
