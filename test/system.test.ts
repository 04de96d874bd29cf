import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { systemInfo } from '../lib'

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
