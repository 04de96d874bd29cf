'use strict'
const base = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/test/tsconfig.json' }],
  },
}

// The suites that run models, run a second time with every model in a child process of its own
// (LLAVA_NATIVE_ISOLATION=process): the isolated API must pass them unchanged.
const ISOLATED = [
  'api', 'audio', 'chat', 'chat-answers', 'chat-render', 'cli', 'cpu-wait', 'determinism', 'families', 'group', 'hostile-input', 'hybrid',
  'image-formats', 'image-heif', 'image-orientation', 'mrope', 'parity', 'process', 'session-file', 'structured', 'threads', 'untrusted',
]

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 120000,
  // One worker process keeps the 2-core machines honest.
  maxWorkers: 1,
  projects: [
    { ...base, displayName: 'in-process', testMatch: ['**/*.test.ts'] },
    {
      ...base,
      displayName: 'isolated',
      testMatch: ISOLATED.map((name) => `**/test/${name}.test.ts`),
      setupFiles: ['<rootDir>/test/helpers/isolated-setup.js'],
    },
  ],
}
