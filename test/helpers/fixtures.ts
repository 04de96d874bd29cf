import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { ensurePair } from '../../lib/fixtures'
import { pattern, toBmp, type Rgb } from './images'

export const root = path.resolve(__dirname, '..', '..')

/** The tiny synthetic LLaVA-1.5 pair, generated into the fixture cache on first use. */
export function tinyPair(): { model: string; mmproj: string } {
  return ensurePair('tiny')
}

export function tinyGemma3Pair(): { model: string; mmproj: string } {
  return ensurePair('tiny-gemma3')
}

export function tempDir(prefix = 'llava-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

/** Writes the test pattern as a BMP file and returns its path and pixels. */
export function bmpFile(dir: string, name: string, width = 32, height = 32, seed = 0): { file: string; img: Rgb } {
  const img = pattern(width, height, seed)
  const file = path.join(dir, name)
  fs.writeFileSync(file, toBmp(img))
  return { file, img }
}

export const greedy = { temperature: 0 } as const
