import { LlavaError } from '../../lib'

/** The LlavaError code a call fails with (asserting it is a LlavaError), or 'resolved'. */
export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (err) {
    expect(err).toBeInstanceOf(LlavaError)
    return (err as LlavaError).code
  }
  return 'resolved'
}
