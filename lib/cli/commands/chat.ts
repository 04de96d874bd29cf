// llava-native chat --model M [--mmproj P]: a conversation read line by line from stdin, on a
// terminal or from a pipe. The history goes through session.chat() every turn, so the KV cache
// keeps the earlier turns and only the new message is evaluated.
import * as readline from 'node:readline'
import type { Command } from 'commander'
import type { ChatContentPart, ChatMessage, MediaEmbedding, Model, Session } from '../../index'
import { AudioEmbedding } from '../../audio'
import { AnswerWriter } from '../answer'
import { CliError, EXIT, EXIT_CODES_HELP, Interrupted, errorLine } from '../exit'
import {
  type ModelFlags, type SamplingFlags, type TemplateFlags,
  addModelFlags, addRuntimeFlags, addSamplingFlags, addTemplateFlag, chatOptions,
} from '../flags'
import { formatCount, formatTimings } from '../format'
import { Interrupter } from '../interrupt'
import { openModel } from '../load'
import { checkImageFile } from './describe'

interface ChatFlags extends ModelFlags, SamplingFlags, TemplateFlags {
  system?: string
}

const COMMANDS_HELP = `Commands:
  /image <path>  attach an image to your next message (needs --mmproj)
  /audio <path>  attach a sound (WAV, MP3, FLAC) to your next message (needs an audio --mmproj)
  /reset         forget the conversation
  /help          this list
  /exit          quit (also Ctrl-D, or the end of piped input)
Ctrl-C stops an answer; Ctrl-C at the prompt, or twice within a second, quits.`

export function register(program: Command): void {
  const cmd = program
    .command('chat')
    .summary('chat with a model on the terminal or through a pipe; /image and /audio attach media')
    .description(
      'A conversation read line by line from stdin, answers streamed to stdout. Works on a terminal and with piped input. ' +
        'Every turn goes through the model\'s chat template with the whole history; the KV cache keeps earlier turns, so only the new message is evaluated.',
    )
  addModelFlags(cmd, 'optional')
  cmd.option('--system <text>', 'a system message to start the conversation with')
  addSamplingFlags(cmd, 512)
  addTemplateFlag(cmd)
  addRuntimeFlags(cmd)
  cmd.addHelpText(
    'after',
    `
${COMMANDS_HELP}

Examples:
  llava-native chat --model llava-v1.5-7b.Q4_K_M.gguf --mmproj mmproj-model-f16.gguf
  printf '/image cat.jpg\\nWhat animal is this?\\n' | llava-native chat -m model.gguf --mmproj mmproj.gguf --temp 0

${EXIT_CODES_HELP}`,
  )
  cmd.action((flags: ChatFlags) => chat(flags))
}

const note = (s: string): boolean => process.stderr.write(`${s}\n`)

function describeModel(model: Model): string {
  const { info } = model
  const senses = info.vision ? [info.vision.supportsVision ? 'sees images' : '', info.vision.supportsAudio ? 'hears sound' : ''].filter(Boolean).join(' and ') : ''
  const vision = info.vision ? `, ${senses} (projector ${info.vision.projector})` : ', text only'
  return `${info.name || info.architecture} (${info.architecture}, ${formatCount(info.parameters)} parameters${vision})`
}

/** The conversation: history, images waiting for the next message, and one turn at a time. */
class Conversation {
  readonly #model: Model
  readonly #session: Session
  readonly #flags: ChatFlags
  #history: ChatMessage[] = []
  #attached: MediaEmbedding[] = []
  #images: MediaEmbedding[] = []

  constructor(model: Model, flags: ChatFlags) {
    this.#model = model
    this.#session = model.createSession()
    this.#flags = flags
    this.#start()
  }

