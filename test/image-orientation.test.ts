// Photos as viewers show them: a JPEG's or PNG's EXIF orientation (tags 1-8) turns the stored
// pixels before encoding, so a phone's portrait photo is not described lying on its side; and
// transparent pixels are laid over white instead of showing whatever colour lies under them.
// Pixel equality is checked through the model's content ids: an image whose pixels equal those of
// an embedding still alive is not encoded again (model.imageEncodeCount stays where it was).
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import { type EncodeImageOptions, type ImageEmbedding, type Model, loadModel } from '../lib'
import { root, tinyPair } from './helpers/fixtures'
import { samePixels } from './helpers/same-pixels'
import { type Rgb, pattern, pngChunk, shown, toPng } from './helpers/images'

// The EXIF payload (a TIFF structure) holding one orientation tag, in either byte order.
function tiffWithOrientation(orientation: number, little = true): Buffer {
  const b = Buffer.alloc(26)
  b.write(little ? 'II' : 'MM', 0, 'latin1')
  const u16 = (v: number, at: number) => (little ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at))
  const u32 = (v: number, at: number) => (little ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at))
  u16(42, 2)
  u32(8, 4) // IFD0 at 8
  u16(1, 8) // one entry
  u16(0x0112, 10) // Orientation
  u16(3, 12) // SHORT
  u32(1, 14) // one value
  u16(orientation, 18)
  u32(0, 22) // no next IFD
  return b
}

function pngWithOrientation(img: Rgb, orientation: number, little = true): Buffer {
  const png = toPng(img)
  const afterIhdr = 8 + 12 + 13
  return Buffer.concat([png.subarray(0, afterIhdr), pngChunk('eXIf', tiffWithOrientation(orientation, little)), png.subarray(afterIhdr)])
}

// A PNG of raw 8-bit samples: colour type 4 (grey+alpha, 2 channels) or 6 (RGBA, 4 channels).
function rawPng(w: number, h: number, colourType: number, channels: number, data: Uint8Array): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr[8] = 8
  ihdr[9] = colourType
  const raw = Buffer.alloc((w * channels + 1) * h)
  for (let y = 0; y < h; y++) Buffer.from(data.buffer, data.byteOffset + y * w * channels, w * channels).copy(raw, y * (w * channels + 1) + 1)
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))])
}

function jpegWithApp1(jpeg: Buffer, payload: Buffer): Buffer {
  const seg = Buffer.alloc(4)
  seg[0] = 0xff
  seg[1] = 0xe1
  seg.writeUInt16BE(payload.length + 2, 2)
  return Buffer.concat([jpeg.subarray(0, 2), seg, payload, jpeg.subarray(2)])
}
const exif = (tiff: Buffer): Buffer => Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff])

