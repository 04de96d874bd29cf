// Test hook, honoured only in an isolated model's child process: LLAVA_NATIVE_TEST_CRASH=
// '<point>:<how>' ends the child at that point of its work, the way llama.cpp or the system would:
// points load (during loading), encode (an image or sound being encoded), prefill (a prompt being
// evaluated), generate (tokens streaming) and save (a session file being written); how: abort
// (abort(), as GGML_ABORT does), segv (a SIGSEGV) or kill (a SIGKILL, as the kernel's OOM killer
// sends). It is read once, when the child starts; the host never reads it.
const spec = process.env.LLAVA_NATIVE_TEST_CRASH
delete process.env.LLAVA_NATIVE_TEST_CRASH
const [where, how] = spec ? spec.split(':') : []

/** Whether the hook waits at `point` (so that a callback is there to reach it). */
export function crashArmed(point: string): boolean {
  return point === where
}

export function crashPoint(point: string): void {
  if (point !== where) return
  if (how === 'abort') process.abort()
  process.kill(process.pid, how === 'segv' ? 'SIGSEGV' : 'SIGKILL')
}
