// Loads the compiled addon once, on first use, and types its raw surface. Nothing outside lib/
// touches the raw binding: the public classes validate every argument before it gets here.
import * as path from 'node:path'
import { beforeAddonLoad } from './cpu'
import { LlavaError } from './errors'
import type { NativeBinding } from './native-types'

const packageRoot = path.resolve(__dirname, '..')
let cached: NativeBinding | undefined

function explainLoadFailure(err: unknown): LlavaError {
  const cause = err instanceof Error ? err.message : String(err)
  const platform = `${process.platform}-${process.arch}`
  const message = [
    `llava-native could not load its native binary for ${platform} (Node ${process.version}, N-API ${process.versions.napi}).`,
    `Tried: ${path.join(packageRoot, 'build', 'Release')} (a source build) and ${path.join(packageRoot, 'prebuilds', platform)} (a prebuilt binary).`,
    `Loader said: ${cause}`,
    'Possible solutions:',
    '- Build from source: `npm rebuild llava-native` with install scripts allowed (needs CMake >= 3.19, a C++17 compiler and git),',
    '  or from a checkout of llava-native: `npm install` (fetches the pinned llama.cpp and builds it).',
    '- If you installed with install scripts disabled, make sure a prebuilt binary for your platform exists in prebuilds/.',
    '- Electron: unpack the .node file from the asar archive (asarUnpack: ["**/*.node"]).',
  ].join('\n')
  return new LlavaError('ERR_BINARY_LOAD', message, { cause: err })
}

/** The raw addon. Loaded lazily so that importing the package never fails on its own. */
export function binding(): NativeBinding {
  if (cached) return cached
  const afterLoad = beforeAddonLoad()
  try {
    const load = require('node-gyp-build') as (dir: string) => NativeBinding
    cached = load(process.env.LLAVA_NATIVE_BINARY_DIR ?? packageRoot)
  } catch (err) {
    throw explainLoadFailure(err)
  } finally {
    afterLoad(cached !== undefined)
  }
  // Native operations run on threads of their own. process.exit() does not wait for them, and
  // exit's destructors must not run under a generation: stop them first (bounded wait).
  const native = cached
  process.once('exit', () => native.shutdown())
  return cached
}
