// Log-likelihood of continuations given contexts, as lm-evaluation-harness computes it for causal LMs:
// context and context+continuation are tokenized separately, the continuation's tokens are the tail of the
// whole encoding past the context's tokens, and only those tokens are scored. Requests whose inputs have the
// same length share a forward pass (the model has no padding mask).
import { checkPositiveInt, chunks, forwardRows, tokenLogProb } from './model.js';
import type { EvalForwardOptions, ScoringModel, TextCodec } from './model.js';

export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

export interface LoglikelihoodResult {
  /** sum of log p(continuation token | everything before it), nats */
  loglik: number;
  /** every continuation token was the argmax */
  isGreedy: boolean;
  /** continuation tokens scored */
  tokens: number;
}

export interface LoglikelihoodOptions {
  /** sequences per forward pass (of equal length); default 16 */
  batchSize?: number;
  /** tokens put before every context (e.g. [bos], the harness's add_bos_token); an empty context needs one */
  prefixTokens?: number[];
  /** encode with the tokenizer's special tokens (post-processor); default false, as the harness does for causal LMs */
  addSpecialTokens?: boolean;
  /** the model's context length: longer inputs keep their last maxLength tokens (the harness's left truncation) */
  maxLength?: number;
  forward?: EvalForwardOptions;
}

/** Context and continuation token ids of one request (the harness's _encode_pair). */
export function encodePair(codec: TextCodec, request: LoglikelihoodRequest, options: Pick<LoglikelihoodOptions, 'prefixTokens' | 'addSpecialTokens'> = {}): { context: number[]; continuation: number[] } {
  let { context, continuation } = request;
  // trailing whitespace of the context belongs to the continuation (BPE merges a space with the next word)
  const trimmed = context.replace(/\s+$/u, '');
  if (trimmed.length < context.length) {
    continuation = context.slice(trimmed.length) + continuation;
    context = trimmed;
  }
  const enc = (s: string): number[] => (s === '' ? [] : codec.encode(s, { addSpecialTokens: options.addSpecialTokens ?? false }));
  const prefix = options.prefixTokens ?? [];
  if (context === '') {
    if (prefix.length === 0) throw new Error('loglikelihood: the context is empty; set prefixTokens (e.g. [bos] or [eos], as the harness does) so the first continuation token has something to be predicted from');
    return { context: [...prefix], continuation: enc(continuation) };
  }
  const whole = enc(context + continuation);
  const ctx = enc(context);
  return { context: [...prefix, ...ctx], continuation: whole.slice(ctx.length) };
}

/** Log-likelihood of each request's continuation given its context (no autograd). */
export async function loglikelihoods(model: ScoringModel, codec: TextCodec, requests: LoglikelihoodRequest[], options: LoglikelihoodOptions = {}): Promise<LoglikelihoodResult[]> {
  const batchSize = options.batchSize ?? 16;
  checkPositiveInt(batchSize, 'batchSize', 'loglikelihood');
  if (options.maxLength !== undefined) checkPositiveInt(options.maxLength, 'maxLength', 'loglikelihood');
  // input = (context + continuation)[-(maxLength+1):][:-1]; logits at the last |continuation| positions score it
  const prepared = requests.map((r, i) => {
    const { context, continuation } = encodePair(codec, r, options);
    if (continuation.length === 0) {
      throw new Error(`loglikelihood: request ${i} has no continuation tokens (continuation ${JSON.stringify(r.continuation)}); give a non-empty continuation`);
    }
    if (options.maxLength !== undefined && continuation.length > options.maxLength) {
      throw new Error(`loglikelihood: request ${i} has ${continuation.length} continuation tokens, more than maxLength ${options.maxLength}`);
    }
    let all = [...context, ...continuation];
    if (options.maxLength !== undefined) all = all.slice(-(options.maxLength + 1));
    return { index: i, input: all.slice(0, -1), continuation };
  });
  const byLength = new Map<number, typeof prepared>();
  for (const p of prepared) {
    const group = byLength.get(p.input.length);
    if (group) group.push(p); else byLength.set(p.input.length, [p]);
  }
  const results: LoglikelihoodResult[] = new Array(requests.length);
  for (const [T, group] of [...byLength].sort((a, b) => b[0] - a[0])) {
    for (const batch of chunks(group, batchSize)) {
      const logits = await forwardRows(model, batch.map((p) => p.input), options.forward, 'loglikelihood');
      batch.forEach((p, b) => {
        const C = p.continuation.length;
        let loglik = 0, isGreedy = true;
        for (let k = 0; k < C; k++) {
          const { logprob, greedy } = tokenLogProb(logits.row(b, T - C + k), p.continuation[k]!);
          loglik += logprob;
          isGreedy &&= greedy;
        }
        results[p.index] = { loglik, isGreedy, tokens: C };
      });
    }
  }
  return results;
}
