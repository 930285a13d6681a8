// Incremental detokenization with stop strings: the completion's text as tokens arrive, what may be sent to a
// streaming client so far, and where a stop string ends the completion. Text that could still grow into a stop
// string, or that ends in an incomplete UTF-8 sequence (a byte-level token split a character: U+FFFD), is held
// back until the next token decides it.
import type { Tokenizer } from '@farskip/models';

export class CompletionText {
  private readonly tokens: number[] = [];
  /** the completion's text (cut before a stop string once one was found) */
  text = '';
  /** characters of `text` already handed out by take() */
  private sent = 0;
  stopped = false;
  private readonly longestStop: number;

  constructor(private readonly tokenizer: Tokenizer, private readonly stops: string[] = [], private readonly skipSpecial = true) {
    this.longestStop = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Adds a generated token; returns true when a stop string ended the completion. */
  push(token: number): boolean {
    if (this.stopped) return true;
    this.tokens.push(token);
    const text = this.tokenizer.decode(this.tokens, { skipSpecialTokens: this.skipSpecial });
    if (this.stops.length) {
      // a stop string can only end in the new part; search from where one could start
      const from = Math.max(0, this.text.length - this.longestStop);
      let cut = -1;
      for (const s of this.stops) {
        const i = text.indexOf(s, from);
        if (i >= 0 && (cut < 0 || i < cut)) cut = i;
      }
      if (cut >= 0) {
        this.text = text.slice(0, cut);
        this.stopped = true;
        return true;
      }
    }
    this.text = text;
    return false;
  }

  /** The text not yet handed out that is final (everything when `done`). */
  take(done = false): string {
    let end = this.text.length;
    if (!done && !this.stopped) {
      if (this.text.endsWith('\uFFFD')) end = this.text.length - 1;
      end = Math.max(this.sent, end - Math.max(0, this.longestStop - 1));
    }
    const out = this.text.slice(this.sent, end);
    this.sent = Math.max(this.sent, end);
    return out;
  }
}
