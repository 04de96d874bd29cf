// Starting a model's child process: Electron's utilityProcess in Electron's main process (a Node
// child the app's lifecycle knows about), elsewhere a spawn of the same Node binary.
import { spawn } from 'node:child_process'
import type { Readable } from 'node:stream'
import { nodeChildEnv } from '../node-child'

export interface ChildHandle {
  readonly pid: number | undefined
  readonly stderr: Readable | null
  kill(signal?: NodeJS.Signals): void
  /** Once, when the process has ended: its exit code, or the signal that ended it. */
  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void
  /** Lets the host exit while the child lives (the child ends with it). */
  unref(): void
}

interface UtilityProcess {
  pid: number | undefined
  stderr: Readable | null
  kill(): boolean
  on(event: 'exit', listener: (code: number) => void): void
}

function electronUtilityProcess(): { fork(modulePath: string, args: string[], options: object): UtilityProcess } | undefined {
  if (!process.versions.electron || (process as { type?: string }).type !== 'browser') return undefined
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('electron') as { utilityProcess?: ReturnType<typeof electronUtilityProcess> }).utilityProcess
  } catch {
    return undefined
  }
}

export function startChild(script: string, env: NodeJS.ProcessEnv): ChildHandle {
  const utility = electronUtilityProcess()
  if (utility) {
    const child = utility.fork(script, [], { stdio: ['ignore', 'inherit', 'pipe'], env, serviceName: 'llava-native model' })
    return {
      get pid() {
        return child.pid
      },
      stderr: child.stderr,
      kill: () => void child.kill(),
      // utilityProcess reports a code only; a crash shows as a non-zero one
      onExit: (listener) => child.on('exit', (code) => listener(code, null)),
      unref: () => undefined,
    }
  }
  // In Electron outside its main process, the executable is Electron itself: run it as Node.
  const childEnv = nodeChildEnv(env)
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'inherit', 'pipe'], env: childEnv, windowsHide: true })
  return {
    pid: child.pid,
    stderr: child.stderr,
    kill: (signal) => void child.kill(signal),
    onExit: (listener) => child.once('exit', listener),
    unref: () => {
      child.unref()
      ;(child.stderr as unknown as { unref?: () => void }).unref?.()
    },
  }
}
