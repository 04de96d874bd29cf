#!/usr/bin/env node
'use strict'
// Builds the addon from source with cmake-js: fetches the pinned llama.cpp, configures once per
// set of options, then builds incrementally (a no-op rebuild takes seconds).
//
//   node scripts/build-native.js [--backend cpu|cuda|vulkan|metal] [--reference] [--sanitize]
//                                [--portable] [--cuda-arch LIST] [--build-dir DIR]
//                                [-- <extra cmake -D options>]
// The same choices can come from the environment: LLAVA_NATIVE_BACKEND, LLAVA_NATIVE_REFERENCE=1,
// LLAVA_NATIVE_SANITIZE=1, LLAVA_NATIVE_PORTABLE=1, LLAVA_NATIVE_CMAKE_ARGS="-DX=Y ...",
// LLAVA_NATIVE_VULKAN_INCLUDE_DIR (Vulkan headers to use), LLAVA_NATIVE_CUDA_ARCHITECTURES,
// LLAVA_NATIVE_BUILD_DIR.
//
// CUDA architectures: `native` (the GPUs in this machine) when nvidia-smi sees one, otherwise
// DEFAULT_CUDA_ARCHITECTURES. A clean build for one architecture took 19.5 minutes on two cores
// (sm_90, most of it ggml-cuda's kernels), so the default list is short: SASS for Ampere (86),
// Ada (89) and Hopper (90), and PTX for Turing (75) that the driver compiles once on first use,
// which also covers the A100.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const DEFAULT_CUDA_ARCHITECTURES = '75-virtual;86-real;89-real;90-real'
let buildDir = path.resolve(root, process.env.LLAVA_NATIVE_BUILD_DIR || 'build')

function truthy(v) {
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false' && v.toLowerCase() !== 'off'
}

function parseArgs(argv) {
  const opts = {
    backend: process.env.LLAVA_NATIVE_BACKEND || 'cpu',
    reference: truthy(process.env.LLAVA_NATIVE_REFERENCE),
    sanitize: truthy(process.env.LLAVA_NATIVE_SANITIZE),
    portable: truthy(process.env.LLAVA_NATIVE_PORTABLE),
    cudaArch: process.env.LLAVA_NATIVE_CUDA_ARCHITECTURES || '',
    extra: (process.env.LLAVA_NATIVE_CMAKE_ARGS || '').split(/\s+/).filter(Boolean),
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--backend') opts.backend = argv[++i]
    else if (a.startsWith('--backend=')) opts.backend = a.slice('--backend='.length)
    else if (a === '--reference') opts.reference = true
    else if (a === '--sanitize') opts.sanitize = true
    else if (a === '--portable') opts.portable = true
    else if (a === '--cuda-arch') opts.cudaArch = argv[++i]
    else if (a.startsWith('--cuda-arch=')) opts.cudaArch = a.slice('--cuda-arch='.length)
    else if (a === '--build-dir') buildDir = path.resolve(argv[++i])
    else if (a.startsWith('-D')) opts.extra.push(a)
    else if (a === '--') continue
    else {
      console.error(`llava-native: unknown build option ${a}`)
      process.exit(2)
    }
  }
  const backends = ['cpu', 'cuda', 'vulkan', 'metal']
  if (!backends.includes(opts.backend)) {
    console.error(`llava-native: --backend must be one of ${backends.join(', ')} (got ${opts.backend})`)
    process.exit(2)
  }
  return opts
}

function hasNvidiaGpu() {
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' })
  return r.status === 0 && /GPU \d+:/.test(r.stdout)
}

function cmakeDefines(opts) {
  const d = [
    `-DGGML_CUDA=${opts.backend === 'cuda' ? 'ON' : 'OFF'}`,
    `-DGGML_VULKAN=${opts.backend === 'vulkan' ? 'ON' : 'OFF'}`,
    `-DLLAVA_NATIVE_REFERENCE=${opts.reference ? 'ON' : 'OFF'}`,
    `-DLLAVA_NATIVE_SANITIZE=${opts.sanitize ? 'ON' : 'OFF'}`,
  ]
  if (opts.backend === 'vulkan' && process.env.LLAVA_NATIVE_VULKAN_INCLUDE_DIR) {
    // Headers newer than the distribution's (scripts/vulkan/setup-debian.sh prepares them on Debian 12).
    d.push(`-DVulkan_INCLUDE_DIR=${process.env.LLAVA_NATIVE_VULKAN_INCLUDE_DIR}`)
  }
  if (opts.backend === 'cuda') {
    const arch = opts.cudaArch || (hasNvidiaGpu() ? 'native' : DEFAULT_CUDA_ARCHITECTURES)
    d.push(`-DCMAKE_CUDA_ARCHITECTURES=${arch}`)
  }
  if (process.platform === 'darwin') d.push(`-DGGML_METAL=${opts.backend === 'metal' || opts.backend === 'cpu' ? 'ON' : 'OFF'}`)
  if (opts.portable) d.push('-DLLAVA_NATIVE_PORTABLE=ON')
  else d.push('-DLLAVA_NATIVE_PORTABLE=OFF', '-DGGML_NATIVE=ON', '-DGGML_BACKEND_DL=OFF', '-DGGML_CPU_ALL_VARIANTS=OFF')
  return d.concat(opts.extra)
}

function cmakeJs(command, defines) {
  const bin = require.resolve('cmake-js/bin/cmake-js')
  const jobs = String(typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length)
  const args = [bin, command, '--directory', root, '--out', buildDir, '--parallel', jobs, '--log-level', 'warn']
  for (const d of defines) args.push(`--CD${d.slice(2)}`)
  const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root })
  if (r.status !== 0) {
    console.error(`llava-native: cmake-js ${command} failed (exit ${r.status}).`)
    process.exit(r.status || 1)
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2))
  const fetch = spawnSync(process.execPath, [path.join(__dirname, 'fetch-llama-cpp.js')], { stdio: 'inherit' })
  if (fetch.status !== 0) process.exit(fetch.status || 1)

  try {
    require.resolve('cmake-js/bin/cmake-js')
  } catch {
    console.error(
      'llava-native: building from source needs cmake-js and node-addon-api.\n' +
        '  Run `npm install --no-save cmake-js node-addon-api` in the llava-native folder, then `npm run build:native`.',
    )
    process.exit(1)
  }

  const stampFile = path.join(buildDir, 'llava-native-options.json')
  const defines = cmakeDefines(opts)
  const stamp = JSON.stringify({ defines, llamaDir: process.env.LLAVA_NATIVE_LLAMA_CPP_DIR || null })
  const configured = fs.existsSync(path.join(buildDir, 'CMakeCache.txt')) && fs.existsSync(stampFile) &&
    fs.readFileSync(stampFile, 'utf8') === stamp
  const started = Date.now()
  if (!configured) cmakeJs('configure', defines)
  cmakeJs('build', defines)
  fs.writeFileSync(stampFile, stamp)
  console.error(`llava-native: native build finished in ${((Date.now() - started) / 1000).toFixed(1)} s (${defines.join(' ')})`)
}

main()
