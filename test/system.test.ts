import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { loadModel, systemInfo } from '../lib'
import { cpuBudget } from '../lib/cpu'
import { tinyPair } from './helpers/fixtures'

const root = path.resolve(__dirname, '..')
const pin = JSON.parse(fs.readFileSync(path.join(root, 'deps', 'llama.cpp.json'), 'utf8')) as { commit: string }

describe('systemInfo', () => {
  test('reports the pinned llama.cpp commit and the CPU backend', () => {
    const info = systemInfo()
    expect(info.llamaCppCommit).toBe(pin.commit)
    expect(info.backends).toContain('CPU')
    expect(info.devices.some((d) => d.type === 'cpu')).toBe(true)
    expect(info.cpuFeatures).toMatch(/CPU :/)
  })

  test('works from CommonJS and from an ES module (compiled package entry points)', () => {
    const cjs = execFileSync(process.execPath, ['-e', "console.log(require('llava-native').systemInfo().llamaCppCommit)"], {
      cwd: root,
      encoding: 'utf8',
    }).trim()
    expect(cjs).toBe(pin.commit)
    const esm = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', "import { systemInfo } from 'llava-native'; console.log(systemInfo().llamaCppCommit)"],
      { cwd: root, encoding: 'utf8' },
    ).trim()
    expect(esm).toBe(pin.commit)
  })
})

describe('the CPU budget', () => {
  // A machine laid out under a folder: CPUs with their hyper-thread siblings, /proc/self/cgroup,
  // and cgroup files.
  function machine(files: Record<string, string>, cores = 8, threadsPerCore = 2): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-cpu-'))
    for (let cpu = 0; cpu < cores * threadsPerCore; cpu++) {
      const core = cpu % cores
      const siblings = Array.from({ length: threadsPerCore }, (_, t) => core + t * cores).join(',')
      files[`sys/devices/system/cpu/cpu${cpu}/topology/thread_siblings_list`] = siblings
    }
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
      fs.writeFileSync(path.join(dir, name), text)
    }
    return dir
  }

  test('no quota: one thread per physical core, every logical CPU usable', () => {
    const b = cpuBudget(machine({ 'proc/self/cgroup': '0::/user.slice\n', 'sys/fs/cgroup/user.slice/cpu.max': 'max 100000\n' }), 16)
    expect(b).toEqual({ logical: 16, physical: 8, quota: undefined, usable: 16, defaultThreads: 8 })
  })

  test('cgroup v2 quota on an ancestor (docker --cpus=2 on a 16-thread host)', () => {
    const b = cpuBudget(
      machine({
        'proc/self/cgroup': '0::/system.slice/docker-abc.scope\n',
        'sys/fs/cgroup/system.slice/docker-abc.scope/cpu.max': 'max 100000\n',
        'sys/fs/cgroup/system.slice/cpu.max': '200000 100000\n',
      }),
      16,
    )
    expect(b).toMatchObject({ quota: 2, usable: 2, defaultThreads: 2 })
  })

  test('cgroup v2 inside a cgroup namespace, fractional quota', () => {
    const b = cpuBudget(machine({ 'proc/self/cgroup': '0::/\n', 'sys/fs/cgroup/cpu.max': '150000 100000\n' }), 16)
    expect(b).toMatchObject({ quota: 1.5, usable: 2, defaultThreads: 1 })
  })

  test('cgroup v1 quota (cpu,cpuacct), mounted at the container root', () => {
    const b = cpuBudget(
      machine({
        'proc/self/cgroup': '12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n',
        'sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '300000\n',
        'sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
      }),
      16,
    )
    expect(b).toMatchObject({ quota: 3, usable: 3, defaultThreads: 3 })
  })

  test('cgroup v1 without a quota, affinity narrower than the cores', () => {
    const b = cpuBudget(
      machine({
        'proc/self/cgroup': '4:cpu,cpuacct:/\n',
        'sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
        'sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
      }),
      4,
    )
    expect(b).toEqual({ logical: 4, physical: 8, quota: undefined, usable: 4, defaultThreads: 4 })
  })

  test('systemInfo() reports the live budget, and loadModel refuses more threads than it allows', async () => {
    const cpu = systemInfo().cpu
    expect(cpu.usable).toBeGreaterThanOrEqual(1)
    expect(cpu.defaultThreads).toBeLessThanOrEqual(cpu.usable)
    await expect(loadModel({ ...tinyPair(), threads: cpu.usable + 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })
})
