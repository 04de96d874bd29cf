// The `llava-native` command line, end to end: the built binary (dist/cli/main.js, from
// `npm run build:ts`) spawned on the tiny synthetic pair. Exit codes, one-line errors, --json
// output, piped chat and Ctrl-C.
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { ensurePair } from '../lib/fixtures'
import { tones, wav16 } from './helpers/audio'
import { bmpFile, root, tempDir, tinyPair } from './helpers/fixtures'

const CLI = path.join(root, 'dist', 'cli', 'main.js')
const pair = tinyPair()
const MODEL = ['--model', pair.model, '--mmproj', pair.mmproj, '--threads', '1']

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function cli(args: string[], input?: string): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: root, encoding: 'utf8', input, timeout: 60000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** The documented shape of a failure: this exit code and exactly one `llava-native: error:` line. */
function expectError(r: Run, code: number, text: string | RegExp): void {
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code, stderr: expect.stringMatching(/^llava-native: error: [^\n]+\n$/) })
  expect(r.stderr).toMatch(text)
}

/** A running CLI whose output is collected as it comes. */
class Live {
  readonly proc: ChildProcessWithoutNullStreams
  stdout = ''
  stderr = ''
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>

  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [CLI, ...args], { cwd: root })
    this.proc.stdout.setEncoding('utf8').on('data', (s: string) => (this.stdout += s))
    this.proc.stderr.setEncoding('utf8').on('data', (s: string) => (this.stderr += s))
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })))
  }

  send(line: string): void {
    this.proc.stdin.write(`${line}\n`)
  }

  async until(what: string, ok: () => boolean, timeoutMs = 30000): Promise<void> {
    const start = Date.now()
    while (!ok()) {
      if (Date.now() - start > timeoutMs) {
        this.proc.kill('SIGKILL')
        throw new Error(`timed out waiting for ${what}\nstdout: ${this.stdout.slice(-500)}\nstderr: ${this.stderr.slice(-2000)}`)
      }
      await sleep(10)
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const count = (s: string, part: string): number => s.split(part).length - 1

let dir: string
let image: string
let notImage: string

beforeAll(() => {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build:ts\` first`)
  dir = tempDir('llava-cli-')
  image = bmpFile(dir, 'photo.bmp').file
  notImage = path.join(dir, 'not-an-image.png')
  fs.writeFileSync(notImage, 'this is not an image')
})

describe('usage', () => {
  test('--help for the program and every command, with the exit codes', () => {
    const main = cli(['--help'])
    expect(main.code).toBe(0)
    for (const command of ['demo', 'describe', 'chat', 'info']) expect(main.stdout).toContain(command)
    expect(main.stdout).toContain('npx llava-native demo')
    for (const command of ['demo', 'describe', 'chat', 'info']) {
      const r = cli([command, '--help'])
      expect(r.code).toBe(0)
      expect(r.stdout).toContain(`Usage: llava-native ${command}`)
      expect(r.stdout).toMatch(/Exit codes:[\s\S]*\n {2}2 {4}usage error[\s\S]*\n {2}130 {2}interrupted/)
    }
    expect(cli(['describe', '--help']).stdout).toMatch(/--json[\s\S]*--temp[\s\S]*--top-k[\s\S]*--top-p[\s\S]*--min-p[\s\S]*--seed[\s\S]*--max-tokens/)
    expect(cli(['chat', '--help']).stdout).toMatch(/--threads[\s\S]*--context-size[\s\S]*--gpu-layers[\s\S]*--verbose/)
    expect(cli(['--version']).stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version)
  })

  test('bad flags and missing arguments exit with 2 and one line', () => {
    expectError(cli(['describe', image, ...MODEL, '--tmep', '0']), 2, /unknown option '--tmep' \(Did you mean --temp\?\)/)
    expectError(cli(['describe', image, ...MODEL, '--temp', 'hot']), 2, /--temp <t>' argument 'hot' is invalid/)
    expectError(cli(['describe', image, ...MODEL, '--top-p', '2']), 2, /Expected a number from 0 to 1/)
    expectError(cli(['describe', image, ...MODEL, '--threads', '0']), 2, /--threads/)
    expectError(cli(['describe', image, ...MODEL, '--gpu-layers', 'many']), 2, /'max' or 'auto'/)
    expectError(cli(['describe', image, ...MODEL, '--reasoning-budget', '-1']), 2, /Expected an integer from 0/)
    expectError(cli(['describe', ...MODEL]), 2, /give at least one image or sound file/)
    expectError(cli(['describe', image, '--model', pair.model]), 2, /required option '--mmproj <file>'/)
    expectError(cli(['chat']), 2, /required option '-m, --model <file>'/)
    expectError(cli(['info']), 2, /missing required argument 'file'/)
    expectError(cli(['info', pair.model, 'extra']), 2, /too many arguments/)
    expectError(cli(['summarize']), 2, /unknown command 'summarize'/)
    const none = cli([])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('Usage: llava-native')
  })
})

describe('info', () => {
  test('a text model: human and JSON output, read from the header only', () => {
    const text = cli(['info', pair.model])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/architecture +llama/)
    expect(text.stdout).toMatch(/context length +2048/)
    expect(text.stdout).toMatch(/file type +F32/)
    expect(text.stdout).toContain("{{ 'USER: ' + message['content']")

    const r = cli(['info', pair.model, '--json'])
    expect(r.code).toBe(0)
    const info = JSON.parse(r.stdout)
    expect(info).toMatchObject({
      kind: 'model',
      architecture: 'llama',
      fileType: 'F32',
      sizeBytes: fs.statSync(pair.model).size,
      tensors: { count: 21, types: { F32: { count: 21 } } },
      model: { contextLength: 2048, embeddingLength: 64, layers: 2, heads: 4, headsKv: 4, vocabSize: 651, tokenizer: 'llama' },
      projector: null,
    })
    expect(info.chatTemplate).toContain('ASSISTANT:')
    expect(info.metadata['tokenizer.ggml.tokens']).toEqual({ type: 'STRING', length: 651 })
  })

  test('a projector', () => {
    const r = cli(['info', pair.mmproj, '--json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({
      kind: 'projector',
      architecture: 'clip',
      model: null,
      projector: { type: 'mlp', hasVision: true, hasAudio: false, imageSize: 32, patchSize: 8, projectionDim: 64 },
      chatTemplate: null,
    })
    expect(cli(['info', pair.mmproj]).stdout).toMatch(/projector type +mlp/)
    expect(JSON.parse(cli(['info', pair.mmproj, '--json']).stdout).projector.audio).toBeNull()
  })

  test('an audio projector: its encoder, not image rows', () => {
    const ultravox = ensurePair('tiny-ultravox')
    expect(JSON.parse(cli(['info', ultravox.mmproj, '--json']).stdout).projector).toMatchObject({
      type: 'ultravox',
      hasVision: false,
      hasAudio: true,
      audio: { embeddingLength: 64, layers: 2, heads: 4, melBins: 128, stackFactor: 8, projectionDim: 64 },
    })
    const human = cli(['info', ultravox.mmproj]).stdout
    expect(human).toMatch(/encoders +audio/)
    expect(human).toMatch(/frames stacked +8/)
    expect(human).not.toMatch(/image size/)
  })

  test('a missing or non-GGUF file exits with 3', () => {
    expectError(cli(['info', path.join(dir, 'missing.gguf')]), 3, /file not found/)
    expectError(cli(['info', notImage]), 3, /not a GGUF file/)
  })
})

describe('demo', () => {
  test('runs the synthetic pair end to end and says the words are noise', () => {
    const r = cli(['demo', '--max-tokens', '8', '--threads', '1'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/weights are random/)
    expect(r.stdout).toMatch(/noise/)
    expect(r.stdout).toMatch(/encoded +16 tokens/)
    expect(r.stdout).toMatch(/timings +prompt \d+ tokens/)
    expect(r.stdout).toMatch(/stopped by +maxTokens/)
    expect(r.stdout).toContain('npx llava-native describe photo.jpg --model')
    expect(r.stdout).toContain('--mmproj')
  })
})

describe('describe', () => {
  test('streams the answer; --json prints the same answer as one object', () => {
    const args = ['describe', image, ...MODEL, '--temp', '0', '--max-tokens', '6']
    const streamed = cli(args)
    expect(streamed.stderr).toBe('')
    expect(streamed.code).toBe(0)
    const r = cli([...args, '--json'])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ stopReason: 'maxTokens', prompt: 'Describe this image.', images: [image] })
    expect(out.timings).toMatchObject({ imageEncodes: 1, generatedTokens: 6 })
    expect(out.text.length).toBeGreaterThan(0)
    expect(streamed.stdout).toBe(`${out.text}\n`)

    // A thinking template: the thinking is kept apart (--json's reasoning), cut by --reasoning-budget;
    // --no-think renders without it.
    const qwq = fs.readFileSync(path.join(root, 'deps', 'llama.cpp', 'models', 'templates', 'Qwen-QwQ-32B.jinja'), 'utf8')
    const thinking = JSON.parse(cli([...args, '--max-tokens', '12', '--chat-template', qwq, '--reasoning-budget', '3', '--json']).stdout)
    expect(thinking.reasoning.length).toBeGreaterThan(0)
    expect(thinking.text).not.toContain('</think>')
    const plain = JSON.parse(cli([...args, '--chat-template', qwq, '--no-think', '--json']).stdout)
    expect(plain.reasoning).toBeUndefined()

    // --json-schema: the JSON answer alone, satisfying the schema; --json-object: any object.
    const schemaFile = path.join(tempDir('llava-cli-schema-'), 'pet.schema.json')
    fs.writeFileSync(schemaFile, JSON.stringify({ type: 'object', properties: { kind: { enum: ['cat', 'dog'] }, legs: { type: 'integer', minimum: 0, maximum: 8 } }, required: ['kind', 'legs'], additionalProperties: false }))
    const structured = cli(['describe', image, ...MODEL, '--temp', '0', '-n', '200', '--json-schema', schemaFile])
    expect(structured.code).toBe(0)
    const pet = JSON.parse(structured.stdout)
    expect(['cat', 'dog']).toContain(pet.kind)
    expect(Number.isInteger(pet.legs)).toBe(true)
    expect(structured.stdout.trim().split('\n')).toHaveLength(1)
    const obj = cli(['describe', image, ...MODEL, '--temp', '0', '-n', '300', '--json-object'])
    expect(obj.code).toBe(0)
    expect(typeof JSON.parse(obj.stdout)).toBe('object')
    expect(JSON.parse(cli(['describe', image, ...MODEL, '--temp', '0', '-n', '200', '--json-schema', schemaFile, '--json']).stdout).json).toEqual(pet)
    expectError(cli(['describe', image, ...MODEL, '--json-schema', schemaFile + '.missing']), 4, /schema file not found/)
    expectError(cli(['describe', image, ...MODEL, '--json-schema', schemaFile, '--json-object']), 2, /one at a time/)
    const cut = cli(['describe', image, ...MODEL, '--temp', '0', '-n', '2', '--json-schema', schemaFile])
    expect(cut.code).toBe(1)
    expect(cut.stderr).toMatch(/cut short .* raise --max-tokens/)

    const two = JSON.parse(cli(['describe', image, image, ...MODEL, '--json', '-n', '2', '--prompt', 'Compare them.']).stdout)
    expect(two).toMatchObject({ prompt: 'Compare them.', images: [image, image], timings: { generatedTokens: 2 } })
  })

  test('input errors exit with 4, model errors with 3, one line each (a stack only with --verbose)', () => {
    expectError(cli(['describe', path.join(dir, 'missing.bmp'), ...MODEL]), 4, /image not found: .*missing\.bmp/)
    expectError(cli(['describe', notImage, ...MODEL]), 4, /not a decodable image.*\(ERR_IMAGE_DECODE\)/)
    expectError(cli(['describe', image, ...MODEL, '-c', '8', '--prompt', 'word '.repeat(400)]), 4, /\(ERR_CONTEXT_OVERFLOW\)/)
    expectError(cli(['describe', image, '--model', path.join(dir, 'missing.gguf'), '--mmproj', pair.mmproj]), 3, /missing\.gguf does not exist/)
    expectError(cli(['describe', image, '--model', notImage, '--mmproj', pair.mmproj]), 3, /\(ERR_MODEL_LOAD\)/)
    expectError(cli(['describe', image, '--model', pair.model, '--mmproj', notImage]), 3, /\(ERR_MMPROJ_LOAD\)/)
    const verbose = cli(['describe', image, '--model', pair.model, '--mmproj', notImage, '--verbose'])
    expect(verbose.code).toBe(3)
    expect(verbose.stderr).toMatch(/llava-native: error: .*\(ERR_MMPROJ_LOAD\)\n/)
    expect(verbose.stderr).toMatch(/\n {4}at /)
  })

  test('Ctrl-C stops the answer and exits with 130', async () => {
    const run = new Live(['describe', image, ...MODEL, '--temp', '0', '--max-tokens', '100000'])
    await run.until('the answer to start', () => run.stdout.length > 20)
    run.proc.kill('SIGINT')
    expect(await run.exited).toEqual({ code: 130, signal: null })
    expect(run.stderr).toBe('')
  })
})

