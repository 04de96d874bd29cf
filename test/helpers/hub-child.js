// A second process resolving a model through the built package (dist/), for the tests that need
// two processes at once or an OS limit: prints the result (or the error) as one JSON line.
'use strict'
const { resolveModel } = require('../../dist')

// With a handler installed, a write past `ulimit -f` fails with EFBIG instead of killing the process.
process.on('SIGXFSZ', () => {})

const [spec, cacheDir, endpoint] = process.argv.slice(2)
resolveModel(spec, { cacheDir, endpoint, retryDelayMs: 5, retries: 1 }).then(
  (r) => process.stdout.write(JSON.stringify({ ok: true, result: r }) + '\n'),
  (e) => {
    process.stdout.write(JSON.stringify({ ok: false, code: e.code, message: e.message, details: e.details }) + '\n')
    process.exitCode = 1
  },
)