  #start(): void {
    this.#history = this.#flags.system ? [{ role: 'system', content: this.#flags.system }] : []
  }

  async attach(file: string, kind: 'image' | 'audio', signal: AbortSignal): Promise<void> {
    const vision = this.#model.info.vision
    if (!vision) {
      note(`llava-native: error: this model was loaded without a projector: start chat with --mmproj to use ${kind === 'image' ? 'images' : 'sound'}`)
      return
    }
    if (kind === 'audio' && !vision.supportsAudio) {
      note(`llava-native: error: this projector (${vision.projector}) does not hear sound; load the mmproj of an audio model`)
      return
    }
    checkImageFile(file, kind)
    const media = kind === 'image' ? await this.#model.encodeImage(file, { signal }) : await this.#model.encodeAudio(file, { signal })
    this.#attached.push(media)
    this.#images.push(media)
    const length = media instanceof AudioEmbedding ? `, ${(media.durationMs / 1000).toFixed(1)} s` : ''
    note(`attached ${file} (${media.nTokens} tokens${length}); it goes with your next message`)
  }

  async reset(): Promise<void> {
    await this.#session.reset()
    await Promise.all(this.#images.map((e) => e.dispose()))
    this.#images = []
    this.#attached = []
    this.#start()
    note('conversation forgotten')
  }

  async say(text: string, signal: AbortSignal): Promise<void> {
    const content: string | ChatContentPart[] =
      this.#attached.length === 0
        ? text
        : [
            ...this.#attached.map((m): ChatContentPart => (m instanceof AudioEmbedding ? { type: 'audio', audio: m } : { type: 'image', image: m as never })),
            { type: 'text', text },
          ]
    const user: ChatMessage = { role: 'user', content }
    this.#attached = []
    const answer = new AnswerWriter()
    try {
      const result = await this.#session
        .chat([...this.#history, user], { ...chatOptions(this.#flags), signal, onToken: answer.write })
        .finally(() => answer.end())
      this.#history.push(user, { role: 'assistant', content: result.text })
      if (this.#flags.verbose) note(`${formatTimings(result.timings)} (stop: ${result.stopReason})`)
      if (result.stopReason === 'contextFull') note('(the context is full: /reset to start over, or use a larger --context-size)')
    } catch (err) {
      if (!(err instanceof Interrupted)) throw err
      // Keep what was said: the next message continues from the part of the answer shown.
      if (answer.text.length > 0) this.#history.push(user, { role: 'assistant', content: answer.text })
      note('[stopped]')
    }
  }
}

async function chat(flags: ChatFlags): Promise<void> {
  let rl: readline.Interface | undefined
  let interruptedAtPrompt = false
  const interrupter = new Interrupter(() => {
    interruptedAtPrompt = true
    rl?.close()
  }).install()
  try {
    let model: Model
    try {
      model = await openModel(flags, interrupter.begin())
    } finally {
      interrupter.end()
    }
    try {
      if (!model.info.chatTemplate && flags.chatTemplate === undefined) {
        throw new CliError(EXIT.MODEL, 'the model has no chat template: pass one with --chat-template (a Jinja template, or chatml, vicuna, gemma, …)')
      }
      const conversation = new Conversation(model, flags)
      const interactive = Boolean(process.stdin.isTTY)
      const output = process.stdout.isTTY ? process.stdout : process.stderr
      rl = readline.createInterface({ input: process.stdin, output, terminal: interactive && Boolean(output.isTTY), prompt: '> ' })
      rl.on('SIGINT', interrupter.handle)
      note(`chatting with ${describeModel(model)}. /help lists the commands; Ctrl-C stops an answer.`)
      if (interactive) rl.prompt()
      for await (const line of rl) {
        if (interruptedAtPrompt) break
        const text = line.trim()
        if (text === '/exit' || text === '/quit') break
        const signal = interrupter.begin()
        try {
          await handleLine(conversation, text, signal)
        } catch (err) {
          // A failed turn is reported and the conversation goes on.
          if (err instanceof Interrupted) note('[stopped]')
          else note(`llava-native: error: ${errorLine(err)}`)
        } finally {
          interrupter.end()
        }
        if (interactive && !interruptedAtPrompt) rl.prompt()
      }
    } finally {
      rl?.close()
      await model.dispose()
    }
  } finally {
    interrupter.uninstall()
  }
  if (interruptedAtPrompt) throw new Interrupted()
}

async function handleLine(conversation: Conversation, text: string, signal: AbortSignal): Promise<void> {
  if (text === '') return
  if (!text.startsWith('/')) return conversation.say(text, signal)
  const [command] = text.split(/\s+/, 1)
  const rest = text.slice(command.length).trim()
  switch (command) {
    case '/image':
      if (!rest) note('llava-native: error: /image needs a path: /image photo.jpg')
      else await conversation.attach(rest.replace(/^(["'])(.*)\1$/, '$2'), 'image', signal)
      return
    case '/audio':
      if (!rest) note('llava-native: error: /audio needs a path: /audio question.wav')
      else await conversation.attach(rest.replace(/^(["'])(.*)\1$/, '$2'), 'audio', signal)
      return
    case '/reset':
      return conversation.reset()
    case '/help':
      note(COMMANDS_HELP)
      return
    default:
      note(`llava-native: error: unknown command ${command}; /help lists them`)
  }
}
