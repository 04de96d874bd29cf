#!/usr/bin/env node
'use strict'
// The package's install step: use a binary that already loads (a prebuild for this platform, or
// an earlier source build), otherwise build from source. Set LLAVA_NATIVE_BUILD_FROM_SOURCE=1 to
// always build.
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const root = path.resolve(__dirname, '..')

function binaryLoads() {
  try {
    require('node-gyp-build')(root)
    return true
  } catch {
    return false
  }
}

const force = /^(1|true|on)$/i.test(process.env.LLAVA_NATIVE_BUILD_FROM_SOURCE || '')
if (!force && binaryLoads()) {
  process.stderr.write('llava-native: using the existing native binary (set LLAVA_NATIVE_BUILD_FROM_SOURCE=1 to rebuild)\n')
  process.exit(0)
}
const r = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js')], { stdio: 'inherit' })
process.exit(r.status === null ? 1 : r.status)