describe('sound', () => {
  const ultravox = ensurePair('tiny-ultravox')
  const AUDIO_MODEL = ['--model', ultravox.model, '--mmproj', ultravox.mmproj, '--threads', '1']
  let wav: string
  let unnamed: string
  beforeAll(() => {
    wav = path.join(dir, 'question.wav')
    fs.writeFileSync(wav, wav16(tones(3, 16000, 1, 3), 16000))
    unnamed = path.join(dir, 'question.bin')
    fs.copyFileSync(wav, unnamed)
  })

  test('describe takes sound files by name and by --audio, with a prompt for sound', () => {
    const byName = JSON.parse(cli(['describe', wav, ...AUDIO_MODEL, '--temp', '0', '-n', '4', '--json']).stdout)
    expect(byName).toMatchObject({ prompt: 'Describe this sound.', audio: [wav], images: [], timings: { imageEncodes: 1, generatedTokens: 4 } })
    const byFlag = JSON.parse(cli(['describe', '--audio', unnamed, ...AUDIO_MODEL, '--temp', '0', '-n', '4', '--json']).stdout)
    expect(byFlag).toMatchObject({ audio: [unnamed], text: byName.text })
    expectError(cli(['describe', path.join(dir, 'missing.wav'), ...AUDIO_MODEL]), 4, /sound not found: .*missing\.wav/)
    expectError(cli(['describe', wav, ...MODEL]), 4, /no audio encoder.*\(ERR_NO_AUDIO\)/)
  })

  test('chat: /audio attaches a sound to the next message', () => {
    const r = cli(['chat', ...AUDIO_MODEL, '--temp', '0', '--max-tokens', '4'], `/audio ${wav}\nWhat is this?\n/audio\n/exit\n`)
    expect(r.code).toBe(0)
    expect(r.stderr).toContain(`attached ${wav} (188 tokens, 3.0 s); it goes with your next message`)
    expect(r.stderr).toContain('/audio needs a path')
    const seeing = cli(['chat', ...MODEL, '--temp', '0', '--max-tokens', '4'], `/audio ${wav}\n/exit\n`)
    expect(seeing.code).toBe(0)
    expect(seeing.stderr).toMatch(/does not hear sound/)
  })
})

