// FarSkip connectivity (DESIGN §2) of the f32 FarSkipStack held to the independent float64 reference in
// reference64.ts, for every FarSkipOptions variant; bit-exactness of mode 'original' against standardForward and
// of the 'reference' vs 'overlapped' schedules; layerPlan's plans and its validation errors.
import { describe, expect, it } from 'vitest';
import { Tensor } from '@farskip/tensor';
import { ParallelContext, buildStack, layerPlan, randomStackWeights, standardForward } from '@farskip/layers';
import type { FarSkipMode, FarSkipOptions, LayerConnectivity, StackConfig, StackWeights } from '@farskip/layers';
import { referenceStack64, stackTo64 } from './reference64.js';

const B = 2, T = 6, H = 32;
const base: StackConfig = {
  layers: 4, hidden: H, heads: 4, kvHeads: 2, ropeTheta: 10000, denseLayers: 1, denseHidden: 40,
  moe: { numExperts: 8, topK: 2, expertHidden: 16, sharedHidden: 24 },
};
const noShared: StackConfig = { ...base, moe: { numExperts: 8, topK: 2, expertHidden: 16 } };
const noDense: StackConfig = { ...base, denseLayers: 0 };

// explicit plans (not from layerPlan) for the reference: [converted, attnReadsRoutedFree, mlpReadsPreAttention]
const L = (converted: boolean, attn: boolean, mlp: boolean): LayerConnectivity =>
  ({ converted, attnReadsRoutedFree: attn, mlpReadsPreAttention: mlp });
const FULL = L(true, true, true), ATTN = L(true, true, false), MLP = L(true, false, true), NONE = L(false, false, false);
const OPTIONS: { name: string; options: FarSkipOptions | null; plan: LayerConnectivity[] }[] = [
  { name: 'full (default {})', options: {}, plan: [FULL, FULL, FULL, FULL] },
  { name: "mode 'attn-only'", options: { mode: 'attn-only' }, plan: [ATTN, ATTN, ATTN, ATTN] },
  { name: "mode 'mlp-only'", options: { mode: 'mlp-only' }, plan: [MLP, MLP, MLP, MLP] },
  { name: "mode 'original'", options: { mode: 'original' }, plan: [NONE, NONE, NONE, NONE] },
  { name: 'null (original model)', options: null, plan: [NONE, NONE, NONE, NONE] },
  { name: 'layers [1, 3]', options: { layers: [1, 3] }, plan: [NONE, FULL, FULL, NONE] },
  { name: 'lastFraction 0.5', options: { lastFraction: 0.5 }, plan: [NONE, NONE, FULL, FULL] },
];

// f32 vs f64: every op rounds at ~6e-8 relative; through 4 layers, dot products of length <= 48 and the final
// RMSNorm the measured error is 2.5e-7..5.5e-7 of max|ref| (native AVX-512 and plain-TS kernels alike), so
// 5e-6 · max|ref| (+1e-6 absolute floor) leaves ~10x headroom, while a wiring error shows up at O(0.1..1).
const REL_TOL = 5e-6, ABS_TOL = 1e-6;
// the f32 hidden states (hence router scores) carry ~1e-6 relative error: a routing decision closer than this
// could legitimately flip between f32 and f64, so the data must keep every decision at least this clear
const MIN_ROUTER_MARGIN = 1e-5;

function positions(): Tensor {
  return new Tensor(Int32Array.from({ length: T }, (_, t) => t + 3), [T], { dtype: 'i32' }); // not 0-based: RoPE reads them
}

function input(seed = 11): Tensor {
  return Tensor.randn([B, T, H], { seed });
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function expectBitEqual(a: Tensor, b: Tensor): void {
  expect(a.shape).toEqual(b.shape);
  const x = a.data as Float32Array, y = b.data as Float32Array;
  let mismatches = 0;
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) mismatches++;
  expect(mismatches).toBe(0);
}

function reference(config: StackConfig, weights: StackWeights, x: Tensor, plan: LayerConnectivity[]) {
  return referenceStack64(config, stackTo64(weights), Float64Array.from(x.data as Float32Array), B, T,
    positions().data as Int32Array, plan);
}

/** Runs the f32 stack and asserts it matches the f64 reference; returns the reference output. */
async function expectMatchesReference(config: StackConfig, weights: StackWeights, options: FarSkipOptions | null,
  plan: LayerConnectivity[], form: 'all-to-all' | 'all-reduce' = 'all-to-all'): Promise<Float64Array> {
  const x = input();
  const stack = buildStack(config, weights, ParallelContext.single(), form);
  const out = await stack.forward(x, positions(), { farskip: options, schedule: 'reference', form });
  const ref = reference(config, weights, x, plan);
  // a routing near-tie would let f32 legitimately choose another expert than f64: the data must avoid it
  expect(ref.routerMargin).toBeGreaterThan(MIN_ROUTER_MARGIN);
  const tol = REL_TOL * maxAbs(ref.out) + ABS_TOL;
  expect(maxAbsDiff(out.data as Float32Array, ref.out)).toBeLessThan(tol);
  return ref.out;
}

