// llava-native demo: the whole pipeline on the project's tiny synthetic model, with no download.
import * as fs from 'node:fs'
import type { Command } from 'commander'
import { ensurePair } from '../../fixtures'
import { AnswerWriter } from '../answer'
import { EXIT_CODES_HELP } from '../exit'
import { type RuntimeFlags, type SamplingFlags, addRuntimeFlags, addSamplingFlags, chatOptions } from '../flags'
import { formatBytes, formatMs, formatTimings, table } from '../format'
import { Interrupter } from '../interrupt'
import { openModel } from '../load'
import { SCENE_DESCRIPTION, drawScene } from '../scene'
import { DEFAULT_PROMPT } from './describe'

interface DemoFlags extends RuntimeFlags, SamplingFlags {
  prompt: string
}

const LABEL_WIDTH = 10

export const REAL_MODEL_COMMAND = 'npx llava-native describe photo.jpg --model llava-v1.5-7b.Q4_K_M.gguf --mmproj mmproj-model-f16.gguf'

export function register(program: Command): void {
  const cmd = program
    .command('demo')
    .summary('run a tiny synthetic model end to end (nothing to download)')
    .description(
      'Generates (once, then cached) a tiny LLaVA-1.5 model with random weights, loads it, encodes a picture drawn in code, and streams an answer with timings. ' +
        'It shows that the native stack works on this machine; the weights are random, so the words are noise.',
    )
    .option('--prompt <text>', 'what to ask about the picture', DEFAULT_PROMPT)
  addSamplingFlags(cmd, 32)
  addRuntimeFlags(cmd)
  cmd.addHelpText('after', `\nWith a real model:\n  ${REAL_MODEL_COMMAND}\n\n${EXIT_CODES_HELP}`)
  cmd.action((flags: DemoFlags) => demo(flags))
}

async function demo(flags: DemoFlags): Promise<void> {
  const out = (s: string): boolean => process.stdout.write(s)
  out('llava-native demo: a tiny synthetic LLaVA-1.5 model, end to end.\n')
  out('Its weights are random, so the answer below is noise: the demo checks the machinery, not the model.\n\n')

  const t0 = performance.now()
  const pair = ensurePair('tiny')
  const pairMs = performance.now() - t0
  out(
    table([
      ['model', `${pair.model} (${formatBytes(fs.statSync(pair.model).size)})`],
      ['projector', `${pair.mmproj} (${formatBytes(fs.statSync(pair.mmproj).size)})`],
      ['ready in', `${formatMs(pairMs)} (generated on first use, then cached)`],
    ], LABEL_WIDTH),
  )

  const interrupter = new Interrupter().install()
  const signal = interrupter.begin()
  try {
    const t1 = performance.now()
    const model = await openModel({ ...flags, model: pair.model, mmproj: pair.mmproj }, signal)
    try {
      const { info } = model
      const scene = drawScene()
      const image = await model.encodeImage(scene, { signal })
      out(
        table([
          [
            'loaded',
            `in ${formatMs(performance.now() - t1)}: ${info.architecture}, ${info.layers} layers, ${info.embeddingLength}-wide embeddings, ` +
              `projector ${info.vision?.projector ?? 'none'}`,
          ],
          ['image', `${scene.width}×${scene.height} pixels drawn in code (${SCENE_DESCRIPTION})`],
          ['encoded', `${image.nTokens} tokens in ${formatMs(image.encodeMs)}`],
          ['prompt', flags.prompt],
        ], LABEL_WIDTH),
      )
      out('\nanswer (noise: random weights):\n')
      const answer = new AnswerWriter()
      const result = await model
        .createSession()
        .chat([{ role: 'user', content: [{ type: 'image', image }, { type: 'text', text: flags.prompt }] }], {
          ...chatOptions(flags),
          signal,
          onToken: answer.write,
        })
        .finally(() => answer.end())
      out(`\n${table([['timings', formatTimings(result.timings)], ['stopped by', result.stopReason]], LABEL_WIDTH)}`)
      out(`\nEverything works. For real answers, run a real model (GGUF text model + its mmproj):\n\n  ${REAL_MODEL_COMMAND}\n`)
    } finally {
      await model.dispose()
    }
  } finally {
    interrupter.uninstall()
  }
}