describe('EXIF orientation and transparency', () => {
  let model: Model
  const stored = pattern(24, 16, 7)

  beforeAll(async () => {
    model = await loadModel({ ...tinyPair(), threads: 1 })
  })
  afterAll(async () => {
    await model.dispose()
  })

  // Encodes `expected` as raw pixels, then `candidate`: the second reuses the first's encoding
  // exactly when their pixels are the same.


  test.each([1, 2, 3, 4, 5, 6, 7, 8])('PNG with eXIf orientation %i: encoded as shown, width and height after turning', async (o) => {
    for (const little of [true, false]) {
      const want = shown(stored, o)
      const { same, embedding } = await samePixels(model, want, pngWithOrientation(stored, o, little))
      expect(same).toBe(true)
      expect([embedding.width, embedding.height]).toEqual(o >= 5 ? [16, 24] : [24, 16])
      await embedding.dispose()
    }
    // orientation: 'ignore' gives the stored pixels
    const ignored = await samePixels(model, stored, pngWithOrientation(stored, o), { orientation: 'ignore' })
    expect(ignored.same).toBe(true)
    await ignored.embedding.dispose()
  })

  test("a JPEG's APP1 EXIF orientation: turned as tagged, the same photo as the untagged file otherwise", async () => {
    const jpeg = fs.readFileSync(path.join(root, 'deps', 'llama.cpp', 'tools', 'mtmd', 'test-1.jpeg'))
    const plain = await model.encodeImage(jpeg)
    for (const o of [1, 3, 6, 8]) {
      for (const little of [true, false]) {
        const tagged = jpegWithApp1(jpeg, exif(tiffWithOrientation(o, little)))
        const before = model.imageEncodeCount
        const e = await model.encodeImage(tagged)
        expect([e.width, e.height]).toEqual(o >= 5 ? [plain.height, plain.width] : [plain.width, plain.height])
        // Orientation 1 is the untagged photo itself; the others are other pixels.
        expect(model.imageEncodeCount - before).toBe(o === 1 ? 0 : 1)
        const ignoredBefore = model.imageEncodeCount
        const ignored = await model.encodeImage(tagged, { orientation: 'ignore' })
        expect(model.imageEncodeCount).toBe(ignoredBefore)
        await Promise.all([e.dispose(), ignored.dispose()])
      }
    }
    // Counting tokens reads the header and the tag alone: the turned size, without decoding.
    const turned = jpegWithApp1(jpeg, exif(tiffWithOrientation(6)))
    const counted = await model.countTokens('<image>x', { images: [turned] })
    expect(counted.imageTokens).toBe((await model.countTokens('<image>x', { images: [jpeg] })).imageTokens)
    await plain.dispose()
  })

  test('imageOrientation at load is the default for every image; encodeImage can override it', async () => {
    const ignoring = await loadModel({ ...tinyPair(), threads: 1, imageOrientation: 'ignore' })
    try {
      const e = await ignoring.encodeImage(pngWithOrientation(stored, 6))
      expect([e.width, e.height]).toEqual([24, 16])
      const t = await ignoring.encodeImage(pngWithOrientation(stored, 6), { orientation: 'exif' })
      expect([t.width, t.height]).toEqual([16, 24])
      await Promise.all([e.dispose(), t.dispose()])
    } finally {
      await ignoring.dispose()
    }
    await expect(loadModel({ ...tinyPair(), imageOrientation: 'sideways' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(model.encodeImage(toPng(stored), { orientation: 'rotate' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })

  test('malformed EXIF is ignored, never read past its end', async () => {
    const jpeg = fs.readFileSync(path.join(root, 'deps', 'llama.cpp', 'tools', 'mtmd', 'test-1.jpeg'))
    const plain = await model.encodeImage(jpeg)
    const good = tiffWithOrientation(6)
    const bad: Buffer[] = [
      Buffer.from('II'), // truncated header
      Buffer.concat([Buffer.from('XX'), good.subarray(2)]), // unknown byte order
      (() => { const b = Buffer.from(good); b.writeUInt32LE(0xfffffff0, 4); return b })(), // IFD far past the end
      (() => { const b = Buffer.from(good); b.writeUInt16LE(0xffff, 8); b.writeUInt16LE(0x0110, 10); return b })(), // 65535 entries in 26 bytes, no orientation among those there
      (() => { const b = Buffer.from(good); b.writeUInt16LE(9, 18); return b })(), // orientation 9
      (() => { const b = Buffer.from(good); b.writeUInt16LE(0, 18); return b })(), // orientation 0
      (() => { const b = Buffer.from(good); b.writeUInt16LE(4, 12); return b })(), // LONG instead of SHORT
      good.subarray(0, 20), // cut inside the entry
    ]
    for (const [i, tiff] of bad.entries()) {
      const before = model.imageEncodeCount
      const e = await model.encodeImage(jpegWithApp1(jpeg, exif(tiff)))
      expect([i, model.imageEncodeCount]).toEqual([i, before]) // the untagged photo's pixels
      await e.dispose()
    }
    // 300 random APP1 payloads and eXIf chunks: every one decodes or is refused with a typed error.
    let seed = 12345
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff)
    for (let i = 0; i < 300; i++) {
      const junk = Buffer.from(Array.from({ length: 8 + (rand() % 80) }, () => rand() & 0xff))
      if (i % 2 === 0) junk.write(i % 4 === 0 ? 'II*\0' : 'MM\0*', 0, 'latin1')
      const file = i % 3 === 0 ? pngWithOrientation(stored, 1).subarray(0, 33) : undefined
      const input = file ? Buffer.concat([file, pngChunk('eXIf', junk), toPng(stored).subarray(33)]) : jpegWithApp1(jpeg, exif(junk))
      const e = await model.encodeImage(input).catch((err: { code?: string }) => err)
      if ('code' in e && e.code !== undefined) expect(e.code).toBe('ERR_IMAGE_DECODE')
      else await (e as ImageEmbedding).dispose()
    }
    await plain.dispose()
  }, 120_000)

  test('transparency is laid over white: grey+alpha and RGBA PNGs encode as the same picture on a white page', async () => {
    const w = 20
    const h = 12
    const grey = new Uint8Array(w * h * 2)
    const rgba = new Uint8Array(w * h * 4)
    const onWhite: Rgb = { width: w, height: h, rgb: new Uint8Array(w * h * 3) }
    for (let i = 0; i < w * h; i++) {
      const g = (i * 37) & 0xff
      const a = i % 3 === 0 ? 0 : i % 3 === 1 ? 255 : 128
      grey[i * 2] = g
      grey[i * 2 + 1] = a
      rgba.set([g, g, g, a], i * 4)
      const c = Math.floor((g * a + 255 * (255 - a) + 127) / 255)
      onWhite.rgb.set([c, c, c], i * 3)
    }
    for (const file of [rawPng(w, h, 4, 2, grey), rawPng(w, h, 6, 4, rgba)]) {
      const { same, embedding } = await samePixels(model, onWhite, file)
      expect(same).toBe(true)
      await embedding.dispose()
    }
  })

  test('another background: imageBackground at load, background per image; the colour shows through exactly', async () => {
    const w = 9
    const h = 7
    const rgba = new Uint8Array(w * h * 4)
    for (let i = 0; i < w * h; i++) rgba.set([(i * 29) & 0xff, (i * 53) & 0xff, (i * 71) & 0xff, [0, 255, 128, 1][i % 4]], i * 4)
    const over = (bg: [number, number, number]): Rgb => {
      const out: Rgb = { width: w, height: h, rgb: new Uint8Array(w * h * 3) }
      for (let i = 0; i < w * h; i++) {
        const a = rgba[i * 4 + 3]
        for (let c = 0; c < 3; c++) out.rgb[i * 3 + c] = Math.floor((rgba[i * 4 + c] * a + bg[c] * (255 - a) + 127) / 255)
      }
      return out
    }
    const file = rawPng(w, h, 6, 4, rgba)
    for (const [background, bg] of [['#000', [0, 0, 0]], ['#1a2b3c', [0x1a, 0x2b, 0x3c]], [[200, 10, 90], [200, 10, 90]]] as const) {
      const { same, embedding } = await samePixels(model, over([...bg]), file, { background })
      expect(same).toBe(true)
      await embedding.dispose()
    }
    // the load option is every image's default
    const dark = await loadModel({ ...tinyPair(), threads: 1, imageBackground: '#000000' })
    try {
      const reference = await dark.encodeImage({ data: over([0, 0, 0]).rgb, width: w, height: h, format: 'rgb' })
      const before = dark.imageEncodeCount
      const e = await dark.encodeImage(file)
      expect(dark.imageEncodeCount).toBe(before)
      await Promise.all([reference.dispose(), e.dispose()])
      for (const bad of ['black', '#12345', [256, 0, 0], [1, 2], '#ggg']) {
        await expect(dark.encodeImage(file, { background: bad as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      }
      await expect(loadModel({ ...tinyPair(), imageBackground: 'white' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    } finally {
      await dark.dispose()
    }
  })
})
