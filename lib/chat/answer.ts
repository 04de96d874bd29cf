// A chat answer as llama.cpp's parser read it: the thinking, the answer text, the tool calls; and
// streamed pieces labelled with the part they belong to.
import type { NativeChatDelta, NativeChatMessage, NativePiece } from '../native-types'
import { tryParseJson } from '../structured/response-format'

/** A call the model made to one of the `tools`. */
export interface ToolCall {
  /** An id to answer the call with (a `tool` message's `toolCallId`). */
  id: string
  name: string
  /** The arguments as the model wrote them: JSON text (OpenAI's shape). */
  arguments: string
  /** `arguments` parsed, or undefined when the text is not JSON (an answer cut short). */
  parsedArguments: unknown
}

/** What a chat result adds to a completion result. */
export interface ChatAnswer {
  /** The answer, without the thinking and the tool calls. */
  text: string
  /** The thinking, where the template's format separates it ('' otherwise). */
  reasoning: string
  toolCalls: ToolCall[]
  /** Set when the answer did not match the format the template announced; the rest is a lenient reading. */
  parseError?: string
}

/** One streamed piece of a chat answer. */
export interface ChatPiece {
  text: string
  tokens: number[]
  /** 'text': the answer; 'reasoning': thinking; 'toolCall': arguments text of the call `toolCall.index`. */
  kind: 'text' | 'reasoning' | 'toolCall'
  /** With kind 'toolCall': which call, and its id and name (on the call's first piece at least). */
  toolCall?: { index: number; id: string; name: string }
}

// The answer starts without the whitespace some models write after the template's role prefix
// ('ASSISTANT:' + ' word'): put back into the history as the assistant message, it then renders to
// the tokens the session already holds, and the next turn reuses them.
export function answerOf(message: NativeChatMessage): ChatAnswer {
  const out: ChatAnswer = {
    text: message.content.trimStart(),
    reasoning: message.reasoning,
    toolCalls: message.toolCalls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments, parsedArguments: tryParseJson(c.arguments) })),
  }
  if (message.parseError !== undefined) out.parseError = message.parseError
  return out
}

/** Turns native pieces into labelled chat pieces; keeps the state a stream needs across batches. */
export function piecesOf(): (p: NativePiece) => ChatPiece[] {
  let started = false
  let tokens: number[] = []
  return (p) => {
    tokens = tokens.concat(p.tokens)
    const out: ChatPiece[] = []
    for (const d of p.deltas ?? ([] as NativeChatDelta[])) {
      let text = d.text
      if (d.kind === 'text' && !started) {
        text = text.trimStart()
        if (text.length === 0) continue
        started = true
      }
      if (d.kind !== 'toolCall' && text.length === 0) continue
      const piece: ChatPiece = { text, tokens, kind: d.kind }
      if (d.kind === 'toolCall') piece.toolCall = { index: d.index ?? 0, id: d.id ?? '', name: d.name ?? '' }
      tokens = []
      out.push(piece)
    }
    return out
  }
}