describe('chat', () => {
  test('piped input: images, turns that reuse the cache, commands, errors that do not end the chat', () => {
    const input = [
      '/image ' + image,
      'What is in the picture?',
      'And the colours?',
      '/image ' + notImage,
      '/image ' + path.join(dir, 'missing.bmp'),
      '/frobnicate',
      '/reset',
      'Hello again.',
      '/exit',
      'this line is never read',
    ].join('\n')
    const r = cli(['chat', ...MODEL, '--temp', '0', '--max-tokens', '4', '--verbose'], `${input}\n`)
    expect(r.code).toBe(0)
    const notes = r.stderr.split('\n')
    expect(notes).toContain(`attached ${image} (16 tokens); it goes with your next message`)
    // --verbose prints each turn's timings; the second turn sends the whole history again, and the
    // first turn comes from the KV cache
    const timings = notes.filter((l) => /^prompt \d+ tokens/.test(l))
    expect(timings).toHaveLength(3)
    for (const t of timings) expect(t).toContain('(stop: maxTokens)')
    expect(timings[0]).not.toMatch(/reused/)
    expect(timings[1]).toMatch(/\(\d+ reused from the cache\)/)
    expect(r.stderr).toMatch(/llava-native: error: .*not-an-image\.png is not a decodable image/)
    expect(r.stderr).toMatch(/llava-native: error: image not found: .*missing\.bmp/)
    expect(r.stderr).toMatch(/llava-native: error: unknown command \/frobnicate/)
    expect(notes).toContain('conversation forgotten')
    expect(r.stdout.split('\n').filter((l) => l.length > 0).length).toBeGreaterThanOrEqual(1)
  })

  test('Ctrl-C stops an answer, the session answers the next message, /exit ends with 0', async () => {
    // A large context: the tiny model writes ~1000 tokens/s, and the second Ctrl-C waits out the
    // double-press window.
    const chat = new Live(['chat', ...MODEL, '--temp', '0', '--max-tokens', '100000', '--context-size', '65536'])
    await chat.until('the chat to start', () => chat.stderr.includes('chatting with'))
    chat.send(`/image ${image}`)
    chat.send('Tell me a very long story about this picture.')
    await chat.until('the answer to start', () => chat.stdout.length > 20)
    chat.proc.kill('SIGINT')
    const firstStop = Date.now()
    await chat.until('the answer to stop', () => chat.stderr.includes('[stopped]'))
    const stoppedAt = chat.stdout.length
    await sleep(300)
    expect(chat.stdout.length).toBe(stoppedAt) // nothing more was generated

    chat.send('And then?')
    await chat.until('the next answer', () => chat.stdout.length > stoppedAt + 20)
    // past the double-press window, so this Ctrl-C stops the answer rather than quitting
    await sleep(Math.max(0, 1100 - (Date.now() - firstStop)))
    chat.proc.kill('SIGINT')
    await chat.until('the second answer to stop', () => count(chat.stderr, '[stopped]') === 2)
    chat.send('/exit')
    expect(await chat.exited).toEqual({ code: 0, signal: null })
    expect(chat.stderr).not.toContain('error')
  })

  test('Ctrl-C at the prompt exits with 130', async () => {
    const chat = new Live(['chat', ...MODEL])
    await chat.until('the chat to start', () => chat.stderr.includes('chatting with'))
    chat.proc.kill('SIGINT')
    expect(await chat.exited).toEqual({ code: 130, signal: null })
    expect(chat.stdout).toBe('')
  })
})
