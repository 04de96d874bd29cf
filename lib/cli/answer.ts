// Streams an answer to stdout as it is generated, and ends its line afterwards. A reasoning
// model's thinking goes to stderr (when that is a terminal), so that stdout holds the answer alone.
import type { ChatPiece, GeneratedPiece } from '../index'

export class AnswerWriter {
  /** What was written so far. */
  text = ''
  #ended = false

  /** For `onToken`. */
  readonly write = (piece: GeneratedPiece | ChatPiece): void => {
    // a piece still in flight when the answer was stopped must not land after the next prompt
    if (this.#ended || piece.text.length === 0) return
    if ('kind' in piece && piece.kind !== 'text') {
      if (piece.kind === 'reasoning' && process.stderr.isTTY) process.stderr.write(`\x1b[2m${piece.text}\x1b[22m`)
      return
    }
    process.stdout.write(piece.text)
    this.text += piece.text
  }

  /** Ends the answer with a line break if it did not end with one. */
  end(): void {
    this.#ended = true
    if (this.text.length > 0 && !this.text.endsWith('\n')) process.stdout.write('\n')
  }
}
