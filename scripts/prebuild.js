#!/usr/bin/env node
'use strict'
// Builds the portable binary and lays it out for node-gyp-build (prebuildify's layout):
//   prebuilds/<platform>-<arch>/llava-native.napi.node  + the ggml/llama/mtmd libraries and the
//   CPU backend variants it loads from its own folder ($ORIGIN rpath).
//   node scripts/prebuild.js [--backend cpu|vulkan|cuda] [extra build-native options]
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const buildDir = path.join(root, 'build-portable')
const args = ['--portable', '--build-dir', buildDir, ...process.argv.slice(2)]
const started = Date.now()
// The reference programs (LLAVA_NATIVE_REFERENCE) are for tests and benchmarks, not for a prebuild.
const env = { ...process.env }
delete env.LLAVA_NATIVE_REFERENCE
const r = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js'), ...args], { stdio: 'inherit', env })
if (r.status !== 0) process.exit(r.status || 1)

// The addon lands in Release/ (cmake-js), llama.cpp puts its libraries and modules in bin/.
const outDirs = [path.join(buildDir, 'Release'), path.join(buildDir, 'bin')]
const target = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`)
fs.rmSync(target, { recursive: true, force: true })
fs.mkdirSync(target, { recursive: true })
const libPattern = process.platform === 'win32' ? /\.dll$/ : process.platform === 'darwin' ? /\.dylib$/ : /\.so$/
let bytes = 0
for (const out of outDirs) for (const f of fs.existsSync(out) ? fs.readdirSync(out) : []) {
  const src = path.join(out, f)
  if (!fs.lstatSync(src).isFile()) continue
  let dest
  if (f === 'llava_native.node') dest = path.join(target, 'llava-native.napi.node')
  else if (libPattern.test(f)) dest = path.join(target, f)
  else continue
  fs.copyFileSync(src, dest)
  if (process.platform === 'linux') spawnSync('strip', ['--strip-unneeded', dest])
  bytes += fs.statSync(dest).size
}
console.error(
  `llava-native: prebuild written to ${path.relative(root, target)} (${fs.readdirSync(target).length} files, ` +
    `${(bytes / 1048576).toFixed(1)} MiB) in ${((Date.now() - started) / 1000).toFixed(0)} s`,
)
