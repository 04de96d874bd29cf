// Streams an answer to stdout as it is generated, and ends its line afterwards.
import type { GeneratedPiece } from '../index'

export class AnswerWriter {
  /** What was written so far. */
  text = ''
  #ended = false

  /** For `onToken`. */
  readonly write = (piece: GeneratedPiece): void => {
    // a piece still in flight when the answer was stopped must not land after the next prompt
    if (this.#ended || piece.text.length === 0) return
    process.stdout.write(piece.text)
    this.text += piece.text
  }

  /** Ends the answer with a line break if it did not end with one. */
  end(): void {
    this.#ended = true
    if (this.text.length > 0 && !this.text.endsWith('\n')) process.stdout.write('\n')
  }
}
