#!/usr/bin/env node
'use strict'
// One round of llava-native, in a process of its own (fresh load time, its own peak RSS):
//   node bench/lib/llava-child.js <config.json> <result.json>
// Phases: load, encode, first answer (prompt with the encoded image), then unless config.quick:
// a second chat turn, a text-only prefill, one session alone and four sessions at once. The result
// file is rewritten after each phase, so the parent keeps what was measured if this one dies.
const { performance } = require('node:perf_hooks')
const {
  FOLLOW_UP,
  LagMonitor,
  PARALLEL_PROMPTS,
  QUESTION,
  TEXT_PROMPT,
  childArgs,
  imagePrompt,
  peakRssMb,
  resultFile,
  round,
  exitWhenDone,
} = require('./common')

const { config, resultPath } = childArgs()
const out = resultFile(resultPath, { system: 'llava-native', pid: process.pid })
const r = out.result

const greedy = { temperature: 0, seed: 42 }

/** complete()/chat() with the time from the call to the first piece. */
async function timed(call) {
  let firstMs
  const t0 = performance.now()
  const result = await call((/* piece */) => {
    if (firstMs === undefined) firstMs = performance.now() - t0
  })
  return { result, ttftMs: firstMs, wallMs: performance.now() - t0 }
}

async function main() {
  const t0 = performance.now()
  const { loadModel, systemInfo } = require('llava-native')
  systemInfo() // loads the native addon, outside the timed load (as the fugood child does)
  r.moduleLoadMs = round(performance.now() - t0)

  const lag = new LagMonitor(5)
  r.lag = {}
  try {
    // Load: text model + projector.
    await lag.begin()
    let t = performance.now()
    const model = await loadModel({ model: config.model, mmproj: config.mmproj, threads: config.threads })
    r.loadMs = round(performance.now() - t)
    r.lag.load = await lag.take()
    out.save()

    // Encode the image once.
    t = performance.now()
    const image = await model.encodeImage(config.image)
    // The encoder's own time is what llama.cpp's tools log; the call's wall time adds the BMP
    // decode, preprocessing, hashing and the hop back to JS, and is reported on its own row.
    r.encodeCallMs = round(performance.now() - t)
    r.encodeMs = round(image.encoderMs)
    r.imageTokens = image.nTokens
    r.lag.encode = await lag.take()
    out.save()

    // First answer: the prompt with the already-encoded image.
    const session = model.createSession({ contextSize: config.contextSize })
    const first = await timed((onToken) =>
      session.complete({ prompt: imagePrompt('<image>'), images: [image], maxTokens: config.nPredict, ...greedy, onToken }),
    )
    r.lag.generate = await lag.take()
    // No lag is reported for the phases below; the timer would only take CPU from them (1-2% on
    // two cores: bench/timer-cost.js).
    lag.stop()
    const t1 = first.result.timings
    Object.assign(r, {
      ttftMs: round(first.ttftMs),
      ttftFromFileMs: round(r.encodeCallMs + first.ttftMs), // encode, then this prompt: derived
      imagePrefillMs: round(t1.imagePrefillMs),
      promptMs: round(t1.promptMs),
      promptTokens: t1.promptTokens,
      generatedTokens: t1.generatedTokens,
      generateMs: round(t1.generateMs),
      genTokPerS: round(t1.generatedTokens / (t1.generateMs / 1000)),
      stopReason: first.result.stopReason,
      answer: first.result.text,
    })
    // The peak so far covers what llama-mtmd-cli does (load, encode, prefill, generate); the
    // extra sessions below would add their own KV caches.
    r.peakRssMb = peakRssMb()
    out.save()

    if (!config.quick) {
      // A conversation, as a chat app holds it: turn 1, then the whole conversation again with the
      // answer and a follow-up; only the new tokens are evaluated and the image is not encoded again.
      // The template writes "ASSISTANT: " + answer, and a trained model's answer starts with a
      // space-prefixed token, so the history re-renders to the very tokens it generated. Random
      // weights often start mid-word instead ("ASSISTANT:photo"), which the template's
      // "ASSISTANT: photo" can only re-evaluate; a grammar gives turn 1 a trained model's shape.
      const chatSession = model.createSession({ contextSize: config.contextSize })
      const turn1Messages = [{ role: 'user', content: [{ type: 'image', image }, { type: 'text', text: QUESTION }] }]
      const turn1 = await timed((onToken) =>
        chatSession.chat(turn1Messages, { maxTokens: config.nPredict, ...greedy, grammar: 'root ::= " " [^\\n]*', onToken }),
      )
      const messages = [...turn1Messages, { role: 'assistant', content: turn1.result.text }, { role: 'user', content: FOLLOW_UP }]
      const second = await timed((onToken) => chatSession.chat(messages, { maxTokens: 8, ...greedy, onToken }))
      const t2 = second.result.timings
      r.turn2 = {
        turn1TtftMs: round(turn1.ttftMs),
        ttftMs: round(second.ttftMs),
        promptTokens: t2.promptTokens,
        reusedTokens: t2.reusedTokens,
        evaluatedTokens: t2.promptTokens - t2.reusedTokens,
        promptMs: round(t2.promptMs),
        imageEncodes: t2.imageEncodes,
      }
      await chatSession.dispose()
      r.turn2Speedup = round(turn1.ttftMs / second.ttftMs, 1)
      await session.dispose()
      out.save()

      // Text-only prefill in a fresh session.
      const textSession = model.createSession({ contextSize: config.contextSize })
      const text = await textSession.complete({ prompt: TEXT_PROMPT, maxTokens: 1, ...greedy })
      r.textPromptTokens = text.timings.promptTokens
      r.textPrefillTokPerS = round(text.timings.promptTokens / (text.timings.promptMs / 1000))
      await textSession.dispose()
      out.save()

      // One session alone, then four at once in a session group (one context, their tokens
      // decoded together), each with its own prompt and contextSize.
      const alone = model.createSession({ contextSize: config.contextSize })
      t = performance.now()
      const a = await alone.complete({ prompt: PARALLEL_PROMPTS[0], maxTokens: config.nPredict, ...greedy })
      const aloneMs = performance.now() - t
      await alone.dispose()
      const group = model.createSessionGroup({ sessions: PARALLEL_PROMPTS.length, contextSize: config.contextSize })
      const sessions = PARALLEL_PROMPTS.map(() => group.createSession())
      t = performance.now()
      const ask = (s, i, maxTokens) => s.complete({ prompt: PARALLEL_PROMPTS[i], maxTokens, ...greedy })
      const firstTokens = await Promise.all(sessions.map((s, i) => ask(s, i, 1)))
      const promptsMs = performance.now() - t
      // The same prompts again, now cached: all four generate side by side from the first step, as
      // llama-batched-bench's generation phase does (its S_TG excludes the prompts too).
      const all = await Promise.all(sessions.map((s, i) => ask(s, i, config.nPredict)))
      const allMs = performance.now() - t
      r.peakRssAllMb = peakRssMb()
      await group.dispose()
      const allTokens = all.reduce((n, x) => n + x.timings.generatedTokens, 0)
      // Generation proper, as llama-batched-bench's S_TG: the sessions generate side by side, so
      // the longest generation phase spans all of them.
      const genMs = Math.max(...all.map((x) => x.timings.generateMs))
      r.parallel = {
        sessions: sessions.length,
        oneSessionTokens: a.timings.generatedTokens,
        oneSessionWallMs: round(aloneMs),
        oneSessionTokPerS: round(a.timings.generatedTokens / (aloneMs / 1000)),
        oneSessionGenTokPerS: round(a.timings.generatedTokens / (a.timings.generateMs / 1000)),
        totalTokens: allTokens,
        wallMs: round(allMs),
        totalTokPerS: round((allTokens + firstTokens.length) / (allMs / 1000)),
        promptsMs: round(promptsMs),
        genTokPerS: round(allTokens / (genMs / 1000)),
        sharedDecodes: all.reduce((n, x) => n + x.timings.sharedDecodes, 0),
      }
      r.parallel.scaling = round(r.parallel.genTokPerS / r.parallel.oneSessionGenTokPerS)
      out.save()
    }

    await image.dispose()
    await model.dispose()
    out.done()
  } finally {
    lag.stop()
  }
}

exitWhenDone(main, out)
