// llama-server's own chat request path, built from the same tree (build/bin/llama-chat-render,
// scripts/reference/chat_render.cpp): one request per line in, the server's parameters out.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { root } from './fixtures'

export const chatReference = path.join(root, 'build', 'bin', 'llama-chat-render')
export const haveChatReference = fs.existsSync(chatReference)

export interface ReferenceResult {
  error?: string
  prompt?: string
  grammar?: string
  grammar_lazy?: boolean
  generation_prompt?: string
  stop?: string[]
  preserved_tokens?: string[]
  grammar_triggers?: unknown[]
  chat_parser?: string
  chat_format?: number
  n_files?: number
  [k: string]: unknown
}

/** Renders every request with llama-server's code; `model` supplies the template and special tokens. */
export function renderWithServer(model: string, requests: Array<{ template: string | null; body: unknown }>): ReferenceResult[] {
  const input = requests.map((r) => JSON.stringify(r)).join('\n') + '\n'
  const out = spawnSync(chatReference, [model], { input, encoding: 'utf8', maxBuffer: 1 << 30, timeout: 300_000 })
  if (out.status !== 0) throw new Error(`llama-chat-render failed (${out.status ?? out.signal}): ${out.stderr}`)
  const lines = out.stdout.split('\n').filter((l) => l.length > 0)
  if (lines.length !== requests.length) throw new Error(`llama-chat-render answered ${lines.length} of ${requests.length} requests`)
  return lines.map((l) => JSON.parse(l) as ReferenceResult)
}