describe('layerPlan', () => {
  it.each(OPTIONS)('$name gives the expected per-layer connectivity', ({ options, plan }) => {
    expect(layerPlan(4, options)).toEqual(plan);
  });

  it('rounds lastFraction up to whole layers and accepts empty ranges', () => {
    expect(layerPlan(4, { lastFraction: 0.6 })).toEqual([NONE, FULL, FULL, FULL]); // ceil(2.4) = 3 layers
    expect(layerPlan(4, { lastFraction: 1 })).toEqual([FULL, FULL, FULL, FULL]);
    expect(layerPlan(4, { layers: [2, 2] })).toEqual([NONE, NONE, NONE, NONE]);
    expect(layerPlan(4, { mode: 'attn-only', layers: [0, 1] })).toEqual([ATTN, NONE, NONE, NONE]);
    expect(layerPlan(0)).toEqual([]);
  });

  it('rejects a bad mode, layers out of range, both layers and lastFraction, lastFraction outside (0, 1]', () => {
    expect(() => layerPlan(4, { mode: 'bogus' as FarSkipMode })).toThrow("FarSkip mode 'bogus' is not one of full, attn-only, mlp-only, original");
    for (const layers of [[0, 5], [-1, 2], [3, 2], [0.5, 2]] as [number, number][]) {
      expect(() => layerPlan(4, { layers })).toThrow(`FarSkip layers [${layers[0]}, ${layers[1]}) must satisfy 0 <= start <= end <= 4`);
    }
    expect(() => layerPlan(4, { layers: [0, 2], lastFraction: 0.5 }))
      .toThrow('FarSkip options: give either layers [start, end) or lastFraction, not both');
    for (const f of [0, -0.25, 1.5, Number.NaN]) {
      expect(() => layerPlan(4, { lastFraction: f })).toThrow(`FarSkip lastFraction ${f} must be in (0, 1]`);
    }
    expect(() => layerPlan(-1)).toThrow('layerPlan: numLayers -1 must be a non-negative integer');
    expect(() => layerPlan(2.5)).toThrow('layerPlan: numLayers 2.5 must be a non-negative integer');
  });

  it('FarSkipStack.forward rejects bad options with the same message', async () => {
    const stack = buildStack(base, randomStackWeights(base, 3), ParallelContext.single());
    await expect(stack.forward(input(), positions(), { farskip: { mode: 'bogus' as FarSkipMode } })).rejects.toThrow("FarSkip mode 'bogus'");
    await expect(stack.forward(input(), positions(), { farskip: { layers: [0, 9] } })).rejects.toThrow('0 <= start <= end <= 4');
  });
});

