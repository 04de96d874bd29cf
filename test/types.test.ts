// Compiles test/types/usage.ts against the package's published declarations (dist/*.d.ts).
import * as path from 'node:path'
import * as ts from 'typescript'
import { root } from './helpers/fixtures'

test('typical user code type-checks against the published declarations, and misuse does not', () => {
  const file = path.join(root, 'test', 'types', 'usage.ts')
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts', 'lib.dom.d.ts'],
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    types: ['node'],
    typeRoots: [path.join(root, 'node_modules', '@types')],
    skipLibCheck: true,
  })
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
  expect(diagnostics).toEqual([])
  // The declarations come from dist/, as users get them.
  const resolved = program.getSourceFiles().map((f) => f.fileName).filter((f) => f.includes('/dist/'))
  expect(resolved.some((f) => f.endsWith('dist/index.d.ts'))).toBe(true)
})
