// Checkpoints loaded onto a 2-rank mesh (threads backend, every rank in this one JS thread) against the same
// checkpoint on one rank: expert parallelism (each rank its own batch row, tokens exchanged by all-to-all),
// tensor parallelism (heads / shared experts split, same tokens), the all-reduce inference form (experts split
// over tp), and one training step's gradients on EP = 2.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createThreadsWorld } from '@farskip/collectives';
import { MoE, ParallelContext, Tracer } from '@farskip/layers';
import type { FarSkipOptions, MeshShape, MoEForm } from '@farskip/layers';
import { isGradEnabled, noGrad, Tensor } from '@farskip/tensor';
import { generate, loadModel } from '../src/index.js';
import type { CausalLM } from '../src/index.js';

const dir = (f: string): string => fileURLToPath(new URL(`./fixtures/golden/${f}`, import.meta.url));
const golden = (f: string): number[][] => (JSON.parse(readFileSync(`${dir(f)}/golden.json`, 'utf8')) as { input_ids: number[][] }).input_ids;
const ids = (rows: number[][]): Tensor => new Tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length], { dtype: 'i32' });

/** Every rank of a fresh 2-rank threads world; all contexts are created before any is used; worlds destroyed after. */
async function onMesh<R>(mesh: MeshShape, fn: (ctx: ParallelContext, rank: number) => Promise<R>): Promise<R[]> {
  const worlds = createThreadsWorld(2);
  try {
    const ctxs = worlds.map((w) => ParallelContext.create(w, mesh));
    return await Promise.all(ctxs.map((c, r) => fn(c, r)));
  } finally {
    for (const w of worlds) w.destroy();
  }
}

async function forward(m: CausalLM, rows: number[][], farskip?: FarSkipOptions | null): Promise<Float32Array> {
  const out = await m.forward(ids(rows), farskip === undefined ? {} : { farskip });
  return Float32Array.from(out.data as Float32Array);
}
const maxAbs = (a: Float32Array, b: Float32Array): number => {
  expect(a.length).toBe(b.length);
  return a.reduce((w, v, i) => Math.max(w, Math.abs(v - b[i]!)), 0);
};
const rowOf = (all: Float32Array, r: number, rows: number): Float32Array => all.slice((r * all.length) / rows, ((r + 1) * all.length) / rows);

const m0Layers = (f: string): number => (JSON.parse(readFileSync(`${dir(f)}/config.json`, 'utf8')) as { num_hidden_layers: number }).num_hidden_layers;
const moes = (m: CausalLM): MoE[] => m.stack.blocks.map((b) => b.mlp).filter((x): x is MoE => x instanceof MoE);

const EP_FAMILIES = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek_v2_lite', 'deepseek_v2_grouped', 'deepseek_v3', 'llama4'];

describe('expert parallelism, EP = 2: each rank its own batch row == that row of the 1-rank model', () => {
  for (const family of EP_FAMILIES) {
    it(family, async () => {
      const g = golden(family);
      const single = await noGrad(() => forward(loadModel(dir(family)), g));
      const res = await noGrad(() => onMesh({ ep: 2 }, async (ctx, r) => {
        const m = loadModel(dir(family), { ctx });
        // the experts really are split: half of each MoE layer's experts on this rank
        for (const moe of moes(m)) {
          expect(moe.localExperts * 2).toBe(moe.config.numExperts);
          expect(moe.firstExpert).toBe(ctx.epRank * moe.localExperts);
        }
        return { rank: ctx.epRank, logits: await forward(m, [g[r]!]) };
      }));
      for (const { rank, logits } of res) {
        expect(maxAbs(logits, rowOf(single, rank, 2)), `ep rank ${rank}`).toBeLessThan(1e-4);
      }
    });
  }

  it('deepseek_v3 converted to FarSkip, and the reference schedule (bit-identical to the overlapped one)', async () => {
    const family = 'deepseek_v3';
    const g = golden(family);
    const single = await noGrad(() => forward(loadModel(dir(family)), g, {}));
    const res = await noGrad(() => onMesh({ ep: 2 }, async (ctx, r) => {
      const m = loadModel(dir(family), { ctx });
      const overlapped = await forward(m, [g[r]!], {});
      const reference = Float32Array.from((await m.forward(ids([g[r]!]), { farskip: {}, schedule: 'reference' })).data as Float32Array);
      return { overlapped, reference };
    }));
    res.forEach(({ overlapped, reference }, r) => {
      expect(maxAbs(overlapped, rowOf(single, r, 2))).toBeLessThan(1e-4);
      expect(overlapped.every((v, i) => Object.is(v, reference[i]))).toBe(true);
    });
  });
});

