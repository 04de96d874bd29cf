// HEIC photos (HEVC in HEIF, an iPhone's default), decoded in-process by the optional package
// libheif-js (libheif + libde265 in WebAssembly) on a worker thread: the pixels Debian's native
// libheif (heif-convert) gives for the same file, the eight orientations as `irot`/`imir` properties, transparency, 10-bit files, sizes
// from the header alone for countTokens, the pixel limit before decoding, abort, a JS thread that
// keeps running meanwhile, and hostile files. Test files are encoded at test time by libheif's own
// heif-enc (Debian's libheif-examples, which .ci/run installs).
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import sharp from 'sharp'
import { type EncodeImageOptions, type Model, loadModel } from '../lib'
import { ensurePair } from '../lib/fixtures'
import { decodeOtherFormat } from '../lib/media/other-formats'
import { sniffOtherFormat } from '../lib/media/sniff'
import { root, tempDir, tinyPair } from './helpers/fixtures'
import { type HeifTurn, heifContainer, heifConvert, heifEnc, heifEncAvailable, turnHeif } from './helpers/heif'
import { type Rgb, pattern, shown, toPng } from './helpers/images'
import { codeOf } from './helpers/errors'
import { samePixels } from './helpers/same-pixels'
import { worstLag } from './helpers/event-loop'

// CI installs heif-enc; elsewhere, without it, the suite says so and is skipped as a whole
const haveEncoder = heifEncAvailable()
if (!haveEncoder && process.env.CI) throw new Error('heif-enc is missing: .ci/run installs libheif-examples')
const describeHeif = haveEncoder ? describe : describe.skip

// ISO/IEC 23008-12: irot turns anticlockwise by quarter turns; listed properties apply in order.
// imir: axis 0 exchanges top and bottom, axis 1 left and right — as amended in 2021 (the 2017
// text, "a vertical (axis = 0) axis", was read both ways; iPhones, libheif and libavif ≥ 1.0 read
// it so). Each EXIF orientation as those properties (what an encoder writes for that tag):
const AS_HEIF: Record<number, HeifTurn[]> = {
  1: [],
  2: [{ imir: 1 }],
  3: [{ irot: 2 }],
  4: [{ imir: 0 }],
  5: [{ irot: 3 }, { imir: 1 }], // a quarter turn clockwise, then left-right: the main diagonal
  6: [{ irot: 3 }],
  7: [{ irot: 3 }, { imir: 0 }], // a quarter turn clockwise, then top-bottom: the other diagonal
  8: [{ irot: 1 }],
}

const reading = { maxPixels: 1 << 26, orient: true, background: [255, 255, 255] as [number, number, number] }

async function pixelsOf(bytes: Buffer, options: Partial<typeof reading> = {}): Promise<{ data: Uint8Array; width: number; height: number; format: string }> {
  return (await decodeOtherFormat(bytes, 'heif', 'x', { ...reading, ...options })) as never
}

const meanError = (a: Uint8Array, b: Uint8Array): number => {
  let sum = 0
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i])
  return sum / a.length
}


