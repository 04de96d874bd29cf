// llava-native describe <image or sound…> --model M --mmproj P [--audio F] [--prompt "…"] [--json] [--json-schema F | --json-object]
import * as fs from 'node:fs'
import type { Command } from 'commander'
import type { ChatContentPart, ResponseFormat } from '../../index'
import { AnswerWriter } from '../answer'
import { CliError, EXIT, EXIT_CODES_HELP } from '../exit'
import {
  type ModelFlags, type SamplingFlags, type TemplateFlags,
  addModelFlags, addRuntimeFlags, addSamplingFlags, addTemplateFlag, chatOptions,
} from '../flags'
import { formatTimings, toJson } from '../format'
import { Interrupter } from '../interrupt'
import { openModel } from '../load'

export const DEFAULT_PROMPT = 'Describe this image.'
export const DEFAULT_AUDIO_PROMPT = 'Describe this sound.'
/** Files `describe` takes as sound by their name (others by `--audio`). */
export const AUDIO_EXTENSIONS = /\.(wav|wave|mp3|flac)$/i

interface DescribeFlags extends ModelFlags, SamplingFlags, TemplateFlags {
  prompt?: string
  audio?: string[]
  json?: boolean
  jsonSchema?: string
  jsonObject?: boolean
}

/** The response format the flags ask for: a JSON Schema from a file, any JSON object, or none. */
function responseFormat(flags: DescribeFlags): ResponseFormat | undefined {
  if (flags.jsonSchema !== undefined && flags.jsonObject) throw new CliError(EXIT.USAGE, '--json-schema and --json-object go one at a time')
  if (flags.jsonObject) return { type: 'json_object' }
  if (flags.jsonSchema === undefined) return undefined
  let text: string
  try {
    text = fs.readFileSync(flags.jsonSchema, 'utf8')
  } catch {
    throw new CliError(EXIT.INPUT, `schema file not found: ${flags.jsonSchema}`)
  }
  try {
    return { type: 'json_schema', schema: JSON.parse(text) as object }
  } catch (err) {
    throw new CliError(EXIT.INPUT, `the schema file ${flags.jsonSchema} is not JSON: ${(err as Error).message}`)
  }
}

/** Refuses a path that is not an existing regular file, with the input exit code (4). */
export function checkImageFile(file: string, kind: 'image' | 'audio' = 'image'): void {
  const what = kind === 'image' ? 'image' : 'sound'
  let stat: fs.Stats
  try {
    stat = fs.statSync(file)
  } catch {
    throw new CliError(EXIT.INPUT, `${what} not found: ${file}`)
  }
  if (!stat.isFile()) throw new CliError(EXIT.INPUT, `${what} is not a file: ${file}`)
}

export function register(program: Command): void {
  const cmd = program
    .command('describe')
    .summary('answer a prompt about images or sounds (default: describe them)')
    .description(
      'Answers a prompt about one or more images (a vision model) or sounds (an audio model), through the model\'s chat template, streaming the answer to stdout.',
    )
    .argument('[media...]', 'image files (JPEG, PNG, BMP, GIF, TGA, PSD, HDR, PIC, PNM; WebP, AVIF, TIFF with sharp) and sound files (.wav, .mp3, .flac)')
  addModelFlags(cmd, 'required')
  cmd
    .option('--audio <file...>', 'sound files, whatever their names (WAV, MP3, FLAC)')
    .option('--prompt <text>', `what to ask; the media go before it (default: "${DEFAULT_PROMPT}", or "${DEFAULT_AUDIO_PROMPT}" for sound alone)`)
    .option('--json', 'print one JSON object { text, stopReason, timings, … } instead of streaming')
    .option('--json-schema <file>', 'answer with JSON that satisfies this JSON Schema, and print that JSON alone')
    .option('--json-object', 'answer with a JSON object, and print it alone')
  addSamplingFlags(cmd, 512)
  addTemplateFlag(cmd)
  addRuntimeFlags(cmd)
  cmd.addHelpText(
    'after',
    `
Examples:
  llava-native describe photo.jpg --model llava-v1.5-7b.Q4_K_M.gguf --mmproj mmproj-model-f16.gguf
  llava-native describe a.png b.png -m model.gguf --mmproj mmproj.gguf --prompt "What changed?" --json
  llava-native describe receipt.jpg -m model.gguf --mmproj mmproj.gguf --prompt "Read the receipt." --json-schema receipt.schema.json
  llava-native describe question.wav -m ultravox.gguf --mmproj mmproj-ultravox.gguf --prompt "Answer the question."

${EXIT_CODES_HELP}`,
  )
  cmd.action((media: string[], flags: DescribeFlags) => describe(media, flags))
}

async function describe(files: string[], flags: DescribeFlags): Promise<void> {
  const parts: ChatContentPart[] = [
    ...files.map((f): ChatContentPart => (AUDIO_EXTENSIONS.test(f) ? { type: 'audio', audio: f } : { type: 'image', image: f })),
    ...(flags.audio ?? []).map((f): ChatContentPart => ({ type: 'audio', audio: f })),
  ]
  if (parts.length === 0) throw new CliError(EXIT.USAGE, 'give at least one image or sound file (or --audio FILE)')
  for (const p of parts) checkImageFile(p.type === 'audio' ? (p.audio as string) : (p as { image: string }).image, p.type === 'audio' ? 'audio' : 'image')
  const images = files
  const prompt = flags.prompt ?? (parts.every((p) => p.type === 'audio') ? DEFAULT_AUDIO_PROMPT : DEFAULT_PROMPT)
  const format = responseFormat(flags) // a bad schema file is reported before the model loads
  const interrupter = new Interrupter().install()
  const signal = interrupter.begin()
  try {
    const model = await openModel(flags, signal)
    try {
      const content: ChatContentPart[] = [...parts, { type: 'text', text: prompt }]
      const answer = new AnswerWriter()
      const result = await model
        .createSession()
        .chat([{ role: 'user', content }], { ...chatOptions(flags), signal, onToken: flags.json || format ? undefined : answer.write, responseFormat: format })
        .finally(() => answer.end())
      if (format && !flags.json) {
        if (result.json === undefined) {
          throw new CliError(EXIT.FAILURE, `the answer was cut short before its JSON was complete (stop: ${result.stopReason}); raise --max-tokens`)
        }
        process.stdout.write(`${JSON.stringify(result.json)}\n`)
        if (flags.verbose) process.stderr.write(`${formatTimings(result.timings)} (stop: ${result.stopReason})\n`)
      } else if (flags.json) {
        const { text, reasoning, stopReason, timings } = result
        const extra = { ...(reasoning ? { reasoning } : {}), ...(format ? { json: result.json ?? null } : {}) }
        const audio = [...files.filter((f) => AUDIO_EXTENSIONS.test(f)), ...(flags.audio ?? [])]
        process.stdout.write(
          `${toJson({ text, ...extra, stopReason, timings, prompt, images: images.filter((f) => !AUDIO_EXTENSIONS.test(f)), ...(audio.length ? { audio } : {}), model: flags.model, mmproj: flags.mmproj })}\n`,
        )
      } else if (flags.verbose) {
        process.stderr.write(`${formatTimings(result.timings)} (stop: ${result.stopReason})\n`)
      }
    } finally {
      await model.dispose()
    }
  } finally {
    interrupter.uninstall()
  }
}
