// Log-probabilities of a logits row, as the OpenAI API reports them: the chosen token's and the top alternatives'
// (of the model's distribution, before temperature / top-k / top-p, as vLLM reports them).

export interface TokenLogprobs {
  token: number;
  logprob: number;
  /** the `n` most likely tokens, most likely first */
  top: { token: number; logprob: number }[];
}

/** log-softmax of `row` (f64 accumulation) at `token`, with the `n` most likely tokens. */
export function logprobsOf(row: Float32Array, token: number, n: number): TokenLogprobs {
  let mx = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > mx) mx = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - mx);
  const lse = mx + Math.log(sum);
  const top: { token: number; logprob: number }[] = [];
  if (n > 0) {
    // a partial selection: keep the n best in a small sorted array (n is at most 20 in the API)
    for (let i = 0; i < row.length; i++) {
      const v = row[i]!;
      if (top.length === n && v <= top[n - 1]!.logprob) continue;
      let j = top.length < n ? top.length : n - 1;
      if (top.length < n) top.push({ token: i, logprob: v }); else top[j] = { token: i, logprob: v };
      while (j > 0 && top[j - 1]!.logprob < top[j]!.logprob) { [top[j - 1], top[j]] = [top[j]!, top[j - 1]!]; j--; }
    }
    for (const t of top) t.logprob -= lse;
  }
  return { token, logprob: row[token]! - lse, top };
}
