// Documents -> token ids (+ a per-token loss mask for conversations). Text is encoded without the tokenizer's
// special tokens (no BOS/EOS from the post-processor: the builder appends EOS itself); a conversation is rendered
// with the chat template (which writes its own BOS / turn markers, as transformers' apply_chat_template does) and
// encoded likewise.
import type { ChatMessage, Tokenizer } from '@farskip/models';
import type { Document } from './sources.js';

export interface EncodedDocument {
  ids: number[];
  /** [ids.length] 1 = the token counts as a target (an assistant turn); null for plain text (all count) */
  mask: Uint8Array | null;
}

/** Length of the common prefix of two id lists. */
function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * Renders and encodes a conversation; the mask marks each assistant turn's tokens. An assistant turn i spans
 * from the end of `render(messages[0..i), addGenerationPrompt)` (so the assistant header does not count) to the
 * end of `render(messages[0..i])` (so its end-of-turn marker does), both measured as the common prefix with the
 * whole rendering's ids: a template that renders earlier turns differently (e.g. drops reasoning) still yields
 * the tokens that are actually in the sequence.
 */
export function encodeChat(tokenizer: Tokenizer, messages: readonly ChatMessage[]): EncodedDocument {
  const encode = (upTo: number, addGenerationPrompt: boolean): number[] =>
    tokenizer.encode(tokenizer.applyChatTemplate(messages.slice(0, upTo), { addGenerationPrompt }), { addSpecialTokens: false });
  const ids = encode(messages.length, false);
  const mask = new Uint8Array(ids.length);
  let turnStart = 0;
  for (let i = 0; i < messages.length; i++) {
    const turnEnd = i === messages.length - 1 ? ids.length : commonPrefix(ids, encode(i + 1, false));
    if (messages[i]!.role === 'assistant') {
      let start = turnStart;
      try {
        start = Math.max(turnStart, commonPrefix(ids, encode(i, true)));
      } catch {
        // a template that cannot render this prefix (e.g. it insists on a first user turn): count the whole turn
      }
      mask.fill(1, start, Math.max(start, turnEnd));
    }
    turnStart = turnEnd;
  }
  return { ids, mask };
}

/** Encodes one document; errors name the document. */
export function encodeDocument(tokenizer: Tokenizer, doc: Document): EncodedDocument {
  try {
    if ('messages' in doc) return encodeChat(tokenizer, doc.messages);
    return { ids: tokenizer.encode(doc.text, { addSpecialTokens: false }), mask: null };
  } catch (e) {
    throw new Error(`cannot encode document '${doc.id}': ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
