// How many CPUs this process may really use, and the default thread count that follows.
//
// - Physical cores: hyper-threads share a core's vector units, so llama.cpp's own tools use one
//   thread a core, and so does the default here.
// - Affinity (taskset, cpusets): os.availableParallelism() sees it.
// - A CPU quota (docker --cpus, Kubernetes limits; cgroup v2 cpu.max, v1 cfs_quota_us) is not
//   seen by Node: on a 64-core host a container with 2 CPUs' worth of quota would otherwise start
//   32 threads, which the kernel throttles in turn while ggml's threads wait for each other.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

/** What the CPU budget was worked out from. */
export interface CpuBudget {
  /** CPUs this process may be scheduled on (affinity included). */
  logical: number
  /** Physical cores among them, where the OS tells; otherwise undefined. */
  physical: number | undefined
  /** CPUs' worth of time the cgroup CPU quota allows (e.g. 1.5), or undefined when unlimited. */
  quota: number | undefined
  /** The most threads a computation may use: `logical`, capped by the quota (rounded up). */
  usable: number
  /** The default thread count: physical cores, capped by the quota (rounded down, at least 1). */
  defaultThreads: number
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim()
  } catch {
    return undefined
  }
}

function physicalCores(root: string): number | undefined {
  const dir = path.join(root, 'sys/devices/system/cpu')
  let entries: string[]
  try {
    entries = fs.readdirSync(dir)
  } catch {
    return undefined
  }
  const cores = new Set<string>()
  for (const entry of entries) {
    if (!/^cpu\d+$/.test(entry)) continue
    const siblings = readText(path.join(dir, entry, 'topology/thread_siblings_list'))
    if (siblings) cores.add(siblings) // an offline CPU has no topology
  }
  return cores.size > 0 ? cores.size : undefined
}

// The cgroup directories of this process from its own path up to the hierarchy's root: a limit
// set on any ancestor applies. With a cgroup namespace (containers) the path is relative to the
// mount, which is also its root.
function ancestry(mount: string, cgroupPath: string): string[] {
  const dirs: string[] = []
  let p = cgroupPath.replace(/\/+$/, '')
  for (;;) {
    dirs.push(path.join(mount, p))
    if (p === '' || p === '/') break
    p = path.posix.dirname(p)
    if (p === '/') p = ''
  }
  return dirs
}

function cgroupQuota(root: string): number | undefined {
  const lines = readText(path.join(root, 'proc/self/cgroup'))?.split('\n') ?? []
  let best: number | undefined
  const consider = (q: number): void => {
    if (q > 0 && Number.isFinite(q)) best = best === undefined ? q : Math.min(best, q)
  }
  for (const line of lines) {
    const [, controllers, cgroupPath] = line.split(':')
    if (cgroupPath === undefined) continue
    if (controllers === '') {
      // cgroup v2: "max 100000" or "<quota> <period>" in cpu.max
      for (const dir of ancestry(path.join(root, 'sys/fs/cgroup'), cgroupPath)) {
        const [quota, period] = (readText(path.join(dir, 'cpu.max')) ?? '').split(/\s+/)
        if (quota && quota !== 'max' && Number(period) > 0) consider(Number(quota) / Number(period))
      }
    } else if (controllers.split(',').includes('cpu')) {
      // cgroup v1: cpu.cfs_quota_us (-1 = none) over cpu.cfs_period_us, mounted as cpu or cpu,cpuacct
      for (const mount of ['sys/fs/cgroup/cpu', 'sys/fs/cgroup/cpu,cpuacct', 'sys/fs/cgroup/cpuacct,cpu']) {
        for (const dir of ancestry(path.join(root, mount), cgroupPath)) {
          const quota = Number(readText(path.join(dir, 'cpu.cfs_quota_us')))
          const period = Number(readText(path.join(dir, 'cpu.cfs_period_us')))
          if (quota > 0 && period > 0) consider(quota / period)
        }
      }
    }
  }
  return best
}

/** Works out the CPU budget. `root` and `logical` are for tests; by default the live system. */
export function cpuBudget(root = '/', logical = logicalCpus()): CpuBudget {
  let physical: number | undefined
  let quota: number | undefined
  if (process.platform === 'linux' || root !== '/') {
    physical = physicalCores(root)
    quota = cgroupQuota(root)
  }
  const usable = Math.max(1, Math.min(logical, quota === undefined ? logical : Math.ceil(quota)))
  const cores = Math.min(physical ?? logical, logical)
  const defaultThreads = Math.max(1, Math.min(cores, quota === undefined ? cores : Math.floor(quota)))
  return { logical, physical, quota, usable, defaultThreads }
}

function logicalCpus(): number {
  return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length)
}

let cached: CpuBudget | undefined

/** The live system's budget, read once. */
export function systemCpuBudget(): CpuBudget {
  cached ??= cpuBudget()
  return cached
}

/**
 * The most threads a computation may use. More never helps ggml (its threads wait for each
 * other at every step), and each costs a stack: 700 threads under an address-space limit made
 * OpenMP end the process.
 */
export function usableCpus(): number {
  return systemCpuBudget().usable
}

export function defaultThreads(): number {
  return systemCpuBudget().defaultThreads
}
