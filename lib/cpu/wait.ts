// How ggml's CPU threads wait for each other, chosen at the one moment it can be.
//
// ggml runs a graph on an OpenMP team (libgomp in Linux builds) whose threads meet at a barrier
// after nearly every operation. libgomp's threads spin there for GOMP_SPINCOUNT iterations
// (300 000 by default: milliseconds) before they sleep, and spin as long again between two
// graphs. With a core to each thread that is harmless; on a busy machine (an Electron app's
// renderer, a server's own work, other processes, a container's CPU quota) the thread the others
// wait for is descheduled and they spin away the time slices it needs: generation slows down by
// one to three orders of magnitude. A short spin before sleeping costs nothing beyond run-to-run
// noise when the machine is idle and keeps a busy machine's speed near one thread's (bench/contention.js).
//
// libgomp reads its settings once, when it is loaded into the process. They are therefore put
// into the environment just around the addon's load and taken out again, so that child
// processes do not inherit them.
import * as fs from 'node:fs'
import { isMainThread } from 'node:worker_threads'
import { LlavaError } from '../errors'

/**
 * What the CPU threads do when they wait for each other:
 * - `'auto'` (default): spin briefly ({@link AUTO_SPIN_COUNT} iterations), then sleep.
 * - `'spin'`: llama.cpp's own behaviour (libgomp's default, 300 000 iterations; without end
 *   under the user's own OMP_WAIT_POLICY=ACTIVE): the fastest on a machine that does nothing
 *   else, a collapse when other work shares the cores.
 * - `'passive'`: sleep at once.
 * - a number: spin that many iterations, then sleep.
 */
export type CpuWait = 'auto' | 'spin' | 'passive' | number

/** The spin count of `'auto'`: measured with bench/contention.js (see the README's Performance section). */
export const AUTO_SPIN_COUNT = 300
const LIBGOMP_DEFAULT_SPIN_COUNT = 300000
const MAX_SPIN_COUNT = 2 ** 31 - 1

/** How the CPU threads wait, as the process got it. */
export interface CpuWaitInfo {
  /** The policy asked for (setCpuWait(), LLAVA_NATIVE_CPU_WAIT, or the default). */
  policy: CpuWait
  /** Where it came from. 'environment': the user's own OMP_WAIT_POLICY/GOMP_SPINCOUNT, left untouched. */
  source: 'default' | 'setCpuWait' | 'LLAVA_NATIVE_CPU_WAIT' | 'environment'
  /** Spin iterations before a waiting thread sleeps, where llava-native set it. */
  spinCount: number | undefined
  /**
   * 'libgomp' when the addon's threads use it; 'other' when they do not (macOS builds use ggml's
   * own thread pool, Windows builds MSVC's OpenMP: the policy does not apply there); undefined
   * before the addon is loaded or where it cannot be told.
   */
  runtime: 'libgomp' | 'other' | undefined
  /**
   * Whether the policy is in force: false when the runtime is not libgomp, or when libgomp was
   * already loaded into the process (by another addon, or by llava-native in another thread)
   * with the settings of then; undefined where it cannot be told (a worker thread's environment
   * is its own copy unless the worker was created with SHARE_ENV).
   */
  applied: boolean | undefined
}

let requested: { policy: CpuWait; source: CpuWaitInfo['source'] } | undefined
let settled: CpuWaitInfo | undefined

function invalid(what: string, value: unknown): LlavaError {
  return new LlavaError(
    'ERR_INVALID_ARGUMENT',
    `${what} must be 'auto', 'spin', 'passive' or a spin count (an integer from 0 to ${MAX_SPIN_COUNT}), got ${JSON.stringify(value)}`,
  )
}

function parsePolicy(value: unknown, what: string): CpuWait {
  if (value === 'auto' || value === 'spin' || value === 'passive') return value
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= MAX_SPIN_COUNT) return n
  throw invalid(what, value)
}

function spinCountOf(policy: CpuWait): number {
  if (policy === 'auto') return AUTO_SPIN_COUNT
  if (policy === 'spin') return LIBGOMP_DEFAULT_SPIN_COUNT
  if (policy === 'passive') return 0
  return policy
}

function samePolicy(a: CpuWait, b: CpuWait): boolean {
  return spinCountOf(a) === spinCountOf(b)
}

/**
 * Chooses how the CPU threads wait for each other (see {@link CpuWait}). It is a setting of the
 * whole process, read when the native addon is first loaded (by the first `loadModel`,
 * `systemInfo`, `listDevices`, …): call it before that. Afterwards, asking for the policy in force
 * is a no-op and asking for another throws `ERR_INVALID_ARGUMENT`. The environment variable
 * `LLAVA_NATIVE_CPU_WAIT` does the same without code.
 */
