// Where models live: the Hugging Face hub cache, found exactly as llama.cpp finds it
// (common/hf-cache.cpp get_cache_directory), so llama.cpp, Python's huggingface_hub and llava-native
// share one copy of each file.
import * as os from 'node:os'
import * as path from 'node:path'

function env(name: string, from: NodeJS.ProcessEnv): string | undefined {
  const v = from[name]
  return v ? v : undefined
}

/** The hub cache root: LLAMA_CACHE, HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub. */
export function hubCacheDir(from: NodeJS.ProcessEnv = process.env): string {
  const direct = env('LLAMA_CACHE', from) ?? env('HF_HUB_CACHE', from) ?? env('HUGGINGFACE_HUB_CACHE', from)
  if (direct) return path.resolve(direct)
  const hfHome = env('HF_HOME', from)
  if (hfHome) return path.resolve(hfHome, 'hub')
  const xdg = env('XDG_CACHE_HOME', from)
  if (xdg) return path.resolve(xdg, 'huggingface', 'hub')
  return path.join(env('HOME', from) ?? os.homedir(), '.cache', 'huggingface', 'hub')
}

/** Where llama.cpp puts files fetched by plain URL (common.cpp fs_get_cache_directory). */
export function urlCacheDir(from: NodeJS.ProcessEnv = process.env): string {
  const direct = env('LLAMA_CACHE', from)
  if (direct) return path.resolve(direct)
  if (process.platform === 'darwin') return path.join(env('HOME', from) ?? os.homedir(), 'Library', 'Caches', 'llama.cpp')
  if (process.platform === 'win32') return path.join(env('LOCALAPPDATA', from) ?? os.homedir(), 'llama.cpp')
  const base = env('XDG_CACHE_HOME', from) ?? path.join(env('HOME', from) ?? os.homedir(), '.cache')
  return path.join(base, 'llama.cpp')
}

/** The hub's endpoint: `override`, MODEL_ENDPOINT, then HF_ENDPOINT, then huggingface.co; always ends with '/'. */
export function hubEndpoint(override?: string, from: NodeJS.ProcessEnv = process.env): string {
  const e = override || (env('MODEL_ENDPOINT', from) ?? env('HF_ENDPOINT', from) ?? 'https://huggingface.co/')
  return e.endsWith('/') ? e : e + '/'
}

/** HF_HUB_OFFLINE=1 (huggingface_hub's switch) or LLAMA_ARG_OFFLINE (llama.cpp's --offline). */
export function offlineFromEnv(from: NodeJS.ProcessEnv = process.env): boolean {
  const truthy = (v: string | undefined): boolean => v !== undefined && /^(1|true|yes|on)$/i.test(v.trim())
  return truthy(from.HF_HUB_OFFLINE) || truthy(from.LLAMA_ARG_OFFLINE)
}
