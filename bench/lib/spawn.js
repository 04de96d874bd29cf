'use strict'
// Child processes with a deadline: each runs in its own process group, and the whole group is
// killed when the deadline passes (a wrapper's child goes with it).
const { spawn } = require('node:child_process')
const { performance } = require('node:perf_hooks')

const KEEP = 4 << 20 // bytes of stdout/stderr kept per stream (the end)
const live = new Set() // kill functions of the children still running

/** Kills every child still running (and its process group): for a benchmark interrupted by a signal. */
function killAll() {
  for (const kill of live) kill()
}

function runChild(cmd, args, { timeoutMs, cwd, env } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    let stdout = ''
    let stderr = ''
    let timedOut = false
    let child
    try {
      child = spawn(cmd, args, { cwd, env, detached: process.platform !== 'win32', stdio: ['ignore', 'pipe', 'pipe'] })
    } catch (err) {
      resolve({ code: null, signal: null, stdout, stderr: String(err), timedOut, wallMs: 0 })
      return
    }
    const keep = (buf, chunk) => {
      const s = buf + chunk
      return s.length > KEEP ? s.slice(s.length - KEEP) : s
    }
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout = keep(stdout, c)))
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr = keep(stderr, c)))
    const kill = () => {
      try {
        if (process.platform === 'win32') child.kill('SIGKILL')
        else process.kill(-child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    live.add(kill)
    const timer = timeoutMs
      ? setTimeout(() => {
          timedOut = true
          kill()
        }, timeoutMs)
      : undefined
    let settled = false
    const finish = (code, signal) => {
      if (settled) return
      settled = true
      live.delete(kill)
      if (timer) clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut, wallMs: performance.now() - t0 })
    }
    child.on('error', (err) => {
      stderr += `\n${err.message}`
      if (child.pid === undefined) finish(null, null) // it never started
    })
    child.on('close', finish)
  })
}

/** The last `n` characters of `s`, for error messages. */
function tail(s, n = 2000) {
  const t = String(s || '').trim()
  return t.length > n ? `…${t.slice(t.length - n)}` : t
}

module.exports = { killAll, runChild, tail }
