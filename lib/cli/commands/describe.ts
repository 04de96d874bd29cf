// llava-native describe <image…> --model M --mmproj P [--prompt "…"] [--json]
import * as fs from 'node:fs'
import type { Command } from 'commander'
import type { ChatContentPart } from '../../index'
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
  addSamplingFlags(cmd, 512)
  addTemplateFlag(cmd)
  addRuntimeFlags(cmd)
  cmd.addHelpText(
    'after',
    `
Examples:
  llava-native describe photo.jpg --model llava-v1.5-7b.Q4_K_M.gguf --mmproj mmproj-model-f16.gguf
  llava-native describe a.png b.png -m model.gguf --mmproj mmproj.gguf --prompt "What changed?" --json

${EXIT_CODES_HELP}`,
  )
  cmd.action((images: string[], flags: DescribeFlags) => describe(images, flags))
}

async function describe(images: string[], flags: DescribeFlags): Promise<void> {
  images.forEach(checkImageFile)
  const interrupter = new Interrupter().install()
  const signal = interrupter.begin()
  try {
    const model = await openModel(flags, signal)
    try {
      const content: ChatContentPart[] = [...images.map((image): ChatContentPart => ({ type: 'image', image })), { type: 'text', text: flags.prompt }]
      const answer = new AnswerWriter()
      const result = await model
        .createSession()
        .chat([{ role: 'user', content }], { ...chatOptions(flags), signal, onToken: flags.json ? undefined : answer.write })
        .finally(() => answer.end())
      if (flags.json) {
        const { text, reasoning, stopReason, timings } = result
        process.stdout.write(`${toJson({ text, ...(reasoning ? { reasoning } : {}), stopReason, timings, prompt: flags.prompt, images, model: flags.model, mmproj: flags.mmproj })}\n`)
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
