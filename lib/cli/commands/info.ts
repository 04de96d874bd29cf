// llava-native info <file.gguf> [--json]: a model's or projector's metadata, without loading weights.
import * as fs from 'node:fs'
import type { Command } from 'commander'
import { GGUFError } from '../../gguf/reader'
import { isRemoteSpec, resolveModel } from '../../hub'
import { downloadProgress } from '../download-bar'
import { CliError, EXIT, EXIT_CODES_HELP } from '../exit'
import { formatBytes, formatCount, table, toJson } from '../format'
import { type GGUFSummary, summarize } from '../gguf-summary'

export function register(program: Command): void {
  program
    .command('info')
    .summary("show a GGUF file's metadata without loading it")
    .description(
      "Shows what a GGUF file is — architecture, size, quantization, tensors, context and embedding lengths, layers, heads, projector type, image size, audio encoder, chat template — reading only its header: no weights are loaded. Works on text models and on projectors (mmproj).",
    )
    .argument('<file>', 'a GGUF file (a text model or a projector), or hf:owner/repo[:QUANT] (its model, fetched into the cache first)')
    .option('--json', 'print one JSON object, with every metadata entry')
    .addHelpText(
      'after',
      `
Examples:
  llava-native info llava-v1.5-7b.Q4_K_M.gguf
  llava-native info mmproj-model-f16.gguf --json

${EXIT_CODES_HELP}`,
    )
    .action(async (file: string, flags: { json?: boolean }) => info(await localFile(file), flags))
}

async function localFile(name: string): Promise<string> {
  if (!isRemoteSpec(name)) return name
  const progress = downloadProgress()
  try {
    return (await resolveModel(name, { mmproj: false, onProgress: progress.onProgress })).model
  } finally {
    progress.finish()
  }
}

function info(file: string, flags: { json?: boolean }): void {
  let stat: fs.Stats
  try {
    stat = fs.statSync(file)
  } catch {
    throw new CliError(EXIT.MODEL, `file not found: ${file}`)
  }
  if (!stat.isFile()) throw new CliError(EXIT.MODEL, `not a file: ${file}`)
  let s: GGUFSummary
  try {
    s = summarize(file)
  } catch (err) {
    if (err instanceof GGUFError) throw new CliError(EXIT.MODEL, `${file}: ${err.message}`, { cause: err })
    throw err
  }
  process.stdout.write(flags.json ? `${toJson(s)}\n` : render(s))
}

const show = (v: number | string | null | undefined): string => (v === null || v === undefined ? '–' : String(v))

function render(s: GGUFSummary): string {
  const rows: Array<[string, string]> = [
    ['file', s.file],
    ['size', `${formatBytes(s.sizeBytes)} (GGUF v${s.ggufVersion}, ${Object.keys(s.metadata).length} metadata entries)`],
    ['kind', s.kind === 'projector' ? 'projector (mmproj)' : 'text model'],
    ['architecture', show(s.architecture)],
    ['name', show(s.name)],
    ['file type', s.fileType === null ? '–' : `${s.fileType}${s.fileTypeGuessed ? ' (guessed from the tensors)' : ''}`],
    ['parameters', formatCount(s.parameters)],
    [
      'tensors',
      `${s.tensors.count}, ${formatBytes(s.tensors.bytes)}: ` +
        Object.entries(s.tensors.types)
          .sort((a, b) => b[1].bytes - a[1].bytes)
          .map(([type, t]) => `${type} ×${t.count}`)
          .join(', '),
    ],
  ]
  const m = s.model
  if (m) {
    rows.push(
      ['context length', show(m.contextLength)],
      ['embedding length', show(m.embeddingLength)],
      ['layers', show(m.layers)],
      ['heads', m.heads === null ? '–' : `${m.heads} (${show(m.headsKv)} for keys/values)`],
      ['feed-forward length', show(m.feedForwardLength)],
      ['rope freq base', show(m.ropeFreqBase)],
      ['vocabulary', m.vocabSize === null ? '–' : `${m.vocabSize} tokens${m.tokenizer ? ` (${m.tokenizer} tokenizer)` : ''}`],
      ['bos / eos', `${show(m.bosToken)} / ${show(m.eosToken)}`],
    )
  }
  const p = s.projector
  if (p) {
    const modalities = [p.hasVision && 'vision', p.hasAudio && 'audio'].filter(Boolean).join(', ') || 'none'
    rows.push(['projector type', show(p.type)], ['encoders', modalities])
    if (p.hasVision || !p.hasAudio) {
      rows.push(
        ['image size', p.imageSize === null ? '–' : `${p.imageSize}×${p.imageSize}${p.patchSize ? `, patches of ${p.patchSize}×${p.patchSize}` : ''}`],
        ['vision embedding', show(p.embeddingLength)],
        ['vision layers', show(p.layers)],
        ['vision heads', show(p.heads)],
        ['projection dim', show(p.projectionDim)],
      )
      if (p.imageMean) rows.push(['image mean / std', `${fmtVec(p.imageMean)} / ${p.imageStd ? fmtVec(p.imageStd) : '–'}`])
    }
    if (p.audio) {
      const a = p.audio
      rows.push(
        ['audio embedding', show(a.embeddingLength)],
        ['audio layers', show(a.layers)],
        ['audio heads', show(a.heads)],
        ['mel bins', show(a.melBins)],
        ['frames stacked', show(a.stackFactor)],
        ['audio projection', show(a.projectionDim)],
      )
    }
  }
  let out = table(rows)
  if (s.chatTemplate !== null) {
    out += `chat template (${s.chatTemplate.length} characters):\n${s.chatTemplate.replace(/^/gm, '  ')}\n`
  } else if (s.kind === 'model') {
    out += 'chat template: none (pass --chat-template to describe and chat)\n'
  }
  return out
}

function fmtVec(v: number[]): string {
  return `[${v.map((x) => Number(x.toPrecision(4))).join(', ')}]`
}
