// Perplexity of a token stream with rolling windows (the Hugging Face perplexity recipe, as in
// lm-evaluation-harness' rolling log-likelihood): every token after the first is scored exactly once, with up
// to window-1 tokens of context; `stride` new tokens are scored per window after the first, so a smaller stride
// gives each scored token more context at the cost of more forward passes.
import { checkPositiveInt, chunks, forwardRows, tokenLogProb } from './model.js';
import type { EvalForwardOptions, ScoringModel } from './model.js';

export interface PerplexityOptions {
  /** tokens per forward pass (the context length) */
  window: number;
  /** tokens newly scored per window after the first, 1 ≤ stride ≤ window-1; default window-1 (no overlap) */
  stride?: number;
  /** windows per forward pass; default 1 */
  batchSize?: number;
  /** UTF-8 bytes of the text the tokens encode, for bits per byte */
  bytes?: number;
  /** connectivity and schedule to run with (default: the model's) */
  forward?: EvalForwardOptions;
  /** also return each scored token's negative log-likelihood */
  returnTokenNll?: boolean;
}

export interface PerplexityResult {
  /** scored tokens (all but the first) */
  tokens: number;
  /** summed negative log-likelihood in nats */
  nll: number;
  /** exp(nll / tokens) */
  ppl: number;
  /** the same as ppl (lm-evaluation-harness calls it token perplexity) */
  tokenPerplexity: number;
  /** forward passes' windows */
  windows: number;
  /** when bytes was given: nll / ln 2 / bytes */
  bitsPerByte?: number;
  /** when bytes was given: exp(nll / bytes) */
  bytePerplexity?: number;
  /** when returnTokenNll: nll of token j at index j-1 */
  tokenNll?: Float64Array;
}

/** A forward window: input tokens [begin, end) scores the tokens [firstScored, end). */
export interface PerplexityWindow {
  begin: number;
  end: number;
  firstScored: number;
}

/**
 * The windows over `n` tokens. Window 0 is [0, min(window, n)) and scores its tokens 1..end-1; window k ends
 * `stride` tokens after window k-1 (clamped to n), starts `window` tokens before its end (clamped to 0) and
 * scores the tokens from the previous end on. Before the last window this is exactly HF's begin = k·stride; the
 * last window is extended to the left to a full window (more context, and every window has the same length).
 */
export function perplexityWindows(n: number, window: number, stride = window - 1): PerplexityWindow[] {
  checkPositiveInt(window, 'window', 'perplexity');
  if (window < 2) throw new Error(`perplexity: window ${window} must be at least 2 (a token and its context)`);
  checkPositiveInt(stride, 'stride', 'perplexity');
  if (stride > window - 1) {
    throw new Error(`perplexity: stride ${stride} must be at most window-1 = ${window - 1}, so that the first token each window scores keeps at least one token of context (HF's recipe with stride == window silently drops it); use stride ${window - 1} for non-overlapping windows`);
  }
  if (n < 2) throw new Error(`perplexity: needs at least 2 tokens (the first is only context), got ${n}`);
  const out: PerplexityWindow[] = [{ begin: 0, end: Math.min(window, n), firstScored: 1 }];
  while (out[out.length - 1]!.end < n) {
    const prevEnd = out[out.length - 1]!.end;
    const end = Math.min(prevEnd + stride, n);
    out.push({ begin: Math.max(0, end - window), end, firstScored: prevEnd });
  }
  return out;
}

/** Rolling-window perplexity of `tokens` under `model` (no autograd). */
export async function perplexity(model: ScoringModel, tokens: Int32Array | number[], options: PerplexityOptions): Promise<PerplexityResult> {
  const batchSize = options.batchSize ?? 1;
  checkPositiveInt(batchSize, 'batchSize', 'perplexity');
  if (options.bytes !== undefined && !(options.bytes > 0)) throw new Error(`perplexity: bytes ${options.bytes} must be positive (the UTF-8 length of the text)`);
  const windows = perplexityWindows(tokens.length, options.window, options.stride);
  const tokenNll = new Float64Array(tokens.length - 1);
  // windows of equal length share a forward pass (only the last one can be shorter, when n < window)
  const byLength = new Map<number, PerplexityWindow[]>();
  for (const w of windows) {
    const len = w.end - w.begin;
    const group = byLength.get(len);
    if (group) group.push(w); else byLength.set(len, [w]);
  }
  for (const group of byLength.values()) {
    for (const batch of chunks(group, batchSize)) {
      const rows = batch.map((w) => Array.from(tokens.slice(w.begin, w.end)));
      const logits = await forwardRows(model, rows, options.forward, 'perplexity');
      batch.forEach((w, b) => {
        // logits at position t predict token begin+t+1
        for (let j = w.firstScored; j < w.end; j++) tokenNll[j - 1] = -tokenLogProb(logits.row(b, j - 1 - w.begin), tokens[j]!).logprob;
      });
    }
  }
  let nll = 0;
  for (const v of tokenNll) nll += v;
  const scored = tokenNll.length;
  const ppl = Math.exp(nll / scored);
  const result: PerplexityResult = { tokens: scored, nll, ppl, tokenPerplexity: ppl, windows: windows.length };
  if (options.bytes !== undefined) {
    result.bitsPerByte = nll / Math.LN2 / options.bytes;
    result.bytePerplexity = Math.exp(nll / options.bytes);
  }
  if (options.returnTokenNll) result.tokenNll = tokenNll;
  return result;
}
