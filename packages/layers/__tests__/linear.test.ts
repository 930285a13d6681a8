// Column- and row-parallel linear layers on 1, 2 and 4 threads-backend ranks against plain float64 matrix
// products: forward, the gathered output, and the weight/input gradients of each rank's shard.
import { describe, expect, it } from 'vitest';
import { createThreadsWorld } from '@farskip/collectives';
import { Tensor } from '@farskip/tensor';
import { mul, sum } from '@farskip/kernels';
import { ColumnParallelLinear, RowParallelLinear, solo } from '../src/index.js';

const N = 3, IN = 8, MID = 12, OUT = 4;
const x = Tensor.randn([N, IN], { seed: 1 });
const w1 = Tensor.randn([MID, IN], { seed: 2 });
const w2 = Tensor.randn([OUT, MID], { seed: 3 });
const coef = Tensor.randn([N, OUT], { seed: 4 });

/** float64: y = (x w1ᵀ) w2ᵀ, L = Σ coef ⊙ y; dL/dw1, dL/dw2, dL/dx. */
function reference64() {
  const X = Float64Array.from(x.data as Float32Array), A = Float64Array.from(w1.data as Float32Array), Bm = Float64Array.from(w2.data as Float32Array);
  const C = Float64Array.from(coef.data as Float32Array);
  const h = new Float64Array(N * MID), y = new Float64Array(N * OUT);
  for (let n = 0; n < N; n++) for (let m = 0; m < MID; m++) { let s = 0; for (let i = 0; i < IN; i++) s += X[n * IN + i]! * A[m * IN + i]!; h[n * MID + m] = s; }
  for (let n = 0; n < N; n++) for (let o = 0; o < OUT; o++) { let s = 0; for (let m = 0; m < MID; m++) s += h[n * MID + m]! * Bm[o * MID + m]!; y[n * OUT + o] = s; }
  const gh = new Float64Array(N * MID), gw2 = new Float64Array(OUT * MID), gw1 = new Float64Array(MID * IN), gx = new Float64Array(N * IN);
  for (let n = 0; n < N; n++) for (let o = 0; o < OUT; o++) for (let m = 0; m < MID; m++) { gh[n * MID + m]! += C[n * OUT + o]! * Bm[o * MID + m]!; gw2[o * MID + m]! += C[n * OUT + o]! * h[n * MID + m]!; }
  for (let n = 0; n < N; n++) for (let m = 0; m < MID; m++) for (let i = 0; i < IN; i++) { gw1[m * IN + i]! += gh[n * MID + m]! * X[n * IN + i]!; gx[n * IN + i]! += gh[n * MID + m]! * A[m * IN + i]!; }
  return { h, y, gw1, gw2, gx };
}

const close = (got: ArrayLike<number>, want: ArrayLike<number>): void => {
  expect(got.length).toBe(want.length);
  let scale = 1e-6;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-5 * scale);
};

describe('ColumnParallelLinear -> RowParallelLinear (Megatron MLP split) == one matrix chain', () => {
  const ref = reference64();
  for (const P of [1, 2, 4]) {
    it(`${P} rank(s): output, gathered column output, and every shard's gradients`, async () => {
      const worlds = P === 1 ? [solo()] : createThreadsWorld(P);
      try {
        await Promise.all(worlds.map(async (g) => {
          const env = { schedule: 'overlapped' as const };
          const col = new ColumnParallelLinear(w1, g);
          const row = new RowParallelLinear(w2, g);
          const xin = x.detach().clone().requiresGrad_();
          const h = await col.forward(xin, env);
          expect(h.shape).toEqual([N, MID / P]);
          const y = await row.forward(h, env).wait();
          close(y.data as Float32Array, ref.y);
          await sum(mul(y, coef)).backward();
          const m0 = (g.rank * MID) / P, m1 = ((g.rank + 1) * MID) / P;
          close(col.weight.grad!.data as Float32Array, ref.gw1.slice(m0 * IN, m1 * IN));
          const gw2 = new Float64Array(OUT * (m1 - m0));
          for (let o = 0; o < OUT; o++) gw2.set(ref.gw2.subarray(o * MID + m0, o * MID + m1), o * (m1 - m0));
          close(row.weight.grad!.data as Float32Array, gw2);
          close(xin.grad!.data as Float32Array, ref.gx); // summed over the group by copyToGroup's backward
          const gathered = await new ColumnParallelLinear(w1, g, true).forward(x, env);
          close(gathered.data as Float32Array, ref.h);
        }));
      } finally {
        for (const w of worlds) w.destroy();
      }
    });
  }

  it('rejects a size the group cannot split', () => {
    expect(() => new ColumnParallelLinear(Tensor.randn([5, 4]), { ...solo(), size: 2, rank: 0 } as never)).toThrow(/cannot be split evenly across 2 ranks/);
  });
});
