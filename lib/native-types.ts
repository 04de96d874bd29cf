// The raw addon's surface, typed once. Values are exactly what binding/*.cpp produce.

export interface NativeDeviceInfo {
  name: string
  description: string
  type: 'cpu' | 'gpu' | 'igpu' | 'accel'
}

export interface NativeSystemInfo {
  llamaCppCommit: string
  backends: string[]
  devices: NativeDeviceInfo[]
  cpuFeatures: string
  supportsMmap: boolean
  supportsGpuOffload: boolean
  maxDevices: number
}

export interface NativeBinding {
  systemInfo(): NativeSystemInfo
}
