// llama.cpp's own llama-mtmd-cli, built from the same tree (LLAVA_NATIVE_REFERENCE=1), as the
// reference the parity suites compare greedy answers against.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { systemInfo } from '../../lib'
import { root } from './fixtures'

export const mtmdCli = path.join(root, 'build', 'bin', 'llama-mtmd-cli')
export const haveReference = fs.existsSync(mtmdCli)
if (!haveReference && process.env.CI) throw new Error('CI must build the reference programs: LLAVA_NATIVE_REFERENCE=1 npm install')

/** llava-native's default thread count: a result depends on how work is split between threads. */
export const REFERENCE_THREADS = systemInfo().cpu.defaultThreads

/** A medium for the command line, in prompt order. */
export type CliMedium = { image: string } | { audio: string }

/**
 * llama-mtmd-cli's greedy answer to `-p prompt` (its chat template applied, one marker per medium
 * before the text): it prints a newline, the answer, then blank lines.
 */
export function runMtmdCli(pair: { model: string; mmproj: string }, media: CliMedium[], prompt: string, n: number, extra: string[] = []): string {
  const args = ['-m', pair.model, '--mmproj', pair.mmproj, '-p', prompt, '-n', String(n), '--temp', '0', '-t', String(REFERENCE_THREADS), '--no-warmup', ...extra]
  for (const m of media) args.push(...('image' in m ? ['--image', m.image] : ['--audio', m.audio]))
  return execFileSync(mtmdCli, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).replace(/^\n/, '').replace(/\n+$/, '')
}

/**
 * Load options for a model whose answers are compared with llama.cpp's own tools: those run
 * llama.cpp's default kernels, not the batch-invariant ones llava-native's sessions use by default.
 */
export const LLAMA_CPP_KERNELS = { deterministic: false } as const
