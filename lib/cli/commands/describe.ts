// llava-native describe <image…> --model M --mmproj P [--prompt "…"] [--json] [--json-schema F | --json-object]
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

interface DescribeFlags extends ModelFlags, SamplingFlags, TemplateFlags {
  prompt: string
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
export function checkImageFile(file: string): void {
  let stat: fs.Stats
  try {
    stat = fs.statSync(file)
  } catch {
    throw new CliError(EXIT.INPUT, `image not found: ${file}`)
  }
  if (!stat.isFile()) throw new CliError(EXIT.INPUT, `image is not a file: ${file}`)
}

export function register(program: Command): void {
  const cmd = program
    .command('describe')
    .summary('answer a prompt about images (default: describe them)')
    .description('Answers a prompt about one or more images with a vision model, through its chat template, streaming the answer to stdout.')
    .argument('<image...>', 'image files: JPEG, PNG, BMP, GIF, TGA, PSD, HDR, PIC, PNM')
  addModelFlags(cmd, 'required')
  cmd
    .option('--prompt <text>', 'what to ask; the images go before it', DEFAULT_PROMPT)
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

${EXIT_CODES_HELP}`,
  )
  cmd.action((images: string[], flags: DescribeFlags) => describe(images, flags))
}

async function describe(images: string[], flags: DescribeFlags): Promise<void> {
  images.forEach(checkImageFile)
  const format = responseFormat(flags) // a bad schema file is reported before the model loads
  const interrupter = new Interrupter().install()
  const signal = interrupter.begin()
  try {
    const model = await openModel(flags, signal)
    try {
      const content: ChatContentPart[] = [...images.map((image): ChatContentPart => ({ type: 'image', image })), { type: 'text', text: flags.prompt }]
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
        process.stdout.write(`${toJson({ text, ...extra, stopReason, timings, prompt: flags.prompt, images, model: flags.model, mmproj: flags.mmproj })}\n`)
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
