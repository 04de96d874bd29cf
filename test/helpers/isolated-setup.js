'use strict'
// The "isolated" jest project: every model these suites load runs in a child process, through
// the documented default (loadModel's `isolation` option unset).
process.env.LLAVA_NATIVE_ISOLATION = 'process'
