// `eval`: held-out perplexity (rolling over whole held-out documents) of --model on the dataset.
import { TokenDataset } from '@farskip/distill';
import { loadModel } from '@farskip/models';
import { noGrad, Tensor } from '@farskip/tensor';
import { logSoftmax } from '@farskip/kernels';
import type { TrainerConfig } from './config.js';
import { prepareData } from './commands.js';

export async function evaluateModel(cfg: TrainerConfig): Promise<string> {
  if (!cfg.model) throw new Error('eval needs --model <dir>');
  const model = loadModel(cfg.model);
  const ds = TokenDataset.open(await prepareData(cfg, console.log));
  try {
    const split = ds.split('heldout');
    const n = Math.min(ds.index.splits.heldout.tokens, 64 * cfg.seq + 1);
    const toks = split.read(0, n);
    let nll = 0, count = 0;
    await noGrad(async () => {
      for (let s = 0; s + cfg.seq < toks.length; s += cfg.seq) {
        const ids = new Tensor(toks.slice(s, s + cfg.seq), [1, cfg.seq], { dtype: 'i32' });
        const lp = logSoftmax(await model.forward(ids)).data as Float32Array;
        const V = model.spec.vocabSize;
        for (let t = 0; t < cfg.seq; t++) { nll -= lp[t * V + toks[s + t + 1]!]!; count++; }
      }
    });
    return JSON.stringify({ model: cfg.model, heldOutTokens: count, nll: nll / count, perplexity: Math.exp(nll / count) });
  } finally {
    ds.close();
  }
}
