// The Hugging Face token: HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the file
// `huggingface-cli login` writes (HF_TOKEN_PATH, or HF_HOME/token, or ~/.cache/huggingface/token).
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export function readToken(from: NodeJS.ProcessEnv = process.env): string | undefined {
  const direct = from.HF_TOKEN || from.HUGGING_FACE_HUB_TOKEN
  if (direct) return direct.trim()
  const file =
    from.HF_TOKEN_PATH ||
    path.join(from.HF_HOME || path.join(from.XDG_CACHE_HOME || path.join(from.HOME || os.homedir(), '.cache'), 'huggingface'), 'token')
  try {
    const t = fs.readFileSync(file, 'utf8').trim()
    return t || undefined
  } catch {
    return undefined
  }
}