describeHeif('HEIC through libheif-js', () => {
  let model: Model
  const dir = tempDir('llava-heif-')
  const stored = pattern(24, 16, 7)
  let lossless: Buffer
  /** What native libheif decodes `lossless` to: heif-enc's "lossless" RGB is off by one in places */
  let coded: Rgb
  beforeAll(async () => {
    model = await loadModel({ ...tinyPair(), threads: 1 })
    lossless = heifEnc(writePng('stored.png', toPng(stored)), path.join(dir, 'stored.heic'), { lossless: true })
    coded = await reference(path.join(dir, 'stored.heic'))
  })
  afterAll(() => model.dispose())

  const asRgb = async (png: string): Promise<Rgb> => {
    const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true })
    return { width: info.width, height: info.height, rgb: new Uint8Array(data) }
  }

  /** Native libheif's pixels for a HEIF file, as RGB. */
  const reference = async (file: string): Promise<Rgb> => asRgb(heifConvert(file)[0])

  /** Native libheif's pixels for each of a file's `n` top-level images. */
  const references = async (file: string, n: number): Promise<Rgb[]> => {
    const pngs = heifConvert(file)
    expect(pngs.length).toBe(n)
    return Promise.all(pngs.map(asRgb))
  }

  function writePng(name: string, png: Buffer): string {
    const file = path.join(dir, name)
    fs.writeFileSync(file, png)
    return file
  }

  test("a HEIC gives exactly native libheif's pixels, as a buffer, a file and a data: URL in a chat", async () => {
    expect(sniffOtherFormat(lossless)).toBe('heif')
    expect(meanError(coded.rgb, stored.rgb)).toBeLessThan(1) // and the stored ones, within heif-enc's rounding
    const file = path.join(dir, 'stored.heic')
    for (const input of [lossless, file]) {
      const { same, embedding } = await samePixels(model, coded, input)
      expect(same).toBe(true)
      expect([embedding.width, embedding.height]).toEqual([24, 16])
      await embedding.dispose()
    }
    const s = model.createSession({ contextSize: 512 })
    const r = await s.chat([{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/heic;base64,${lossless.toString('base64')}` } }, { type: 'text', text: 'hi' }] }], { maxTokens: 2, temperature: 0 })
    expect(r.tokens.length).toBeGreaterThan(0)
    await s.dispose()
  })

  test('the eight orientations as irot/imir give the pixels and sizes of the same photo tagged in EXIF, as native libheif does; ignore keeps the coded pixels', async () => {
    for (let o = 1; o <= 8; o++) {
      const turned = turnHeif(lossless, AS_HEIF[o])
      const file = path.join(dir, `turned-${o}.heic`)
      fs.writeFileSync(file, turned)
      // the spec's reading of the properties and native libheif's agree, and so do we
      expect([o, await reference(file)]).toEqual([o, shown(coded, o)])
      const r = await samePixels(model, shown(coded, o), turned)
      expect([o, r.same]).toEqual([o, true])
      expect([r.embedding.width, r.embedding.height]).toEqual(o >= 5 ? [16, 24] : [24, 16])
      await r.embedding.dispose()
      const kept = await samePixels(model, coded, turned, { orientation: 'ignore' })
      expect([o, kept.same]).toEqual([o, true])
      await kept.embedding.dispose()
    }
  })

  test('EXIF orientation inside a HEIC is not applied a second time: irot/imir are what HEIF readers apply', async () => {
    // heif-enc copies a JPEG's EXIF (orientation 6 here) into the HEIC but writes no irot
    const jpeg = await sharp(Buffer.from(stored.rgb), { raw: { width: 24, height: 16, channels: 3 } }).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer()
    const jpegFile = path.join(dir, 'o6.jpg')
    fs.writeFileSync(jpegFile, jpeg)
    const heic = heifEnc(jpegFile, path.join(dir, 'o6.heic'))
    expect(heic.includes(Buffer.from('Exif'))).toBe(true)
    const e = await model.encodeImage(heic)
    expect([e.width, e.height]).toEqual([24, 16])
    await e.dispose()
  })

  test('frame picks a top-level image of a HEIF with several (the primary by default), as native libheif gives each', async () => {
    const second = pattern(40, 24, 4)
    const file = path.join(dir, 'two.heic')
    const two = heifEnc(writePng('first.png', toPng(stored)), file, { lossless: true, more: [writePng('second.png', toPng(second))] })
    const [one, other] = await references(file, 2)
    // the primary made the second image (heif-enc makes it the first): pitm's item id rewritten
    const ids = [...spawnSync('heif-info', [file], { encoding: 'utf8' }).stdout.matchAll(/\(id=(\d+)\)/g)].map((m) => Number(m[1]))
    expect(ids.length).toBe(2)
    const secondIsPrimary = Buffer.from(two)
    const pitm = secondIsPrimary.indexOf('pitm')
    expect(secondIsPrimary.readUInt16BE(pitm + 8)).toBe(ids[0])
    secondIsPrimary.writeUInt16BE(ids[1], pitm + 8)
    for (const [bytes, options, expected] of [
      [two, {}, one],
      [secondIsPrimary, {}, other],
      [secondIsPrimary, { frame: 0 }, one],
      [secondIsPrimary, { frame: 1 }, other],
    ] as const) {
      const r = await samePixels(model, expected, bytes, options)
      expect([options, r.same]).toEqual([options, true])
      await r.embedding.dispose()
    }
    await expect(model.encodeImage(two, { frame: 2 })).rejects.toMatchObject({ code: 'ERR_IMAGE_DECODE', message: expect.stringMatching(/has 2 images: frame 2 does not exist/) })
  })

  test('countTokens reads sizes from the boxes alone: a turned portrait counts as a portrait, a file with no decodable pixels still counts', async () => {
    const qwen = await loadModel({ ...ensurePair('tiny-qwen25vl'), threads: 1 })
    try {
      const wide = pattern(112, 56, 3)
      const heic = heifEnc(writePng('wide.png', toPng(wide)), path.join(dir, 'wide.heic'), { lossless: true })
      const portrait = turnHeif(heic, AS_HEIF[6])
      const rawPortrait = shown(wide, 6)
      const prompt = 'USER: <image>\nASSISTANT:'
      const expected = await qwen.countTokens(prompt, { images: [{ data: rawPortrait.rgb, width: rawPortrait.width, height: rawPortrait.height, format: 'rgb' }] })
      const counted = await qwen.countTokens(prompt, { images: [portrait] })
      expect(counted).toEqual(expected)
      expect(await qwen.countTokens(prompt, { images: [heic] })).toEqual(await qwen.countTokens(prompt, { images: [{ data: wide.rgb, width: wide.width, height: wide.height, format: 'rgb' }] }))
      expect(qwen.imageEncodeCount).toBe(0)
      // the pixels cut away: the header is whole, so it counts; encoding it fails
      const headerOnly = portrait.subarray(0, portrait.length - 40)
      expect((await qwen.countTokens(prompt, { images: [headerOnly] })).imageTokens).toBe(counted.imageTokens)
      expect(await codeOf(qwen.encodeImage(headerOnly))).toBe('ERR_IMAGE_DECODE')
    } finally {
      await qwen.dispose()
    }
  })

  test("transparency is laid over the background with the built-in blend: the same id as native libheif's RGBA as a PNG", async () => {
    const rgba = new Uint8Array(24 * 16 * 4)
    for (let i = 0; i < 24 * 16; i++) rgba.set([stored.rgb[i * 3], stored.rgb[i * 3 + 1], stored.rgb[i * 3 + 2], [0, 255, 100][i % 3]], i * 4)
    const original = await sharp(Buffer.from(rgba), { raw: { width: 24, height: 16, channels: 4 } }).png().toBuffer()
    const heic = heifEnc(writePng('alpha.png', original), path.join(dir, 'alpha.heic'), { lossless: true })
    expect((await pixelsOf(heic)).format).toBe('rgba')
    const png = fs.readFileSync(heifConvert(path.join(dir, 'alpha.heic'))[0])
    expect((await sharp(png).metadata()).channels).toBe(4)
    for (const background of [undefined, [10, 20, 30]] as Array<EncodeImageOptions['background']>) {
      const a = await model.encodeImage(png, { background })
      const b = await model.encodeImage(heic, { background })
      expect(b.id).toBe(a.id)
      await Promise.all([a.dispose(), b.dispose()])
    }
  })

  test('lossy and 10-bit HEICs decode close to the stored colours, as 8-bit RGB', async () => {
    const smooth: Rgb = { width: 64, height: 48, rgb: new Uint8Array(64 * 48 * 3) }
    for (let i = 0; i < 64 * 48; i++) smooth.rgb.set([(i % 64) * 4, Math.floor(i / 64) * 5, 128], i * 3)
    const png = writePng('smooth.png', toPng(smooth))
    const lossy = await pixelsOf(heifEnc(png, path.join(dir, 'lossy.heic'), { quality: 90 }))
    expect([lossy.width, lossy.height, lossy.format]).toEqual([64, 48, 'rgb'])
    expect(meanError(lossy.data, smooth.rgb)).toBeLessThan(4)
    const deep = await sharp(Buffer.from(smooth.rgb), { raw: { width: 64, height: 48, channels: 3 } }).toColourspace('rgb16').png().toBuffer()
    const tenBit = heifEnc(writePng('deep.png', deep), path.join(dir, 'deep.heic'), { quality: 90, bitDepth: 10 })
    const px = await pixelsOf(tenBit)
    expect([px.width, px.height, px.data.length]).toEqual([64, 48, 64 * 48 * 3])
    expect(meanError(px.data, smooth.rgb)).toBeLessThan(4)
  })

  test('over maxPixels is refused before decoding; the JS thread runs while a 6-megapixel photo decodes; abort ends it at once', async () => {
    const w = 3000
    const h = 2000
    const big = Buffer.alloc(w * h * 3)
    for (let i = 0, y = 0; y < h; y++) {
      for (let x = 0; x < w; x++, i += 3) {
        big[i] = (x * 255) / w
        big[i + 1] = (y * 255) / h
        big[i + 2] = (x * 7 + y) & 255
      }
    }
    const file = path.join(dir, 'big.png')
    await sharp(big, { raw: { width: w, height: h, channels: 3 } }).png({ compressionLevel: 1 }).toFile(file)
    const heic = heifEnc(file, path.join(dir, 'big.heic'), { quality: 50, fast: true })

    const err = await model.encodeImage(heic, { maxPixels: w * h - 1 }).catch((e: Error) => e)
    expect(err).toMatchObject({ code: 'ERR_IMAGE_DECODE', message: expect.stringMatching(/maxImagePixels \(5999999 pixels\)/) })

    // the decode runs off the JS thread: timers keep their pace
    let px: { width: number; height: number } = { width: 0, height: 0 }
    const started = performance.now()
    const worst = await worstLag(async () => (px = await pixelsOf(heic)))
    const took = performance.now() - started
    expect([px.width, px.height]).toEqual([w, h])
    expect(took).toBeGreaterThan(100) // long enough for the pace to mean something
    expect(worst).toBeLessThan(took / 2) // on the JS thread, one gap would be the whole decode

    // abort while decoding: rejected with the reason long before the decode could finish, then a new decode works
    const ac = new AbortController()
    const reason = new Error('enough')
    const pending = model.encodeImage(heic, { signal: ac.signal })
    setTimeout(() => ac.abort(reason), 50)
    const t0 = performance.now()
    await expect(pending).rejects.toBe(reason)
    expect(performance.now() - t0).toBeLessThan(took)
    const again = await samePixels(model, coded, lossless)
    expect(again.same).toBe(true)
    await again.embedding.dispose()
  })

  test('aborts at any moment never mix up answers: the image queued behind an aborted one gets its own pixels', async () => {
    const other = heifEnc(writePng('other.png', toPng(pattern(96, 64, 5))), path.join(dir, 'other.heic'), { quality: 80 })
    const outcomes = new Set<string>()
    for (let i = 0; i < 30; i++) {
      const ac = new AbortController()
      const first = decodeOtherFormat(other, 'heif', 'first', reading, ac.signal)
      const second = pixelsOf(lossless)
      setTimeout(() => ac.abort(new Error('stop')), i % 12)
      outcomes.add(await first.then((p) => `${p.width}`, (e: Error) => e.message))
      const px = await second
      expect([i, px.width, px.height, Buffer.from(px.data).equals(Buffer.from(coded.rgb))]).toEqual([i, 24, 16, true])
    }
    expect(outcomes.has('stop')).toBe(true) // some aborts came while decoding
  })

  const encodeAndDispose = (bytes: Buffer): Promise<void> => model.encodeImage(bytes).then((e) => e.dispose())

  test('hostile files: truncations, 300 mutations and a bomb are typed errors, and the decoder keeps working', async () => {
    for (const cut of [12, 40, 200, lossless.length >> 1, lossless.length - 1]) {
      expect([cut, await codeOf(encodeAndDispose(lossless.subarray(0, cut)))]).toEqual([cut, 'ERR_IMAGE_DECODE'])
    }
    let seed = 11
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n)
    const seen = new Set<string>()
    for (let i = 0; i < 300; i++) {
      const m = Buffer.from(lossless)
      for (let k = 0; k < 1 + rnd(8); k++) m[12 + rnd(m.length - 12)] = rnd(256) // past ftyp, so that it is still told as HEIF
      const input = rnd(4) === 0 ? m.subarray(0, 12 + rnd(m.length - 12)) : m
      const code = await codeOf(i % 3 === 0 ? model.countTokens('<image>', { images: [input] }) : encodeAndDispose(input))
      expect(['resolved', 'ERR_IMAGE_DECODE']).toContain(code)
      seen.add(code)
    }
    expect(seen.has('ERR_IMAGE_DECODE')).toBe(true)
    // a bomb is refused from its boxes, by countTokens too, before any pixel is decoded
    const bomb = heifContainer({ width: 60000, height: 60000, data: Buffer.alloc(64, 0x42) })
    for (const call of [model.encodeImage(bomb), model.countTokens('<image>', { images: [bomb] })]) {
      await expect(call).rejects.toMatchObject({ code: 'ERR_IMAGE_DECODE', message: expect.stringMatching(/larger than maxImagePixels/) })
    }
    const { same, embedding } = await samePixels(model, coded, lossless)
    expect(same).toBe(true)
    await embedding.dispose()
  })

  test('an AV1-coded HEIF that only says mif1 goes on to sharp; without libheif-js a HEIC says to install it', async () => {
    const avif = await sharp(Buffer.from(stored.rgb), { raw: { width: 24, height: 16, channels: 3 } }).avif({ lossless: true }).toBuffer()
    // ftyp brands rewritten to the generic mif1: sniffed as HEIF, tried by libheif-js (HEVC only), read by sharp
    const generic = Buffer.from(avif)
    const ftypSize = generic.readUInt32BE(0)
    for (let at = 8; at + 4 <= ftypSize; at += 4) if (at !== 12) generic.write('mif1', at, 'latin1')
    expect(sniffOtherFormat(generic)).toBe('heif')
    const e = await model.encodeImage(generic)
    expect([e.width, e.height]).toEqual([24, 16])
    await e.dispose()

    const script = `
      const M = require('module'); const resolve = M._resolveFilename
      M._resolveFilename = function (r, ...a) { if (r.startsWith('libheif-js')) throw Object.assign(new Error('not installed'), { code: 'MODULE_NOT_FOUND' }); return resolve.call(this, r, ...a) }
      const { loadModel } = require('./dist')
      ;(async () => {
        const m = await loadModel({ model: process.argv[1], mmproj: process.argv[2], threads: 1 })
        try { await m.encodeImage(require('fs').readFileSync(process.argv[3])); console.log('decoded') } catch (e) { console.log(e.code + ' ' + e.message) }
        await m.dispose()
      })()`
    const { model: m, mmproj } = tinyPair()
    const r = spawnSync(process.execPath, ['-e', script, m, mmproj, path.join(dir, 'stored.heic')], { cwd: root, encoding: 'utf8', timeout: 60_000 })
    expect(r.stdout).toMatch(/^ERR_IMAGE_DECODE .*HEVC-coded HEIC needs libheif-js \(npm install libheif-js\)/)
    // the other way round: libheif-js without sharp, and the AV1-coded file
    const genericFile = path.join(dir, 'generic.heif')
    fs.writeFileSync(genericFile, generic)
    const noSharp = spawnSync(process.execPath, ['-e', script.replace("r.startsWith('libheif-js')", "r === 'sharp'"), m, mmproj, genericFile], { cwd: root, encoding: 'utf8', timeout: 60_000 })
    expect(noSharp.stdout).toMatch(/^ERR_IMAGE_DECODE .*libheif-js does not decode .*sharp, npm install sharp, reads AV1-coded HEIF/)
  })

  test('a decoder that traps or whose thread exits fails that image only: the next one gets a new instance or thread', () => {
    // libheif-js wrapped so that its first decode traps as WebAssembly does, and the second ends the thread
    const fake = path.join(dir, 'trapping-libheif.js')
    const marks = path.join(dir, 'marks-')
    fs.writeFileSync(fake, `
      const fs = require('fs')
      const real = require(${JSON.stringify(require.resolve('libheif-js/libheif-wasm/libheif.js'))})
      module.exports = (o) => {
        const m = real(o)
        const decode = m._heif_decode_image
        m._heif_decode_image = (...a) => {
          if (!fs.existsSync(${JSON.stringify(`${marks}trap`)})) { fs.writeFileSync(${JSON.stringify(`${marks}trap`)}, ''); throw new WebAssembly.RuntimeError('unreachable') }
          if (!fs.existsSync(${JSON.stringify(`${marks}exit`)})) { fs.writeFileSync(${JSON.stringify(`${marks}exit`)}, ''); process.exit(3) }
          return decode(...a)
        }
        return m
      }`)
    const script = `
      const M = require('module'); const resolve = M._resolveFilename
      M._resolveFilename = function (r, ...a) { return r === 'libheif-js/libheif-wasm/libheif.js' ? process.argv[2] : resolve.call(this, r, ...a) }
      const { decodeOtherFormat } = require('./dist/media/other-formats')
      const bytes = require('fs').readFileSync(process.argv[1])
      ;(async () => {
        for (let i = 0; i < 3; i++) {
          const r = await decodeOtherFormat(bytes, 'heif', 'x', { maxPixels: 1e6, orient: true, background: [255, 255, 255] }).then((p) => p.width + 'x' + p.height, (e) => e.code + ' ' + e.message)
          console.log(r)
        }
      })()`
    const r = spawnSync(process.execPath, ['-e', script, path.join(dir, 'stored.heic'), fake], { cwd: root, encoding: 'utf8', timeout: 60_000 })
    expect(r.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^ERR_IMAGE_DECODE x \(HEIF\/HEIC\) could not be decoded: unreachable/),
      expect.stringMatching(/^ERR_IMAGE_DECODE x \(HEIF\/HEIC\) could not be decoded: the HEIF decoder thread ended \(exit code 3\)/),
      '24x16',
    ])
  })

  test('a script that decodes a HEIC ends as soon as its work is done: the idle decoder thread does not hold the process', () => {
    const script = `
      const { decodeOtherFormat } = require('./dist/media/other-formats')
      decodeOtherFormat(require('fs').readFileSync(process.argv[1]), 'heif', 'x', { maxPixels: 1e6, orient: true, background: [255, 255, 255] })
        .then((p) => console.log(p.width + 'x' + p.height))`
    const started = Date.now()
    const r = spawnSync(process.execPath, ['-e', script, path.join(dir, 'stored.heic')], { cwd: root, encoding: 'utf8', timeout: 30_000 })
    expect(r.stdout.trim()).toBe('24x16')
    expect(Date.now() - started).toBeLessThan(8000) // the idle thread would otherwise stay 10 s
  })
})
