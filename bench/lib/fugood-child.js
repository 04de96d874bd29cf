#!/usr/bin/env node
'use strict'
// One round of @fugood/llama.node@1.7.15, in a process of its own:
//   node bench/lib/fugood-child.js <config.json> <result.json>
// Its API: loadModel({ model, n_ctx, n_threads }) constructs the context synchronously (the load
// runs on the JS thread); context.initMultimodal({ path }) loads the projector, also synchronously;
// context.completion({ prompt, media_paths, n_predict, temperature }, onToken) encodes the image
// inside the completion (there is no separate encode call) and resolves with timings
// { prompt_n, prompt_ms, predicted_n, predicted_ms, predicted_per_second }. The image encode and
// image-token decode times are the lines llama.cpp's mtmd helper prints to stderr ("image slice
// encoded in N ms", "image decoded (batch i/n) in N ms"): the parent reads them from this
// process's stderr (fugoodLogTimings below).
const { performance } = require('node:perf_hooks')
const { LagMonitor, TEXT_PROMPT, childArgs, exitWhenDone, imagePrompt, peakRssMb, resultFile, round } = require('./common')

const { config, resultPath } = childArgs()
const out = resultFile(resultPath, { system: 'fugood', pid: process.pid })
const r = out.result

async function main() {
  let t = performance.now()
  const llama = require(config.fugoodDir)
  await llama.getBackendDevicesInfo() // imports the native module, outside the timed load
  r.moduleLoadMs = round(performance.now() - t)
  r.version = require(`${config.fugoodDir}/package.json`).version

  const lag = new LagMonitor(5)
  r.lag = {}
  try {
    await lag.begin()
    t = performance.now()
    const ctx = await llama.loadModel({ model: config.model, n_ctx: config.contextSize, n_threads: config.threads })
    if (!ctx.initMultimodal({ path: config.mmproj })) throw new Error('initMultimodal returned false')
    r.loadMs = round(performance.now() - t)
    r.lag.load = await lag.take()
    r.systemInfo = ctx.getSystemInfo() // the CPU features its prebuilt binary was compiled with
    out.save()

    // The image is encoded inside the completion: its time to first token includes encoding.
    let firstMs
    t = performance.now()
    const res = await ctx.completion(
      { prompt: imagePrompt('<__media__>'), media_paths: [config.image], n_predict: config.nPredict, temperature: 0, seed: 42 },
      () => {
        if (firstMs === undefined) firstMs = performance.now() - t
      },
    )
    r.lag.generate = await lag.take()
    const tm = res.timings
    Object.assign(r, {
      ttftFromFileMs: round(firstMs),
      perfPromptEvalMs: round(tm.prompt_ms), // spans the encoder too: the parent subtracts it
      promptTokens: tm.prompt_n,
      generatedTokens: tm.predicted_n,
      generateMs: round(tm.predicted_ms),
      genTokPerS: round(tm.predicted_per_second),
      stopped: { eos: res.stopped_eos, limit: res.stopped_limit, contextFull: res.context_full },
      answer: res.text,
    })
    r.peakRssMb = peakRssMb()
    out.save()

    if (!config.quick) {
      // Text-only prefill with an empty cache.
      ctx.clearCache(true)
      const text = await ctx.completion({ prompt: TEXT_PROMPT, n_predict: 1, temperature: 0, seed: 42 })
      r.textPromptTokens = text.timings.prompt_n
      r.textPrefillTokPerS = round(text.timings.prompt_per_second)
      out.save()
    }

    await ctx.release()
    out.done()
  } finally {
    lag.stop()
  }
}

// The binding keeps the process alive after release(): leave explicitly once the result is written.
exitWhenDone(main, out)
