// The standard (unconverted) MoE transformer computed the plain way, every collective blocking:
//   h = x + Attn(LN1(x));  x' = h + Shared(LN2(h)) + Routed(LN2(h))
// It is the baseline of the benchmark ("standard-blocking") and the model that FarSkipStack with
// mode 'original' must reproduce bit for bit.
import { add, rmsNorm } from '@farskip/kernels';
import type { Tensor } from '@farskip/tensor';
import { allReduceTensor } from './comm.js';
import type { CommEnv } from './comm.js';
import type { MlpLike } from './mlp.js';
import { isMoE } from './stack.js';
import type { FarSkipStack } from './stack.js';
import type { Tracer } from './trace.js';

export async function standardForward(stack: FarSkipStack, x: Tensor, positions: Tensor, tracer?: Tracer): Promise<Tensor> {
  const env: CommEnv = { schedule: 'reference', tracer };
  const run = <T>(name: string, fn: () => T): T => (tracer ? tracer.compute(name, fn) : fn());
  for (let k = 0; k < stack.blocks.length; k++) {
    const b = stack.blocks[k]!;
    const lenv: CommEnv = { ...env, scope: `layer${k}` };
    const eps = b.eps ?? stack.eps;
    const [B, T, H] = x.shape as [number, number, number];
    const aPartial = run(`layer${k}.attn`, () => b.attention.partB(b.attention.partA(rmsNorm(x, b.inputNorm, eps), positions, lenv)));
    const a = await allReduceTensor(aPartial, b.attention.reduceGroup, lenv, `layer${k}.attn.allReduce`).wait();
    const h = run(`layer${k}.residual.attn`, () => add(x, a));
    const u = run(`layer${k}.norm2`, () => rmsNorm(h, b.postAttentionNorm, eps).reshape(B * T, H));
    const moe = isMoE(b.mlp) ? b.mlp : null;
    const t = moe ? await (await (await moe.begin(u, lenv).dispatch()).experts()).finish() : null;
    const shared: MlpLike | null = moe ? moe.shared : (b.mlp as MlpLike);
    let next = h;
    if (shared) {
      const sPartial = run(`layer${k}.shared`, () => shared.forward(u, lenv).reshape(B, T, H));
      const s = await allReduceTensor(sPartial, shared.reduceGroup, lenv, `layer${k}.shared.allReduce`).wait();
      next = run(`layer${k}.residual.shared`, () => add(h, s));
    }
    x = t ? run(`layer${k}.residual.routed`, () => add(next, t.reshape(B, T, H))) : next;
  }
  return run('final.norm', () => rmsNorm(x, stack.finalNorm, stack.eps));
}