export function setCpuWait(policy: CpuWait): void {
  const parsed = parsePolicy(policy, 'setCpuWait(policy)')
  if (settled) {
    if (samePolicy(settled.policy, parsed)) return
    throw new LlavaError(
      'ERR_INVALID_ARGUMENT',
      `setCpuWait(${JSON.stringify(policy)}) came after the native addon was loaded with '${String(settled.policy)}'. ` +
        'OpenMP reads its wait policy once per process: call setCpuWait() before the first loadModel()/systemInfo(), ' +
        'or set LLAVA_NATIVE_CPU_WAIT in the environment.',
    )
  }
  requested = { policy: parsed, source: 'setCpuWait' }
}

function libgompMapped(): boolean | undefined {
  if (process.platform !== 'linux') return undefined
  try {
    return /\/libgomp[^/\n]*\.so/.test(fs.readFileSync('/proc/self/maps', 'utf8'))
  } catch {
    return undefined
  }
}

// What libgomp makes of the user's own variables: GOMP_SPINCOUNT (a count with an optional k, M,
// G or T suffix, or "infinite") wins over OMP_WAIT_POLICY (ACTIVE: spin without end; PASSIVE: 0).
function usersPolicy(env: NodeJS.ProcessEnv): CpuWait {
  const spin = /^\s*(\d+)\s*([kMGT]?)\s*$/.exec(env.GOMP_SPINCOUNT ?? '')
  if (spin) return Number(spin[1]) * { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[spin[2] as '' | 'k' | 'M' | 'G' | 'T']
  if (/^\s*infinit[ey]\s*$/i.test(env.GOMP_SPINCOUNT ?? '')) return 'spin'
  return env.OMP_WAIT_POLICY?.trim().toUpperCase() === 'PASSIVE' ? 'passive' : 'spin'
}

interface Resolved {
  policy: CpuWait
  source: CpuWaitInfo['source']
  /** What llava-native puts in GOMP_SPINCOUNT; undefined when the user's own settings stand. */
  spinCount: number | undefined
}

// setCpuWait() first, then LLAVA_NATIVE_CPU_WAIT; a user who set libgomp's own variables and
// neither of ours keeps them; otherwise 'auto'.
function resolve(env: NodeJS.ProcessEnv): Resolved {
  if (requested) return { ...requested, spinCount: spinCountOf(requested.policy) }
  const ours = env.LLAVA_NATIVE_CPU_WAIT
  if (ours !== undefined && ours !== '') {
    const policy = parsePolicy(ours, 'LLAVA_NATIVE_CPU_WAIT')
    return { policy, source: 'LLAVA_NATIVE_CPU_WAIT', spinCount: spinCountOf(policy) }
  }
  if (env.GOMP_SPINCOUNT !== undefined || env.OMP_WAIT_POLICY !== undefined) {
    return { policy: usersPolicy(env), source: 'environment', spinCount: undefined }
  }
  return { policy: 'auto', source: 'default', spinCount: AUTO_SPIN_COUNT }
}

/**
 * Called by the loader just before the addon is loaded: puts the policy into the environment for
 * libgomp to read. Returns the function to call once the addon is loaded (or failed to load).
 */
export function beforeAddonLoad(env: NodeJS.ProcessEnv = process.env): (loaded: boolean) => void {
  const choice = resolve(env)
  const preloaded = libgompMapped()
  const saved = env.GOMP_SPINCOUNT
  // GOMP_SPINCOUNT takes precedence over OMP_WAIT_POLICY in libgomp: one variable says it all.
  if (choice.spinCount !== undefined) env.GOMP_SPINCOUNT = String(choice.spinCount)
  return (loaded) => {
    if (choice.spinCount !== undefined) {
      if (saved === undefined) delete env.GOMP_SPINCOUNT
      else env.GOMP_SPINCOUNT = saved
    }
    if (!loaded) return // nothing read it: a later attempt decides afresh
    const mapped = libgompMapped()
    const runtime = mapped === undefined ? undefined : mapped ? 'libgomp' : 'other'
    let applied: boolean | undefined = runtime === undefined ? undefined : runtime === 'libgomp' && preloaded === false
    // A worker's process.env is its own copy (unless created with SHARE_ENV): what it sets may
    // never reach the C environment libgomp reads, and whether it did cannot be told from here.
    if (applied && !isMainThread) applied = undefined
    settled = { ...choice, runtime, applied }
  }
}

/** The wait policy: the one in force once the addon is loaded, else the one that would be used. */
export function cpuWaitInfo(env: NodeJS.ProcessEnv = process.env): CpuWaitInfo {
  if (settled) return { ...settled }
  return { ...resolve(env), runtime: undefined, applied: undefined }
}