describe('tensor parallelism, TP = 2 (same tokens on both ranks) and the all-reduce inference form', () => {
  const cases: [string, MoEForm, FarSkipOptions | null | undefined][] = [
    ['mixtral', 'all-to-all', undefined],
    ['qwen3_moe', 'all-to-all', undefined],
    ['qwen2_moe', 'all-to-all', undefined], // attention biases and the gated shared expert split over tp
    ['mixtral', 'all-reduce', undefined],
    ['qwen2_moe', 'all-reduce', undefined],
    ['qwen2_moe', 'all-reduce', {}], // FarSkip: the MoE reads the pre-attention stream, shared + attention partial sums
    ['llama4', 'all-reduce', { mode: 'full' }],
  ];
  for (const [family, form, farskip] of cases) {
    it(`${family}, form ${form}${farskip !== undefined ? `, farskip ${JSON.stringify(farskip)}` : ''}`, async () => {
      const g = golden(family);
      const single = await noGrad(() => forward(loadModel(dir(family)), g, farskip));
      const res = await noGrad(() => onMesh({ tp: 2 }, async (ctx) => {
        const m = loadModel(dir(family), { ctx, form });
        expect(m.form).toBe(form);
        for (const moe of moes(m)) expect(moe.localExperts * (form === 'all-reduce' ? 2 : 1)).toBe(moe.config.numExperts);
        const tracer = new Tracer(ctx.world.rank);
        const out = await m.forward(ids(g), { ...(farskip === undefined ? {} : { farskip }), tracer });
        return { logits: Float32Array.from(out.data as Float32Array), comms: tracer.spans.map((sp) => sp.name) };
      }));
      res.forEach(({ logits }, r) => expect(maxAbs(logits, single), `tp rank ${r}`).toBeLessThan(1e-4));
      // FarSkip in the all-reduce form: attention's and the shared experts' partial sums go in one all-reduce
      const fused = res[0]!.comms.filter((n) => n.includes('attn+shared.allReduce')).length;
      expect(fused).toBe(form === 'all-reduce' && farskip ? m0Layers(family) : 0);
    });
  }

  it('what a mesh cannot split is refused with the reason; a sharded model cannot be saved', async () => {
    await onMesh({ tp: 2 }, async (ctx) => {
      expect(() => loadModel(dir('deepseek_v2_lite'), { ctx })).toThrow(/MLA attention \(DeepSeek\) does not support tensor parallelism/);
      expect(() => loadModel(dir('olmoe'), { ctx })).toThrow(/qkNorm 'full' .* cannot be split by tensor parallelism/);
      expect(() => loadModel(dir('mixtral'), { ctx }).stateDict()).toThrow(/sharded over tp\/ep; use gatherStateDict\(\)/);
    });
  });
});

describe('gatherStateDict: a sharded model gathers back to the checkpoint', () => {
  // tp splits heads, columns and rows (dims 0 and 1); ep splits experts (per-expert names differ between ranks);
  // llama4's fused expert tensors are rebuilt from gathered experts
  const cases: [string, MeshShape][] = [['qwen2_moe', { tp: 2 }], ['mixtral', { ep: 2 }], ['llama4', { ep: 2 }], ['qwen3_moe', { tp: 2 }]];
  for (const [family, mesh] of cases) {
    it(`${family} on ${JSON.stringify(mesh)}: every rank gets stateDict() of the single-rank model, bit for bit`, async () => {
      const want = loadModel(dir(family)).stateDict();
      const got = await onMesh(mesh, async (ctx) => {
        const m = loadModel(dir(family), { ctx });
        expect(m.sharded).toBe(true);
        return m.gatherStateDict();
      });
      for (const sd of got) {
        expect([...sd.keys()].sort()).toEqual([...want.keys()].sort());
        for (const [k, t] of want) {
          expect(sd.get(k)!.shape, k).toEqual(t.shape);
          const a = sd.get(k)!.toArray() as number[], b = t.toArray() as number[];
          expect(a.every((v, i) => Object.is(v, b[i])), k).toBe(true);
        }
      }
    });
  }
});

