#!/usr/bin/env bash
# Builds the addon and llama.cpp with AddressSanitizer + UndefinedBehaviorSanitizer into .asan/
# (a build directory of its own, so the normal build stays) and runs the jest suite against it.
# Node itself is not instrumented: the ASan runtime is preloaded. A memory error or undefined
# behaviour stops the process (the suite fails). LeakSanitizer writes its reports to
# .asan/reports/; node and V8 keep allocations alive until exit by design, so the reports are
# filtered afterwards: any leak whose stack passes through the addon (llava_native.node, which
# holds llama.cpp, ggml and mtmd) fails the run.
#   npm run test:asan [-- <jest arguments>]
set -euo pipefail
cd "$(dirname "$0")/.."

node scripts/build-native.js --sanitize --build-dir .asan/build
npm run build:ts >/dev/null

rm -rf .asan/reports && mkdir -p .asan/reports
export LLAVA_NATIVE_BINARY_DIR="$PWD/.asan"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_odr_violation=0:allocator_may_return_null=1:log_path=$PWD/.asan/reports/asan"
export LSAN_OPTIONS="exitcode=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$PWD/scripts/asan/ubsan.supp:log_path=$PWD/.asan/reports/ubsan"
status=0
# Jest's output is kept too: a UBSan report can land on stderr rather than in log_path.
npx jest --runInBand "$@" 2>&1 | tee .asan/reports/jest-output.log || status=$?
unset LD_PRELOAD
node scripts/asan/check-reports.js .asan/reports || status=1
exit $status
