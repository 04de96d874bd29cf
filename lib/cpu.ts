// The default thread count: physical cores, as llama.cpp's own tools use (hyper-threads share a
// core's vector units, so more threads than cores only adds contention).
import * as fs from 'node:fs'
import * as os from 'node:os'

let cached: number | undefined

function logicalCpus(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length
}

function linuxPhysicalCores(): number | undefined {
  const root = '/sys/devices/system/cpu'
  const cores = new Set<string>()
  for (const entry of fs.readdirSync(root)) {
    if (!/^cpu\d+$/.test(entry)) continue
    try {
      cores.add(fs.readFileSync(`${root}/${entry}/topology/thread_siblings_list`, 'utf8').trim())
    } catch {
      // an offline CPU has no topology
    }
  }
  return cores.size > 0 ? cores.size : undefined
}

/**
 * The most threads a computation may use: the CPUs this process may run on. More never helps
 * ggml (its threads wait for each other at every step), and each costs a stack: 700 threads under
 * an address-space limit made OpenMP end the process.
 */
export function usableCpus(): number {
  return Math.max(1, logicalCpus())
}

export function defaultThreads(): number {
  if (cached !== undefined) return cached
  let n: number | undefined
  try {
    if (process.platform === 'linux') n = linuxPhysicalCores()
  } catch {
    n = undefined
  }
  // Never more than the CPUs this process may use (containers, taskset).
  cached = Math.max(1, Math.min(n ?? logicalCpus(), logicalCpus()))
  return cached
}
