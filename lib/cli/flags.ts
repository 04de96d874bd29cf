// The flags several commands share, their parsers (bad values are usage errors, exit code 2), and
// their translation into the library's options.
import { type Command, InvalidArgumentError, Option } from 'commander'
import type { ChatOptions, LoadModelOptions } from '../index'

export interface RuntimeFlags {
  threads?: number
  contextSize?: number
  gpuLayers?: number | 'max' | 'auto'
  verbose?: boolean
}

export interface ModelFlags extends RuntimeFlags {
  model: string
  mmproj?: string
}

export interface SamplingFlags {
  temp?: number
  topK?: number
  topP?: number
  minP?: number
  seed?: number
  maxTokens: number
}

export interface TemplateFlags {
  chatTemplate?: string
  think?: boolean
  reasoningBudget?: number
}

function integer(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (!/^\s*-?\d+\s*$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('Expected an integer.')
    if (n < min || n > max) throw new InvalidArgumentError(`Expected an integer from ${min} to ${max}.`)
    return n
  }
}

function decimal(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('Expected a number.')
    if (n < min || n > max) throw new InvalidArgumentError(`Expected a number from ${min} to ${max}.`)
    return n
  }
}

function gpuLayers(value: string): number | 'max' | 'auto' {
  if (value === 'max' || value === 'auto') return value
  try {
    return integer(0, 100000)(value)
  } catch {
    throw new InvalidArgumentError("Expected a number of layers, 'max' or 'auto'.")
  }
}

/**
 * --model (required) and --mmproj (required or optional). A model named `hf:owner/repo[:QUANT]`
 * brings its repository's projector, so --mmproj is then never required.
 */
export function addModelFlags(cmd: Command, mmproj: 'required' | 'optional'): Command {
  cmd.requiredOption('-m, --model <file>', 'the text model: a GGUF file, hf:owner/repo[:QUANT] (downloaded once, with its projector) or an https:// URL')
  if (mmproj === 'required') {
    cmd.option('--mmproj <file>', 'its vision projector (mmproj GGUF); comes with an hf: model')
    cmd.hook('preAction', (_c, action) => {
      const o = action.opts<{ model?: string; mmproj?: string }>()
      if (o.mmproj === undefined && o.model !== undefined && !o.model.startsWith('hf:')) {
        action.error("error: required option '--mmproj <file>' not specified (it comes with the model when --model is hf:owner/repo)", { exitCode: 2 })
      }
    })
  } else {
    cmd.option('--mmproj <file>', 'its vision projector (mmproj GGUF); needed for images; comes with an hf: model')
  }
  return cmd
}

/** --threads, --context-size, --gpu-layers, --verbose. */
export function addRuntimeFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('-t, --threads <n>', 'CPU threads (default: the number of CPUs)').argParser(integer(1, 1024)))
    .addOption(new Option('-c, --context-size <n>', "context size in tokens (default: the model's, at most 4096)").argParser(integer(1, 1 << 24)))
    .addOption(new Option('--gpu-layers <n>', "layers to offload to a GPU: a number, 'max' or 'auto' (default: max)").argParser(gpuLayers))
    .option('--verbose', "show llama.cpp's log on stderr and stack traces of errors")
}

/** --temp, --top-k, --top-p, --min-p, --seed, --max-tokens. */
export function addSamplingFlags(cmd: Command, maxTokens: number): Command {
  return cmd
    .addOption(new Option('--temp <t>', 'sampling temperature, 0 = greedy (default: 0.8)').argParser(decimal(0, 100)))
    .addOption(new Option('--top-k <k>', 'top-k sampling, 0 = off (default: 40)').argParser(integer(0, 1 << 24)))
    .addOption(new Option('--top-p <p>', 'top-p (nucleus) sampling (default: 0.95)').argParser(decimal(0, 1)))
    .addOption(new Option('--min-p <p>', 'min-p sampling (default: 0.05)').argParser(decimal(0, 1)))
    .addOption(new Option('--seed <n>', 'sampling seed (default: random)').argParser(integer(0, 0xfffffffe)))
    .addOption(new Option('-n, --max-tokens <n>', 'most tokens to generate per answer').argParser(integer(0, 1 << 24)).default(maxTokens))
}

export function addTemplateFlag(cmd: Command): Command {
  return cmd
    .option('--chat-template <template>', "a chat template instead of the model's: Jinja, or a llama.cpp name (chatml, vicuna, gemma, …)")
    .option('--no-think', "don't let a reasoning model think first (default: it thinks where its template can)")
    .addOption(new Option('--reasoning-budget <n>', 'most tokens a reasoning model may think (default: unlimited)').argParser(integer(0, 1 << 24)))
}

/** The loadModel() options the flags ask for (unset flags are left to the library's defaults). */
export function loadOptions(f: RuntimeFlags & Partial<ModelFlags>): Omit<LoadModelOptions, 'model'> {
  const o: Omit<LoadModelOptions, 'model'> = {}
  if (f.mmproj !== undefined) o.mmproj = f.mmproj
  if (f.threads !== undefined) o.threads = f.threads
  if (f.contextSize !== undefined) o.contextSize = f.contextSize
  if (f.gpuLayers !== undefined) o.gpuLayers = f.gpuLayers
  return o
}

/** The generation options the sampling and template flags ask for. */
export function chatOptions(f: SamplingFlags & TemplateFlags): Omit<ChatOptions, 'onToken' | 'signal'> {
  const o: Omit<ChatOptions, 'onToken' | 'signal'> = { maxTokens: f.maxTokens }
  if (f.temp !== undefined) o.temperature = f.temp
  if (f.topK !== undefined) o.topK = f.topK
  if (f.topP !== undefined) o.topP = f.topP
  if (f.minP !== undefined) o.minP = f.minP
  if (f.seed !== undefined) o.seed = f.seed
  if (f.chatTemplate !== undefined) o.chatTemplate = f.chatTemplate
  if (f.think === false) o.enableThinking = false
  if (f.reasoningBudget !== undefined) o.reasoning = { budget: f.reasoningBudget }
  return o
}