describe('FarSkipStack matches the float64 reference of DESIGN §2', () => {
  const cases: [string, StackConfig][] = [['dense first layer + shared experts', base], ['no shared experts', noShared], ['no dense layers', noDense]];
  for (const [cname, config] of cases) {
    const weights = randomStackWeights(config, 5);
    it.each(OPTIONS)(`${cname}: $name`, async ({ options, plan }) => {
      await expectMatchesReference(config, weights, options, plan);
    });
  }

  it('every plan computes a different function, far beyond the tolerance (the comparison can tell them apart)', () => {
    for (const config of [base, noDense]) {
      const weights = randomStackWeights(config, 5);
      const x = input();
      const plans = OPTIONS.filter((o) => o.options !== null).map((o) => ({ name: o.name, out: reference(config, weights, x, o.plan).out }));
      for (let i = 0; i < plans.length; i++) {
        for (let j = i + 1; j < plans.length; j++) {
          const d = maxAbsDiff(plans[i]!.out, plans[j]!.out);
          const tol = REL_TOL * maxAbs(plans[i]!.out) + ABS_TOL;
          expect(d, `${plans[i]!.name} vs ${plans[j]!.name}`).toBeGreaterThan(1000 * tol);
        }
      }
    }
  });

  it("the f32 'full' output is far from the original model's reference (negative check)", async () => {
    const weights = randomStackWeights(base, 5);
    const x = input();
    const out = await buildStack(base, weights, ParallelContext.single()).forward(x, positions(), { farskip: {} });
    const original = reference(base, weights, x, [NONE, NONE, NONE, NONE]).out;
    const tol = REL_TOL * maxAbs(original) + ABS_TOL;
    expect(maxAbsDiff(out.data as Float32Array, original)).toBeGreaterThan(1000 * tol);
  });

  it('after an unconverted MoE layer, x~ is the full stream (not x − t of that layer)', async () => {
    // the mis-wiring "x~ = x − t_prev even after an unconverted layer" is the reference with layer 0 marked
    // converted but computing the original function
    const weights = randomStackWeights(noDense, 5);
    const x = input();
    const out = await buildStack(noDense, weights, ParallelContext.single()).forward(x, positions(), { farskip: { layers: [1, 3] } });
    const wrong = reference(noDense, weights, x, [L(true, false, false), FULL, FULL, NONE]).out;
    expect(maxAbsDiff(out.data as Float32Array, wrong)).toBeGreaterThan(1000 * (REL_TOL * maxAbs(wrong) + ABS_TOL));
  });

  it('DeepSeek-V3 routing (sigmoid, group top-2 sum, correction bias, renormalised, scaled)', async () => {
    const config: StackConfig = {
      ...noDense,
      moe: { numExperts: 8, topK: 2, expertHidden: 16, sharedHidden: 24, scoring: 'sigmoid', numGroups: 4, topkGroups: 2, groupScore: 'top2sum', renormalize: true, routedScaling: 2.5 },
    };
    const weights = randomStackWeights(config, 6);
    weights.blocks.forEach((b, k) => { b.moe!.router.correctionBias = Tensor.randn([8], { seed: 100 + k, std: 0.2 }); });
    for (const o of [OPTIONS[0]!, OPTIONS[3]!]) await expectMatchesReference(config, weights, o.options, o.plan);
  });

  it('DeepSeek-V2 routing (softmax, group max, scaled) and Llama-4 (sigmoid top-1, weight on the expert input)', async () => {
    const v2: StackConfig = { ...base, moe: { numExperts: 8, topK: 2, expertHidden: 16, sharedHidden: 24, numGroups: 4, topkGroups: 2, routedScaling: 1.5 } };
    await expectMatchesReference(v2, randomStackWeights(v2, 7), {}, OPTIONS[0]!.plan);
    const llama4: StackConfig = { ...noDense, moe: { numExperts: 8, topK: 1, expertHidden: 16, sharedHidden: 24, scoring: 'sigmoid', weightOn: 'input' } };
    const w = randomStackWeights(llama4, 8);
    for (const o of OPTIONS.slice(0, 4)) await expectMatchesReference(llama4, w, o.options, o.plan);
  });

  it('Qwen2-MoE shared-expert output gate, renormalised softmax top-2', async () => {
    const config: StackConfig = { ...noDense, moe: { numExperts: 8, topK: 2, expertHidden: 16, sharedHidden: 24, renormalize: true } };
    const weights = randomStackWeights(config, 9);
    weights.blocks.forEach((b, k) => { b.moe!.shared!.outputGate = Tensor.randn([1, H], { seed: 200 + k, std: 0.3 }); });
    for (const o of [OPTIONS[0]!, OPTIONS[2]!]) await expectMatchesReference(config, weights, o.options, o.plan);
  });

  it("the all-reduce form (inference: attention and shared partial sums fused) matches too", async () => {
    const weights = randomStackWeights(base, 5);
    for (const o of OPTIONS) await expectMatchesReference(base, weights, o.options, o.plan, 'all-reduce');
  });
});

describe('bit-exactness', () => {
  it.each([['with dense layer', base], ['no dense layers', noDense], ['no shared experts', noShared]] as [string, StackConfig][])(
    "mode 'original' and null equal standardForward bit for bit (%s)", async (_name, config) => {
      const stack = buildStack(config, randomStackWeights(config, 5), ParallelContext.single());
      const x = input();
      const standard = await standardForward(stack, x, positions());
      for (const schedule of ['reference', 'overlapped'] as const) {
        expectBitEqual(await stack.forward(x, positions(), { farskip: { mode: 'original' }, schedule }), standard);
        expectBitEqual(await stack.forward(x, positions(), { farskip: null, schedule }), standard);
      }
    });

  it.each(OPTIONS)("'reference' and 'overlapped' schedules are bit-identical: $name", async ({ options }) => {
    for (const config of [base, noDense]) {
      const stack = buildStack(config, randomStackWeights(config, 5), ParallelContext.single());
      const x = input();
      const ref = await stack.forward(x, positions(), { farskip: options, schedule: 'reference' });
      const ovl = await stack.forward(x, positions(), { farskip: options, schedule: 'overlapped' });
      expectBitEqual(ovl, ref);
    }
  });
});
