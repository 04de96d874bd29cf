// The demo's sample image, drawn in code: a sky, a sun, a house with a roof, a door and a window, a
// tree and grass, as raw RGB pixels (no binary file in the package).
import type { RawImage } from '../index'

type Rgb = readonly [number, number, number]

export const SCENE_DESCRIPTION = 'a house with a red roof under a blue sky, a yellow sun, a tree and grass'

export function drawScene(width = 96, height = 64): RawImage {
  const data = new Uint8Array(width * height * 3)
  const set = (x: number, y: number, [r, g, b]: Rgb): void => {
    const i = (y * width + x) * 3
    data[i] = r
    data[i + 1] = g
    data[i + 2] = b
  }
  const horizon = Math.round(height * 0.68)
  const sun = { x: width * 0.82, y: height * 0.2, r: height * 0.11 }
  const house = { x0: width * 0.2, x1: width * 0.48, y0: height * 0.45, y1: height * 0.82 }
  const roofTop = height * 0.22
  const houseMid = (house.x0 + house.x1) / 2
  const tree = { x: width * 0.68, y: height * 0.5, r: height * 0.12 }

  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // sky: darker blue at the top, paler at the horizon; grass with a little texture below
      const t = y / horizon
      let c: Rgb = y < horizon
        ? [Math.round(70 + 110 * t), Math.round(130 + 85 * t), Math.round(220 + 30 * t)]
        : [60 + ((x * 7 + y * 13) % 17), 140 + ((x * 11 + y * 5) % 23), 50]
      const ds = Math.hypot(x - sun.x, y - sun.y)
      if (ds < sun.r) c = [255, 214, 64]
      else if (ds < sun.r * 1.5 && y < horizon) c = [Math.min(255, c[0] + 60), Math.min(255, c[1] + 40), c[2]]
      // tree: a trunk and a round crown
      if (Math.abs(x - tree.x) < width * 0.015 && y >= tree.y && y < horizon + height * 0.06) c = [110, 70, 35]
      if (Math.hypot(x - tree.x, y - tree.y) < tree.r) c = [34, 110 + ((x + y) % 3) * 12, 40]
      // house: walls, a triangular roof, a door and a window
      const halfRoof = ((y - roofTop) / (house.y0 - roofTop)) * ((house.x1 - house.x0) / 2 + width * 0.03)
      if (y >= roofTop && y < house.y0 && Math.abs(x - houseMid) <= halfRoof) c = [170, 40, 35]
      if (x >= house.x0 && x < house.x1 && y >= house.y0 && y < house.y1) {
        c = [225, 200, 160]
        if (x >= houseMid - width * 0.035 && x < houseMid + width * 0.035 && y >= house.y1 - height * 0.2) c = [100, 60, 30]
        if (x >= house.x0 + width * 0.03 && x < house.x0 + width * 0.08 && y >= house.y0 + height * 0.06 && y < house.y0 + height * 0.14) {
          c = [150, 200, 240]
        }
      }
      set(x, y, c)
    }
  }
  return { data, width, height, format: 'rgb' }
}
