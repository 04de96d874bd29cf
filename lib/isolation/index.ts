// Models whose llama.cpp runs in a child process (`isolation: 'process'`).
import { LlavaError } from '../errors'
import type { NativeAbortHandle, NativeLoadParams, NativeModel } from '../native-types'
import { invalid } from '../validate'
import { RemoteModel } from './remote'

export { remoteBinding } from './remote'

/** Where a model's llama.cpp runs: 'none' in this process, 'process' in a child process of its own. */
export type Isolation = 'none' | 'process'

/** The option, or the default from LLAVA_NATIVE_ISOLATION, or 'none'. */
export function isolationOption(value: unknown): Isolation {
  if (value === undefined) {
    const env = process.env.LLAVA_NATIVE_ISOLATION
    if (env === undefined || env === '') return 'none'
    if (env !== 'none' && env !== 'process') {
      throw new LlavaError('ERR_INVALID_ARGUMENT', `LLAVA_NATIVE_ISOLATION is ${JSON.stringify(env)}: set it to 'none' or 'process', or unset it`, { details: { option: 'isolation' } })
    }
    return env
  }
  if (value !== 'none' && value !== 'process') throw invalid('isolation', "'none' or 'process'", value)
  return value
}

export async function loadIsolated(
  params: NativeLoadParams,
  abort: NativeAbortHandle,
  onProgress: ((f: number) => void) | undefined,
  onCrash: ((e: LlavaError) => void) | undefined,
  memoryLimit: number | undefined,
): Promise<NativeModel> {
  const model = await RemoteModel.load(params, abort, onProgress, memoryLimit)
  model.channel.onCrash = onCrash
  return model
}
