// What starting a Node child process of this package's own takes, wherever it runs from.
import * as fs from 'node:fs'
import * as path from 'node:path'

/**
 * A compiled script of this package, `lib/<room>/<name>.ts` as JavaScript: beside the calling
 * module in dist/, or taken from dist/ when the caller runs from TypeScript sources (ts-jest).
 */
export function compiledScript(room: string, name: string): string {
  const dist = path.resolve(__dirname, '..', 'dist', room, `${name}.js`)
  const beside = path.resolve(__dirname, room, `${name}.js`)
  return fs.existsSync(beside) ? beside : dist
}

/** The environment for running process.execPath as Node: in Electron the executable is Electron itself. */
export function nodeChildEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return process.versions.electron ? { ...env, ELECTRON_RUN_AS_NODE: '1' } : env
}
