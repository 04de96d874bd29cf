// The formats stb_image does not read — WebP (lossless, lossy, alpha, animated), AVIF, TIFF and
// CMYK JPEG — decoded in-process by the optional package sharp, with the same EXIF orientation,
// transparency and pixel limits as the built-in decoder; without sharp, a typed error that says
// how to get it. Pixel equality is checked through content ids, as in image-orientation.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import sharp from 'sharp'
import { type EncodeImageOptions, type ImageEmbedding, type Model, loadModel } from '../lib'
import { decodeWithSharp } from '../lib/media/sharp'
import { sniffOtherFormat } from '../lib/media/sniff'
import { root, tempDir, tinyPair } from './helpers/fixtures'
import { samePixels } from './helpers/same-pixels'
import { type Rgb, pattern, shown, toGif, toPng } from './helpers/images'

const stored = pattern(24, 16, 3)
const fromRaw = (img: Rgb, channels = 3, data: Uint8Array = img.rgb): ReturnType<typeof sharp> =>
  sharp(Buffer.from(data), { raw: { width: img.width, height: img.height, channels: channels as 3 | 4 } })

describe('image formats beyond the built-in decoder (through sharp)', () => {
  let model: Model
  beforeAll(async () => {
    model = await loadModel({ ...tinyPair(), threads: 1 })
  })
  afterAll(() => model.dispose())



  test('lossless WebP and TIFF give exactly the stored pixels, as buffers and as files', async () => {
    const dir = tempDir()
    for (const [name, bytes] of [
      ['x.webp', await fromRaw(stored).webp({ lossless: true }).toBuffer()],
      ['x.tiff', await fromRaw(stored).tiff({ compression: 'lzw' }).toBuffer()],
    ] as const) {
      expect(sniffOtherFormat(bytes)).toBe(name.endsWith('webp') ? 'webp' : 'tiff')
      const file = path.join(dir, name)
      fs.writeFileSync(file, bytes)
      for (const input of [bytes, file]) {
        const { same, embedding } = await samePixels(model, stored, input)
        expect(same).toBe(true)
        expect([embedding.width, embedding.height]).toEqual([24, 16])
        await embedding.dispose()
      }
    }
  })

  test('EXIF orientation turns WebP and TIFF too (orientation 6 and 3), and ignore keeps the stored pixels', async () => {
    for (const o of [6, 3]) {
      for (const bytes of [await fromRaw(stored).withMetadata({ orientation: o }).webp({ lossless: true }).toBuffer(), await fromRaw(stored).withMetadata({ orientation: o }).tiff({ compression: 'lzw' }).toBuffer()]) {
        const turned = await samePixels(model, shown(stored, o), bytes)
        expect(turned.same).toBe(true)
        expect([turned.embedding.width, turned.embedding.height]).toEqual(o === 6 ? [16, 24] : [24, 16])
        await turned.embedding.dispose()
        const kept = await samePixels(model, stored, bytes, { orientation: 'ignore' })
        expect(kept.same).toBe(true)
        await kept.embedding.dispose()
      }
    }
    // countTokens counts it without encoding it
    const before = model.imageEncodeCount
    const counted = await model.countTokens('USER: <image>\nASSISTANT:', { images: [await fromRaw(stored).withMetadata({ orientation: 6 }).webp({ lossless: true }).toBuffer()] })
    expect(counted.imageTokens).toBeGreaterThan(0)
    expect(model.imageEncodeCount).toBe(before)
    // from the header alone: an AVIF whose pixels are cut away still counts, and does not encode
    // (libvips reads a WebP's whole RIFF container, and sharp writes a TIFF's directory last)
    const noise: Rgb = { width: 64, height: 48, rgb: new Uint8Array(randomBytes(64 * 48 * 3)) }
    const avif = await fromRaw(noise).avif({ quality: 50 }).toBuffer()
    const cut = avif.subarray(0, avif.length >> 1)
    expect((await model.countTokens('USER: <image>\nASSISTANT:', { images: [cut] })).imageTokens).toBe(counted.imageTokens)
    await expect(model.encodeImage(cut)).rejects.toMatchObject({ code: 'ERR_IMAGE_DECODE' })
  })

  test('WebP with alpha is laid over the background; an animated WebP gives its first frame', async () => {
    const rgba = new Uint8Array(stored.width * stored.height * 4)
    const over: Rgb = { width: stored.width, height: stored.height, rgb: new Uint8Array(stored.rgb.length) }
    for (let i = 0; i < stored.width * stored.height; i++) {
      const a = [0, 255, 100][i % 3]
      rgba.set([stored.rgb[i * 3], stored.rgb[i * 3 + 1], stored.rgb[i * 3 + 2], a], i * 4)
      for (let c = 0; c < 3; c++) over.rgb[i * 3 + c] = Math.floor((stored.rgb[i * 3 + c] * a + [10, 20, 30][c] * (255 - a) + 127) / 255)
    }
    const webp = await fromRaw(stored, 4, rgba).webp({ lossless: true, exact: true }).toBuffer()
    // blended natively with the built-in decoder's formula: the same pixels as the same PNG would give
    const { same, embedding } = await samePixels(model, over, webp, { background: [10, 20, 30] })
    expect(same).toBe(true)
    await embedding.dispose()
    const png = await fromRaw(stored, 4, rgba).png().toBuffer()
    const fromPng = await model.encodeImage(png, { background: [10, 20, 30] })
    const fromWebp = await model.encodeImage(webp, { background: [10, 20, 30] })
    expect(fromWebp.id).toBe(fromPng.id)
    await Promise.all([fromPng.dispose(), fromWebp.dispose()])

    const second = pattern(24, 16, 9)
    const frames = Buffer.concat([Buffer.from(stored.rgb), Buffer.from(second.rgb)])
    const animated = await sharp(frames, { raw: { width: 24, height: 32, channels: 3, pageHeight: 16 } }).webp({ lossless: true }).toBuffer()
    expect((await sharp(animated, { pages: -1 }).metadata()).pages).toBe(2)
    const first = await samePixels(model, stored, animated)
    expect(first.same).toBe(true)
    expect([first.embedding.width, first.embedding.height]).toEqual([24, 16])
    await first.embedding.dispose()
  })

  test('lossy WebP and AVIF decode to the right size and close to the stored colours; a CMYK JPEG stays with the built-in decoder', async () => {
    const cases = [
      ['webp', await fromRaw(stored).webp({ quality: 90 }).toBuffer()],
      ['avif', await fromRaw(stored).avif({ lossless: true }).toBuffer()],
    ] as const
    const meanError: Record<string, number> = {}
    for (const [format, bytes] of cases) {
      expect(sniffOtherFormat(bytes)).toBe(format)
      const e = await model.encodeImage(bytes)
      expect([e.width, e.height]).toEqual([24, 16])
      await e.dispose()
      // the pixels the model was given (the same decode, called directly): close to the stored colours
      const px = await decodeWithSharp(bytes, format, 'x', { maxPixels: 1e6, orient: true, background: [255, 255, 255] })
      const data = (px as { data: Uint8Array }).data
      let sum = 0
      for (let i = 0; i < data.length; i++) sum += Math.abs(data[i] - stored.rgb[i])
      meanError[format] = sum / data.length
    }
    expect(meanError.avif).toBeLessThan(3)
    expect(meanError.webp).toBeLessThan(12)
    // stb_image reads CMYK/YCCK JPEGs itself: not routed to sharp, the same pixels with or without it
    const cmyk = await fromRaw(stored).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer()
    expect(sniffOtherFormat(cmyk)).toBeUndefined()
    const e = await model.encodeImage(cmyk)
    expect([e.width, e.height]).toEqual([24, 16])
    await e.dispose()
  })

  test('hostile files: truncated, garbage after a valid header, over maxPixels, 300 mutations: typed errors only', async () => {
    const webp = await fromRaw(stored).webp({ lossless: true }).toBuffer()
    const codeOf = async (bytes: Buffer, options?: EncodeImageOptions): Promise<string> => {
      try {
        await (await model.encodeImage(bytes, options)).dispose()
        return 'ok'
      } catch (e) {
        return (e as { code: string }).code
      }
    }
    expect(await codeOf(webp.subarray(0, webp.length >> 1))).toBe('ERR_IMAGE_DECODE')
    expect(await codeOf(Buffer.concat([webp.subarray(0, 30), Buffer.alloc(200, 0xa5)]))).toBe('ERR_IMAGE_DECODE')
    const tiff = await fromRaw(stored).tiff({ compression: 'lzw' }).toBuffer()
    expect(await codeOf(tiff.subarray(0, 40))).toBe('ERR_IMAGE_DECODE')
    const err = await model.encodeImage(webp, { maxPixels: 100 }).catch((e: Error) => e)
    expect(err).toMatchObject({ code: 'ERR_IMAGE_DECODE', message: expect.stringMatching(/maxImagePixels \(100 pixels\)/) })
    let seed = 7
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n)
    const seen = new Set<string>()
    for (let i = 0; i < 300; i++) {
      const m = Buffer.from(i % 2 ? webp : tiff)
      for (let k = 0; k < 1 + rnd(8); k++) m[rnd(m.length)] = rnd(256)
      const code = await codeOf(rnd(4) === 0 ? m.subarray(0, rnd(m.length)) : m)
      expect(['ok', 'ERR_IMAGE_DECODE']).toContain(code)
      seen.add(code)
    }
    expect(seen.has('ERR_IMAGE_DECODE')).toBe(true)
  })

  test('an already-aborted call with a bad WebP rejects with the reason and leaves no unhandled rejection', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (r: unknown): void => void unhandled.push(r)
    process.on('unhandledRejection', onUnhandled)
    try {
      const ac = new AbortController()
      const reason = new Error('stop')
      ac.abort(reason)
      const bad = Buffer.concat([(await fromRaw(stored).webp({ lossless: true }).toBuffer()).subarray(0, 30), Buffer.alloc(64, 1)])
      await expect(model.encodeImage(bad, { signal: ac.signal })).rejects.toBe(reason)
      await new Promise((r) => setTimeout(r, 200))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })

  test('a file rewritten between two encodes gives the new pixels; a FIFO is refused at once', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'shot.webp')
    fs.writeFileSync(file, await fromRaw(stored).webp({ lossless: true }).toBuffer())
    const a = await model.encodeImage(file)
    const other = pattern(24, 16, 11)
    fs.writeFileSync(file, await fromRaw(other).webp({ lossless: true }).toBuffer())
    const { same, embedding } = await samePixels(model, other, file)
    expect(same).toBe(true)
    expect(embedding.id).not.toBe(a.id)
    await Promise.all([a.dispose(), embedding.dispose()])
    const fifo = path.join(dir, 'pipe.webp')
    spawnSync('mkfifo', [fifo])
    const started = Date.now()
    await expect(model.encodeImage(fifo)).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_(FILE_NOT_FOUND|IMAGE_DECODE)$/) })
    expect(Date.now() - started).toBeLessThan(5000)
  })

  test('a large WebP data: URL with a wrong media type is still told by its bytes', async () => {
    const noise: Rgb = { width: 800, height: 600, rgb: new Uint8Array(randomBytes(800 * 600 * 3)) } // incompressible
    const webp = await fromRaw(noise).webp({ lossless: true }).toBuffer()
    expect(webp.length).toBeGreaterThan(1 << 20) // past the size at which data: URLs go to native memory
    const s = model.createSession({ contextSize: 512 })
    const r = await s.chat([{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:application/octet-stream;base64,${webp.toString('base64')}` } }, { type: 'text', text: 'hi' }] }], { maxTokens: 2, temperature: 0 })
    expect(r.tokens.length).toBeGreaterThan(0)
    await s.dispose()
  })

  test('a WebP data: URL in a chat message', async () => {
    const webp = await fromRaw(stored).webp({ lossless: true }).toBuffer()
    const s = model.createSession({ contextSize: 512 })
    const r = await s.chat([{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/webp;base64,${webp.toString('base64')}` } }, { type: 'text', text: 'hi' }] }], { maxTokens: 2, temperature: 0 })
    expect(r.stopReason).toBeDefined()
    await s.dispose()
  })

  test('frame picks a frame of an animated GIF (composed as browsers do), an animated WebP and a TIFF page; frames that do not exist are typed errors', async () => {
    // GIF, built-in: a 4x4 canvas of A; a 2x2 B block that is then cleared to transparency
    // (disposal 2); a C pixel put back to what was before it (disposal 3); a D pixel
    const [A, B, C, D] = [[200, 30, 30], [30, 200, 30], [30, 30, 200], [250, 250, 0]] as Array<[number, number, number]>
    const gif = toGif(4, 4, [[0, 0, 0], A, B, C, D], [
      { x: 0, y: 0, width: 4, height: 4, indices: Array(16).fill(1), disposal: 1 },
      { x: 1, y: 1, width: 2, height: 2, indices: [2, 2, 2, 2], disposal: 2 },
      { x: 0, y: 0, width: 1, height: 1, indices: [3], disposal: 3 },
      { x: 3, y: 3, width: 1, height: 1, indices: [4], disposal: 1 },
    ])
    const canvas = (paint: (x: number, y: number) => [number, number, number]): Rgb => {
      const rgb = new Uint8Array(48)
      for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) rgb.set(paint(x, y), (y * 4 + x) * 3)
      return { width: 4, height: 4, rgb }
    }
    const inBlock = (x: number, y: number): boolean => x >= 1 && x <= 2 && y >= 1 && y <= 2
    const white: [number, number, number] = [255, 255, 255]
    const expected = [
      canvas(() => A),
      canvas((x, y) => (inBlock(x, y) ? B : A)),
      canvas((x, y) => (x === 0 && y === 0 ? C : inBlock(x, y) ? white : A)),
      canvas((x, y) => (x === 3 && y === 3 ? D : inBlock(x, y) ? white : A)),
    ]
    for (let frame = 0; frame < 4; frame++) {
      const r = await samePixels(model, expected[frame], gif, { frame })
      expect([frame, r.same]).toEqual([frame, true])
      await r.embedding.dispose()
    }
    // without the option: the first frame, as before
    const first = await samePixels(model, expected[0], gif)
    expect(first.same).toBe(true)
    await first.embedding.dispose()

    const second = pattern(24, 16, 9)
    const frames = Buffer.concat([Buffer.from(stored.rgb), Buffer.from(second.rgb)])
    const raw = { raw: { width: 24, height: 32, channels: 3 as const, pageHeight: 16 } }
    const webp = await sharp(frames, raw).webp({ lossless: true }).toBuffer()
    const tiff = await sharp(frames, raw).tiff({ compression: 'lzw' }).toBuffer()
    expect((await sharp(tiff, { pages: -1 }).metadata()).pages).toBe(2)
    for (const bytes of [webp, tiff]) {
      const r = await samePixels(model, second, bytes, { frame: 1 })
      expect(r.same).toBe(true)
      await r.embedding.dispose()
    }

    const codeAndMessage = (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: { code: string; message: string }) => `${e.code} ${e.message}`)
    expect(await codeAndMessage(model.encodeImage(gif, { frame: 4 }))).toMatch(/^ERR_IMAGE_DECODE .*has 4 frames: frame 4 does not exist/)
    expect(await codeAndMessage(model.encodeImage(webp, { frame: 2 }))).toMatch(/^ERR_IMAGE_DECODE .*has 2 frames: frame 2 does not exist/)
    expect(await codeAndMessage(model.encodeImage(toPng(stored), { frame: 1 }))).toMatch(/^ERR_IMAGE_DECODE .*has one frame/)
    expect(await codeAndMessage(model.encodeImage({ data: stored.rgb, width: 24, height: 16, format: 'rgb' }, { frame: 1 }))).toMatch(/^ERR_INVALID_ARGUMENT .*frame/)
    for (const bad of [-1, 1.5, Number.NaN, '1']) expect(await codeAndMessage(model.encodeImage(gif, { frame: bad as number }))).toMatch(/^ERR_INVALID_ARGUMENT .*frame/)
    // a cut GIF: the frames before the cut decode, the one cut is refused
    const cut = gif.subarray(0, gif.length - 12)
    expect(await codeAndMessage(model.encodeImage(cut, { frame: 1 }))).toBe('ok')
    expect(await codeAndMessage(model.encodeImage(cut, { frame: 3 }))).toMatch(/^ERR_IMAGE_DECODE /)
    // 300 damaged GIFs, each asked for one of its frames: typed errors or pixels, nothing else
    let seed = 5
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n)
    const seen = new Set<string>()
    for (let i = 0; i < 300; i++) {
      const m = Buffer.from(gif)
      for (let k = 0; k < 1 + rnd(6); k++) m[6 + rnd(m.length - 6)] = rnd(256)
      const code = (await codeAndMessage(model.encodeImage(rnd(4) === 0 ? m.subarray(0, 6 + rnd(m.length - 6)) : m, { frame: rnd(5) }))).split(' ')[0]
      expect(['ok', 'ERR_IMAGE_DECODE']).toContain(code)
      seen.add(code)
    }
    expect([...seen].sort()).toEqual(['ERR_IMAGE_DECODE', 'ok'])
  })

  test('without sharp installed, a WebP is ERR_IMAGE_DECODE saying to install it', () => {
    const script = `
      const M = require('module'); const resolve = M._resolveFilename
      M._resolveFilename = function (r, ...a) { if (r === 'sharp') throw Object.assign(new Error('not installed'), { code: 'MODULE_NOT_FOUND' }); return resolve.call(this, r, ...a) }
      const { loadModel } = require('./dist')
      ;(async () => {
        const m = await loadModel({ model: process.argv[1], mmproj: process.argv[2], threads: 1 })
        try { await m.encodeImage(require('fs').readFileSync(process.argv[3])); console.log('decoded') } catch (e) { console.log(e.code + ' ' + e.message) }
        await m.dispose()
      })()`
    const dir = tempDir()
    const file = path.join(dir, 'x.webp')
    fs.writeFileSync(file, Buffer.from([0x52, 0x49, 0x46, 0x46, 0x1a, 0, 0, 0, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x4c, 0x0d, 0, 0, 0, 0x2f, 0, 0, 0, 0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe, 0x07, 0]))
    const { model: m, mmproj } = tinyPair()
    const r = spawnSync(process.execPath, ['-e', script, m, mmproj, file], { cwd: root, encoding: 'utf8', timeout: 60_000 })
    expect(r.stdout).toMatch(/^ERR_IMAGE_DECODE .*WebP.*npm install sharp/)
  })
})
