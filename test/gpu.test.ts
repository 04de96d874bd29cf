// The GPU offload path. Runs for real only against a GPU build (LLAVA_NATIVE_EXPECT_GPU=1, as
// scripts/vulkan/test-lavapipe.sh sets with the Vulkan build on Mesa's lavapipe); on CPU builds it
// checks that the same options are accepted and nothing is offloaded.
import { listDevices, loadModel, systemInfo } from '../lib'
import { bmpFile, greedy, tempDir, tinyPair } from './helpers/fixtures'

const expectGpu = process.env.LLAVA_NATIVE_EXPECT_GPU === '1'

describe('devices and offload', () => {
  test('listDevices reports the CPU, and a GPU when the build has one', () => {
    const devices = listDevices()
    expect(devices.some((d) => d.kind === 'cpu')).toBe(true)
    for (const d of devices) {
      expect(typeof d.name).toBe('string')
      expect(d.memoryTotal).toBeGreaterThanOrEqual(0)
    }
    const gpus = devices.filter((d) => d.kind !== 'cpu')
    if (expectGpu) {
      expect(gpus.length).toBeGreaterThan(0)
      expect(systemInfo().backends.some((b) => b !== 'CPU' && b !== 'RPC')).toBe(true)
    }
  })

  test.each([['max'], ['auto'], [1]] as const)('gpuLayers %s: layers and projector placed, answer generated', async (gpuLayers) => {
    const pair = tinyPair()
    const model = await loadModel({ ...pair, threads: 1, gpuLayers, mainGpu: expectGpu ? 0 : undefined })
    try {
      if (expectGpu) {
        const want = gpuLayers === 1 ? 1 : 3 // 2 layers + the output layer
        expect(model.gpuLayers).toBe(want)
      } else {
        expect(model.gpuLayers).toBe(0)
      }
      const s = model.createSession()
      const r = await s.complete({ prompt: 'USER: <image>\ndescribe\nASSISTANT:', images: [bmpFile(tempDir(), 'g.bmp').file], maxTokens: 8, ...greedy })
      expect(r.tokens).toHaveLength(8)
    } finally {
      await model.dispose()
    }
  })

  test('a mainGpu that does not exist is refused', async () => {
    await expect(loadModel({ ...tinyPair(), mainGpu: 7 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })
})