describe('generation on a mesh (ranks in lockstep: same prompt lengths, no stop tokens)', () => {
  const cases: [string, MeshShape, MoEForm][] = [['llama4', { tp: 2 }, 'all-reduce'], ['deepseek_v3', { ep: 2 }, 'all-to-all']];
  for (const [family, mesh, form] of cases) {
    it(`${family} on ${JSON.stringify(mesh)} (${form}) == 1 rank`, async () => {
      const g = golden(family);
      const prompts = [g[0]!.slice(0, 3), g[1]!.slice(0, 3)];
      const single = await generate(loadModel(dir(family)), prompts, { maxNewTokens: 5, returnLogits: true });
      const tp = (mesh.tp ?? 1) > 1;
      const res = await onMesh(mesh, async (ctx, r) => {
        const mine = tp ? prompts : [prompts[r]!]; // tp: every rank the same prompts; ep: each rank its own
        return { mine: tp ? [0, 1] : [r], out: await generate(loadModel(dir(family), { ctx, form }), mine, { maxNewTokens: 5, returnLogits: true }) };
      });
      expect(isGradEnabled(), 'grad mode restored after the ranks\' interleaved generations').toBe(true);
      for (const { mine, out } of res) {
        mine.forEach((p, j) => {
          expect(out.tokens[j]).toEqual(single.tokens[p]);
          out.logits![j]!.forEach((row, i) => expect(maxAbs(row, single.logits![p]![i]!)).toBeLessThan(1e-4));
        });
      }
    });
  }
});

describe('training on EP = 2: gradients == the 1-rank full-batch gradients', () => {
  for (const family of ['mixtral', 'deepseek_v3', 'llama4']) {
    it(`${family}: loss = Σ logits · fixed random coefficients; non-expert grads summed over ranks, expert grads per shard`, async () => {
      const g = golden(family);
      const V = 64, T = g[0]!.length;
      const coeff = Tensor.randn([2, T, V], { seed: 1234 });
      const coeffRow = (r: number): Tensor => new Tensor(Float32Array.from(rowOf(coeff.data as Float32Array, r, 2)), [1, T, V]);

      const ref = loadModel(dir(family));
      await (await ref.forward(ids(g))).backward(coeff);
      const refGrads = new Map(ref.parameters().map(([n, t]) => [n, t.grad]));

      const ranks = await onMesh({ ep: 2 }, async (ctx, r) => {
        const m = loadModel(dir(family), { ctx });
        await (await m.forward(ids([g[r]!]))).backward(coeffRow(r));
        const experts = m.stack.expertParameters();
        return { e: ctx.epRank, params: m.parameters().map(([n, t]) => ({ n, grad: t.grad, expert: experts.has(t) })) };
      });

      const rel = (got: Float32Array, want: Float32Array): number => {
        const scale = want.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
        expect(scale, 'a gradient that is all zero compares nothing').toBeGreaterThan(0);
        return maxAbs(got, want) / scale;
      };
      let worst = 0, worstName = '', nonExpert = 0, expert = 0;
      const [a, b] = ranks as [typeof ranks[0], typeof ranks[0]];
      expect(a.params.map((p) => p.n)).toEqual([...refGrads.keys()]);
      a.params.forEach((pa, i) => {
        const pb = b.params[i]!;
        const want = refGrads.get(pa.n)!;
        expect(want, `${pa.n} has a 1-rank gradient`).not.toBeNull();
        expect(pa.grad && pb.grad, `${pa.n} has a gradient on both ranks`).toBeTruthy();
        let err: number;
        if (!pa.expert) {
          // a replicated weight: each rank's gradient covers its own tokens; their sum is the full-batch gradient
          nonExpert++;
          const sum = (pa.grad!.data as Float32Array).map((v, j) => v + (pb.grad!.data as Float32Array)[j]!);
          err = rel(sum, want.data as Float32Array);
        } else {
          // an expert shard: the all-to-all backward already brought every rank's tokens' contributions
          expert++;
          const E = want.shape[0]!;
          err = Math.max(...[pa, pb].map((p, r) => {
            const e = ranks[r]!.e;
            return rel(p.grad!.data as Float32Array, want.slice(0, (e * E) / 2, ((e + 1) * E) / 2).data as Float32Array);
          }));
        }
        if (err > worst) { worst = err; worstName = pa.n; }
      });
      expect(nonExpert).toBeGreaterThan(10);
      expect(expert).toBeGreaterThanOrEqual(3);
      // the attention weights are among the compared ones
      expect(a.params.some((p) => /layers\.0\.self_attn\.(q_proj|q_a_proj)\.weight$/.test(p.n) && !p.expert)).toBe(true);
      expect(worst, `worst relative gradient error at ${worstName}`).toBeLessThan(1e-4);
    });
  }
});
