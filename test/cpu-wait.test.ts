// The CPU wait policy reaches the OpenMP runtime (libgomp prints what it read when
// OMP_DISPLAY_ENV=VERBOSE), is chosen in the documented order, and does not leak into child
// processes. Each case needs a fresh process: the runtime reads its settings once.
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { setCpuWait } from '../lib'

const root = path.resolve(__dirname, '..')
const onLinux = process.platform === 'linux' ? test : test.skip

interface ChildReport {
  wait: Record<string, unknown>
  leaked: string | null
  grandchild: string
  error?: { code: string; message: string }
  libgomp: string | undefined
}

// Loads the addon in a fresh process (`before` runs first), and reports the wait policy, what
// libgomp says it read, GOMP_SPINCOUNT as left in the environment and as a child process sees it.
function child(env: Record<string, string | undefined>, before = ''): ChildReport {
  const script = `
    const l = require('llava-native')
    const out = {}
    try {
      ${before}
      out.wait = l.systemInfo().cpu.wait
    } catch (e) { out.error = { code: e.code, message: e.message } }
    out.leaked = process.env.GOMP_SPINCOUNT ?? null
    out.grandchild = require('node:child_process').execFileSync(process.execPath,
      ['-e', 'process.stdout.write(String(process.env.GOMP_SPINCOUNT))'], { encoding: 'utf8' })
    process.stdout.write(JSON.stringify(out))`
  const fullEnv: NodeJS.ProcessEnv = { ...process.env, OMP_DISPLAY_ENV: 'VERBOSE' }
  for (const k of ['LLAVA_NATIVE_CPU_WAIT', 'GOMP_SPINCOUNT', 'OMP_WAIT_POLICY']) delete fullEnv[k]
  for (const [k, v] of Object.entries(env)) if (v !== undefined) fullEnv[k] = v
  const result = spawnSync(process.execPath, ['-e', script], { cwd: root, env: fullEnv, encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`child failed: ${result.stderr}`)
  const report = JSON.parse(result.stdout) as ChildReport
  report.libgomp = /GOMP_SPINCOUNT = '(\d+)'/.exec(result.stderr)?.[1]
  return report
}

describe('CPU wait policy', () => {
  onLinux("default 'auto': a short spin reaches libgomp, and the environment is left as it was", () => {
    const r = child({})
    expect(r.wait).toEqual({ policy: 'auto', source: 'default', spinCount: 300, runtime: 'libgomp', applied: true })
    expect(r.libgomp).toBe('300')
    expect(r.leaked).toBeNull()
    expect(r.grandchild).toBe('undefined')
  })

  onLinux('LLAVA_NATIVE_CPU_WAIT chooses spin, passive or a spin count', () => {
    expect(child({ LLAVA_NATIVE_CPU_WAIT: 'spin' }).libgomp).toBe('300000')
    const passive = child({ LLAVA_NATIVE_CPU_WAIT: 'passive' })
    expect(passive.libgomp).toBe('0')
    expect(passive.wait).toMatchObject({ policy: 'passive', source: 'LLAVA_NATIVE_CPU_WAIT', spinCount: 0 })
    expect(child({ LLAVA_NATIVE_CPU_WAIT: '2500' }).wait).toMatchObject({ policy: 2500, spinCount: 2500 })
  })

  onLinux("the user's own libgomp variables stand, and are not removed", () => {
    const r = child({ GOMP_SPINCOUNT: '777' })
    expect(r.libgomp).toBe('777')
    expect(r.wait).toMatchObject({ policy: 777, source: 'environment' })
    expect(r.wait.spinCount).toBeUndefined() // nothing of ours was set
    expect(r.leaked).toBe('777')
    expect(r.grandchild).toBe('777')
    expect(child({ OMP_WAIT_POLICY: 'passive' }).wait).toMatchObject({ policy: 'passive', source: 'environment' })
  })

  onLinux('setCpuWait() before the first load wins over the environment; after it, only the same policy is accepted', () => {
    const r = child({ LLAVA_NATIVE_CPU_WAIT: 'spin', GOMP_SPINCOUNT: '5' }, "l.setCpuWait('passive')")
    expect(r.libgomp).toBe('0')
    expect(r.wait).toMatchObject({ policy: 'passive', source: 'setCpuWait' })
    expect(r.leaked).toBe('5') // the user's value is put back

    const late = child({}, "l.systemInfo(); l.setCpuWait('auto'); l.setCpuWait(300); l.setCpuWait('spin')")
    expect(late.error?.code).toBe('ERR_INVALID_ARGUMENT')
    expect(late.error?.message).toMatch(/before the first loadModel/)
  })

  onLinux('a malformed LLAVA_NATIVE_CPU_WAIT is a typed error, not a silent default', () => {
    const r = child({ LLAVA_NATIVE_CPU_WAIT: 'fast' })
    expect(r.error?.code).toBe('ERR_INVALID_ARGUMENT')
    expect(r.error?.message).toMatch(/LLAVA_NATIVE_CPU_WAIT must be 'auto', 'spin', 'passive' or a spin count/)
  })

  test('setCpuWait() validates its argument', () => {
    for (const bad of [-1, 1.5, 2 ** 31, 'fast', '', null, {}]) {
      expect(() => setCpuWait(bad as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    }
  })
})
