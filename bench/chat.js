#!/usr/bin/env node
'use strict'
// npm run bench -- --chat: what llama.cpp's chat layer and a response format cost, on the
// benchmark pair.
//   node bench/chat.js [--rounds 5] [--tokens 128] [--threads N]
// - generation through chat() (the answer parsed by llama.cpp's parser at every piece, tools
//   offered: a lazy tool-call grammar watching for its trigger) against complete() of the very
//   same rendered prompt with no parsing and no grammar, alternating, greedy, same tokens: the
//   ratio of their generation speeds;
// - generation constrained by a JSON schema (llama.cpp's converter, the grammar checked after the
//   choice as common_sampler does) against the same prompt unconstrained;
// - the time one rendering takes (on a worker thread; the JS thread is not held), for a real
//   template with 10 turns, with and without tools, and countTokens() of the same conversation.
const fs = require('node:fs')
const path = require('node:path')
const { loadModel } = require('llava-native')
const { ensurePair } = require('llava-native/fixtures')
const { eachArg } = require('./lib/common')

const ROOT = path.resolve(__dirname, '..')
const templates = path.join(ROOT, 'deps', 'llama.cpp', 'models', 'templates')

function parseArgs(argv) {
  const o = { rounds: 5, tokens: 128, threads: undefined }
  eachArg(argv, (a, value) => {
    const n = () => {
      const v = Number(value())
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} must be a positive integer`)
      return v
    }
    if (a === '--rounds') o.rounds = n()
    else if (a === '--tokens') o.tokens = n()
    else if (a === '--threads') o.threads = n()
    else throw new Error(`unknown option '${a}'`)
  })
  return o
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function main() {
  const o = parseArgs(process.argv.slice(2))
  const pair = ensurePair('bench')
  const model = await loadModel({ model: pair.model, ...(o.threads ? { threads: o.threads } : {}) })
  const template = fs.readFileSync(path.join(templates, 'Qwen-Qwen2.5-7B-Instruct.jinja'), 'utf8')
  const tools = [
    { type: 'function', function: { name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
  ]
  const turns = [{ role: 'system', content: 'You answer questions about photos.' }]
  for (let i = 0; i < 5; i++) turns.push({ role: 'user', content: `Question ${i}: what is in the picture?` }, { role: 'assistant', content: `Answer ${i}: a street with cars.` })
  turns.push({ role: 'user', content: 'Tell me a long story about it.' })

  // Rendering latency.
  const render = {}
  for (const [name, opts] of [['10 turns', { chatTemplate: template }], ['10 turns + tools', { chatTemplate: template, tools }]]) {
    await model.renderChat(turns, opts) // first use parses and caches the template
    const ms = []
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now()
      await model.renderChat(turns, opts)
      ms.push(performance.now() - t0)
    }
    render[name] = median(ms)
  }
  const countMs = []
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now()
    await model.countTokens(turns, { chatTemplate: template, tools })
    countMs.push(performance.now() - t0)
  }
  render['countTokens, 10 turns + tools'] = median(countMs)

  // Generation with and without the chat layer's parsing (and, with tools, its lazy grammar), on
  // the very same prompt, alternating.
  const opts = { maxTokens: o.tokens, temperature: 0, reuseCache: false }
  const generation = {}
  let sameTokens = true
  for (const [name, render] of [['tools', { chatTemplate: template, tools }], ['no tools', { chatTemplate: template }]]) {
    const rendered = await model.renderChat(turns, render)
    const speeds = { chat: [], complete: [] }
    for (let r = 0; r < o.rounds; r++) {
      const s = model.createSession({ contextSize: 2048 })
      const plain = await s.complete({ prompt: rendered.prompt, ...opts })
      s.reset()
      const chat = await s.chat(turns, { ...render, ...opts })
      await s.dispose()
      sameTokens &&= JSON.stringify(plain.tokens) === JSON.stringify(chat.tokens)
      speeds.complete.push((plain.timings.generatedTokens / plain.timings.generateMs) * 1000)
      speeds.chat.push((chat.timings.generatedTokens / chat.timings.generateMs) * 1000)
    }
    generation[name] = { completeTokPerS: median(speeds.complete), chatTokPerS: median(speeds.chat), ratio: median(speeds.chat) / median(speeds.complete) }
  }
  // A response format against none: a schema whose string the model fills until maxTokens, so that
  // both arms generate the same number of tokens.
  const schema = { type: 'object', properties: { story: { type: 'string' } }, required: ['story'] }
  const prompt = 'USER: Tell a story as JSON.\nASSISTANT:'
  const structured = { constrained: [], free: [] }
  for (let r = 0; r < o.rounds; r++) {
    const s = model.createSession({ contextSize: 2048 })
    const free = await s.complete({ prompt, ...opts })
    const constrained = await s.complete({ prompt, ...opts, responseFormat: { type: 'json_schema', schema } })
    await s.dispose()
    structured.free.push((free.timings.generatedTokens / free.timings.generateMs) * 1000)
    structured.constrained.push((constrained.timings.generatedTokens / constrained.timings.generateMs) * 1000)
  }
  generation['json schema'] = {
    constrainedTokPerS: median(structured.constrained),
    freeTokPerS: median(structured.free),
    ratio: median(structured.constrained) / median(structured.free),
  }
  await model.dispose()
  const out = {
    model: path.basename(pair.model),
    threads: model.defaults.threads,
    tokens: o.tokens,
    rounds: o.rounds,
    sameTokens,
    generation,
    renderMs: render,
  }
  console.log(JSON.stringify(out, null, 2))
  for (const [name, g] of Object.entries(generation)) {
    if (name === 'json schema') {
      console.log(`responseFormat (json schema) ${g.constrainedTokPerS.toFixed(2)} tok/s vs unconstrained ${g.freeTokPerS.toFixed(2)} tok/s: ${g.ratio.toFixed(3)}x`)
    } else {
      console.log(`chat() (${name}) ${g.chatTokPerS.toFixed(2)} tok/s vs complete() of the same prompt ${g.completeTokPerS.toFixed(2)} tok/s: ${g.ratio.toFixed(3)}x`)
    }
  }
  console.log(`same tokens: ${sameTokens}; rendering ${render['10 turns'].toFixed(2)} ms, with tools ${render['10 turns + tools'].toFixed(2)} ms`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
