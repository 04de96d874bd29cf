// llava-native pull | ls | rm: models by name in the Hugging Face hub cache that llama.cpp and
// huggingface_hub share (LLAMA_CACHE, HF_HUB_CACHE, HF_HOME, …; MODEL_ENDPOINT; HF_TOKEN).
import type { Command } from 'commander'
import { listCachedModels, LlavaError, removeCachedModel, resolveModel } from '../../index'
import { isRemoteSpec } from '../../hub'
import { hubCacheDir } from '../../hub/cache-dir'
import { downloadProgress } from '../download-bar'
import { CliError, EXIT, EXIT_CODES_HELP } from '../exit'
import { formatBytes, table, toJson } from '../format'
import { Interrupter } from '../interrupt'

const ENV_HELP = `Environment:
  HF_TOKEN          a Hugging Face token, for gated and private repositories
  MODEL_ENDPOINT    another hub (or HF_ENDPOINT); default https://huggingface.co
  LLAMA_CACHE       the cache directory (or HF_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub,
                    ~/.cache/huggingface/hub), shared with llama.cpp and huggingface_hub
  HF_HUB_OFFLINE=1  use the cache only`

export function register(program: Command): void {
  program
    .command('pull')
    .summary('download a model (and its projector) into the cache')
    .description(
      'Downloads hf:owner/repo[:QUANT] (or hf:owner/repo/file.gguf, or an https:// URL) the way llama.cpp -hf picks its files: the quant tag (default Q4_K_M, then Q8_0), every part of a split model, and the nearest mmproj. Interrupted downloads resume; every file is checked against the size and SHA-256 the hub lists. Prints the local paths.',
    )
    .argument('<model>', 'hf:owner/repo[:QUANT], hf:owner/repo/path/file.gguf or https://…/file.gguf')
    .option('--no-mmproj', 'the text model only')
    .option('--json', 'print one JSON object { model, mmproj, files, … }')
    .addHelpText('after', `\nExamples:\n  llava-native pull hf:ggml-org/SmolVLM-500M-Instruct-GGUF\n  llava-native pull hf:ggml-org/SmolVLM-500M-Instruct-GGUF:f16 --json\n\n${ENV_HELP}\n\n${EXIT_CODES_HELP}`)
    .action((model: string, flags: { mmproj: boolean; json?: boolean }) => pull(model, flags))

  program
    .command('ls')
    .summary('list the models in the cache')
    .description('Lists the models in the hub cache (the ones llama.cpp and llava-native downloaded), one per quant, with their size.')
    .option('--json', 'print a JSON array')
    .addHelpText('after', `\n${ENV_HELP}\n\n${EXIT_CODES_HELP}`)
    .action((flags: { json?: boolean }) => ls(flags))

  program
    .command('rm')
    .summary('remove a model from the cache')
    .description('Removes hf:owner/repo:QUANT (that quant\'s files and the blobs nothing else uses) or hf:owner/repo (the whole repository) from the hub cache, as llama.cpp does.')
    .argument('<model>', 'hf:owner/repo[:QUANT]')
    .addHelpText('after', `\n${ENV_HELP}\n\n${EXIT_CODES_HELP}`)
    .action((model: string) => rm(model))
}

async function pull(name: string, flags: { mmproj: boolean; json?: boolean }): Promise<void> {
  if (!isRemoteSpec(name)) throw new CliError(EXIT.USAGE, `pull takes hf:owner/repo[:QUANT] or an https:// URL, not ${JSON.stringify(name)}`)
  const interrupter = new Interrupter().install()
  const signal = interrupter.begin()
  const progress = downloadProgress()
  try {
    const r = await resolveModel(name, { mmproj: flags.mmproj, revalidate: true, signal, onProgress: progress.onProgress })
    progress.finish()
    if (flags.json) {
      process.stdout.write(`${toJson(r)}\n`)
      return
    }
    const rows: Array<[string, string]> = [['model', r.model]]
    if (r.mmproj) rows.push(['mmproj', r.mmproj])
    const fetched = r.files.filter((f) => f.downloaded)
    rows.push(['downloaded', fetched.length ? fetched.map((f) => `${f.name} (${formatBytes(f.size ?? 0)})`).join(', ') : 'nothing (already in the cache)'])
    process.stdout.write(table(rows))
  } finally {
    progress.finish()
    interrupter.uninstall()
  }
}

function ls(flags: { json?: boolean }): void {
  const models = listCachedModels()
  if (flags.json) {
    process.stdout.write(`${toJson(models)}\n`)
    return
  }
  if (models.length === 0) {
    process.stdout.write(`no models in ${hubCacheDir()}\n`)
    return
  }
  const width = Math.max(...models.map((m) => m.name.length))
  for (const m of models) process.stdout.write(`${m.name.padEnd(width)}  ${formatBytes(m.size).padStart(9)}  ${m.files[0] ?? ''}\n`)
}

function rm(name: string): void {
  let removed: string[]
  try {
    removed = removeCachedModel(name)
  } catch (err) {
    if (err instanceof LlavaError && err.code === 'ERR_INVALID_ARGUMENT') throw new CliError(EXIT.USAGE, err.message, { cause: err })
    throw err
  }
  if (removed.length === 0) throw new CliError(EXIT.MODEL, `${name} is not in the cache (${hubCacheDir()})`)
  process.stdout.write(`removed ${name} (${removed.length} ${removed.length === 1 ? 'entry' : 'entries'})\n`)
}
