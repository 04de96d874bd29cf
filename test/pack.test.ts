// The published package: `npm pack` gives a tarball with the prebuilt binary, the compiled JS and
// types, and what a source build needs, and nothing else; installed into an empty project with
// install scripts disabled and no compiler on PATH, it runs the tiny model from the prebuild.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { root, tempDir } from './helpers/fixtures'
import { heifEnc, heifEncAvailable } from './helpers/heif'
import { pattern, toPng } from './helpers/images'

const platformDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`)
const havePrebuild = fs.existsSync(path.join(platformDir, 'llava-native.napi.node'))
if (!havePrebuild && process.env.CI) throw new Error('CI must build the prebuild first: npm run prebuilds')
if (!havePrebuild) console.warn(`pack suite SKIPPED: no prebuild in ${platformDir} (run npm run prebuilds)`)
const describePack = havePrebuild ? describe : describe.skip

describePack('npm pack and install from the prebuild', () => {
  let tarball: string
  let files: string[]
  const work = tempDir('llava-pack-')

  beforeAll(() => {
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    const info = JSON.parse(out)[0] as { filename: string; files: Array<{ path: string }> }
    tarball = path.join(work, info.filename)
    files = info.files.map((f) => f.path)
  }, 120000)

  test('the tarball holds the prebuild, compiled JS, types and the source-build inputs, and nothing else', () => {
    for (const f of [
      `prebuilds/${process.platform}-${process.arch}/llava-native.napi.node`,
      'dist/index.js',
      'dist/index.mjs',
      'dist/index.d.ts',
      'dist/fixtures/index.js',
      'dist/media/heif-worker.js',
      'binding/addon.cpp',
      'CMakeLists.txt',
      'scripts/fetch-llama-cpp.js',
      'scripts/install.js',
      'deps/llama.cpp.json',
      'THIRD_PARTY_NOTICES.md',
      'LICENSE',
      'package.json',
    ]) {
      expect(files).toContain(f)
    }
    for (const f of files) {
      expect(f).not.toMatch(/^(test|bench|build|build-portable|node_modules|\.ci|\.cache|deps\/llama\.cpp)\//)
      expect(f).not.toMatch(/\.gguf$/)
    }
    // The CPU backends for other CPUs travel with it (the portable build picks one at run time).
    expect(files.some((f) => /ggml-cpu-.*\.(so|dylib|dll)$/.test(f))).toBe(true)
  })

  test('installs with scripts disabled and without a compiler, and runs the tiny model end to end', () => {
    const app = path.join(work, 'app')
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
    // A PATH with node and npm only: no cc, c++, cmake or make.
    const bin = path.join(work, 'bin')
    fs.mkdirSync(bin)
    fs.symlinkSync(process.execPath, path.join(bin, 'node'))
    const npmCli = fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim())
    fs.writeFileSync(path.join(bin, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 })
    const env = { ...process.env, PATH: bin, npm_config_ignore_scripts: 'true', LLAVA_NATIVE_CACHE_DIR: path.join(work, 'cache') }
    for (const tool of ['cc', 'c++', 'g++', 'cmake', 'make']) {
      expect(spawnSync('sh', ['-c', `command -v ${tool}`], { env }).status).not.toBe(0)
    }
    // libheif-js, the optional HEIC decoder, as an application adds it (the version this repository tests)
    const libheif = `libheif-js@${JSON.parse(fs.readFileSync(path.join(root, 'node_modules', 'libheif-js', 'package.json'), 'utf8')).version}`
    const install = spawnSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', tarball, libheif], { cwd: app, env, encoding: 'utf8' })
    expect(install.stderr).not.toMatch(/ERR!/)
    expect(install.status).toBe(0)
    expect(fs.existsSync(path.join(app, 'node_modules', 'llava-native', 'build'))).toBe(false)

    // a HEIC photo, decoded on the installed package's worker thread by the application's libheif-js
    fs.writeFileSync(path.join(work, 'p.png'), toPng(pattern(40, 24, 3)))
    const heic = heifEncAvailable() ? heifEnc(path.join(work, 'p.png'), path.join(work, 'p.heic'), { lossless: true }) : undefined
    const script = `
      const { loadModel, startRpcServer, systemInfo } = require('llava-native')
      const { ensurePair } = require('llava-native/fixtures')
      ;(async () => {
        const info = systemInfo()
        const pair = ensurePair('tiny')
        const model = await loadModel({ ...pair, threads: 2 })
        // the portable build's CPU variants have the batch-invariant kernels: explicit true is not refused
        const s = model.createSession({ deterministic: true })
        const pixels = { data: new Uint8Array(32 * 32 * 3).fill(120), width: 32, height: 32, format: 'rgb' }
        const r = await s.complete({ prompt: 'USER: <image>\\ndescribe\\nASSISTANT:', images: [pixels], maxTokens: 8, temperature: 0 })
        const photo = process.argv[1] ? await model.encodeImage(process.argv[1]) : undefined
        const heic = photo ? photo.width + 'x' + photo.height : 'none'
        await model.dispose()
        // the same from the installed package's own child process
        const isolated = await loadModel({ ...pair, threads: 2, isolation: 'process' })
        const ri = await isolated.createSession().complete({ prompt: 'USER: <image>\\ndescribe\\nASSISTANT:', images: [pixels], maxTokens: 8, temperature: 0 })
        const childPid = isolated.pid
        await isolated.dispose()
        // the RPC backend module of the prebuild, both ends: a server, and a model split over it
        const server = await startRpcServer({ port: 20000 + (process.pid % 20000), threads: 1 })
        const remote = await loadModel({ ...pair, threads: 2, rpcServers: [server.address], gpuLayers: 2 })
        const rr = await remote.createSession({ deterministic: false }).complete({ prompt: 'USER: <image>\\ndescribe\\nASSISTANT:', images: [pixels], maxTokens: 8, temperature: 0 })
        const onServer = remote.info.placement.some((p) => p.endpoint === server.address)
        await remote.dispose()
        await server.close()
        console.log(JSON.stringify({ commit: info.llamaCppCommit, backends: info.backends, cpu: info.cpuFeatures, tokens: r.tokens.length, sameIsolated: JSON.stringify(ri.tokens) === JSON.stringify(r.tokens), childPid, rpcTokens: rr.tokens.length, onServer, heic }))
      })().catch((e) => { console.error(e); process.exit(1) })
    `
    const run = spawnSync('node', ['-e', script, heic ? path.join(work, 'p.heic') : ''], { cwd: app, env, encoding: 'utf8' })
    expect(run.stderr).toBe('')
    expect(run.status).toBe(0)
    const result = JSON.parse(run.stdout) as { commit: string; backends: string[]; cpu: string; tokens: number; sameIsolated: boolean; childPid: number; rpcTokens: number; onServer: boolean; heic: string }
    expect(result.heic).toBe(heic ? '40x24' : 'none')
    expect(result.backends).toContain('CPU')
    expect(result.backends).toContain('RPC')
    expect(result.rpcTokens).toBe(8)
    expect(result.onServer).toBe(true)
    expect(result.tokens).toBe(8)
    expect(result.sameIsolated).toBe(true)
    expect(result.childPid).toBeGreaterThan(0)
    // The binary that ran is the prebuild inside node_modules.
    const which = spawnSync('node', ['-e', "console.log(require('node-gyp-build').path(require('path').dirname(require.resolve('llava-native/package.json'))))"], {
      cwd: app,
      env,
      encoding: 'utf8',
    })
    expect(which.stdout.trim()).toContain(path.join('node_modules', 'llava-native', 'prebuilds'))
  }, 300000)
})
