/** The longest gap between turns of the event loop while `work` runs, in ms. */
export async function worstLag(work: () => Promise<unknown>): Promise<number> {
  let worst = 0
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    worst = Math.max(worst, now - last)
    last = now
  }, 1)
  try {
    await work()
  } finally {
    clearInterval(timer)
  }
  return Math.max(worst, performance.now() - last)
}
