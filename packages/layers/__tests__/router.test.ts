// Router (src/router.ts) against the independent float64 router of reference64.ts: expert choice (exact),
// weights and counts for every scoring / grouping variant; normalizeRows and route() gradients against central
// finite differences; constructor validation messages.
import { describe, expect, it } from 'vitest';
import { Tensor, gradcheck } from '@farskip/tensor';
import { Router, normalizeRows } from '@farskip/layers';
import type { RouterConfig } from '@farskip/layers';
import { router64, toF64 } from './reference64.js';

const H = 16, N = 24;

// f32 scores carry ~1e-7 relative error (logits are dot products of length 16, then exp / sigmoid, then one
// division when renormalised); measured <= 1.1e-7 · routedScaling, so 2e-6 · routedScaling leaves ~10x.
const WEIGHT_TOL = 2e-6;
// a choice the f32 scores could legitimately make differently must not be in the data
const MIN_MARGIN = 1e-5;

function inputs(E: number, seed: number, dtype: 'f32' | 'f64' = 'f32') {
  return {
    u: Tensor.randn([N, H], { seed, dtype }), // RMSNorm-scale activations
    gate: Tensor.randn([E, H], { seed: seed + 1, std: 1 / Math.sqrt(H), dtype }),
  };
}

const CASES: { name: string; config: RouterConfig; bias?: boolean }[] = [
  { name: 'softmax top-2 (Mixtral)', config: { numExperts: 8, topK: 2 } },
  { name: 'softmax top-4, renormalised (Qwen3-MoE / OLMoE)', config: { numExperts: 16, topK: 4, renormalize: true } },
  { name: 'softmax top-2, routedScaling 2 without renormalisation', config: { numExperts: 8, topK: 2, routedScaling: 2 } },
  { name: 'sigmoid top-2', config: { numExperts: 8, topK: 2, scoring: 'sigmoid' } },
  { name: 'sigmoid top-1 (Llama-4)', config: { numExperts: 8, topK: 1, scoring: 'sigmoid' } },
  {
    name: "DeepSeek-V2: softmax, group 'max', 2 of 4 groups, scaled",
    config: { numExperts: 16, topK: 4, numGroups: 4, topkGroups: 2, groupScore: 'max', routedScaling: 1.5 },
  },
  {
    name: "DeepSeek-V3: sigmoid, group 'top2sum' with correction bias, renormalised, scaled",
    config: { numExperts: 16, topK: 4, scoring: 'sigmoid', numGroups: 4, topkGroups: 2, groupScore: 'top2sum', renormalize: true, routedScaling: 2.5 },
    bias: true,
  },
];

function biasFor(E: number, seed: number): Tensor {
  return Tensor.randn([E], { seed: seed + 2, std: 0.1 });
}

describe('Router vs the float64 reference router', () => {
  it.each(CASES)('$name', ({ config, bias }) => {
    const E = config.numExperts, K = config.topK;
    for (const seed of [1, 2, 3]) {
      const { u, gate } = inputs(E, 10 * seed);
      const b = bias ? biasFor(E, 10 * seed) : undefined;
      const r = new Router(H, config, { gate, correctionBias: b }).route(u);
      const ref = router64(toF64(u), H, toF64(gate), config, b ? toF64(b) : undefined);
      expect(ref.margin).toBeGreaterThan(MIN_MARGIN);
      expect(Array.from(r.experts)).toEqual(Array.from(ref.experts));
      expect(Array.from(r.counts)).toEqual(Array.from(ref.counts));
      expect(r.counts.reduce((s, c) => s + c, 0)).toBe(N * K);
      expect(r.weights.shape).toEqual([N, K]);
      const w = r.weights.data as Float32Array;
      let err = 0;
      for (let i = 0; i < w.length; i++) err = Math.max(err, Math.abs(w[i]! - ref.weights[i]!));
      expect(err).toBeLessThan(WEIGHT_TOL * (config.routedScaling ?? 1));
      // sanity of the reference itself: distinct experts per token, inside at most topkGroups groups
      for (let n = 0; n < N; n++) {
        const chosen = Array.from(ref.experts.subarray(n * K, (n + 1) * K));
        expect(new Set(chosen).size).toBe(K);
        if (config.numGroups) {
          const per = E / config.numGroups;
          expect(new Set(chosen.map((e) => Math.floor(e / per))).size).toBeLessThanOrEqual(config.topkGroups!);
        }
        if (config.renormalize) {
          const s = ref.weights.subarray(n * K, (n + 1) * K).reduce((a, v) => a + v, 0);
          expect(s).toBeCloseTo(config.routedScaling ?? 1, 12);
        }
      }
    }
  });

  it('the correction bias changes the choice only: weights are the unbiased scores of the chosen experts', () => {
    const E = 8, config: RouterConfig = { numExperts: E, topK: 2, scoring: 'sigmoid' };
    const { u, gate } = inputs(E, 40);
    const bias = Tensor.fromArray([0, 0, 0, 0, 0, 10, 12, 0], [E]); // forces experts 6, then 5
    const r = new Router(H, config, { gate, correctionBias: bias }).route(u);
    const logits = toF64(u), g = toF64(gate);
    for (let n = 0; n < N; n++) {
      expect(Array.from(r.experts.subarray(2 * n, 2 * n + 2))).toEqual([6, 5]);
      for (const [j, e] of [6, 5].entries()) {
        let z = 0;
        for (let i = 0; i < H; i++) z += logits[n * H + i]! * g[e * H + i]!;
        expect(Math.abs((r.weights.data as Float32Array)[2 * n + j]! - 1 / (1 + Math.exp(-z)))).toBeLessThan(WEIGHT_TOL);
      }
    }
    expect(Array.from(r.counts)).toEqual([0, 0, 0, 0, 0, N, N, 0]);
  });

  it("group score 'max' and 'top2sum' pick different groups when a group has one strong and one weak expert", () => {
    // groups of 2: {0,1} {2,3} {4,5} {6,7}; choice = sigmoid score (0..1) + bias
    //   max:     group 0 ~ 9.x beats group 1 ~ 6.x           -> experts {0, 1}
    //   top2sum: group 0 ~ 9.x + 0.x loses to group 1 ~ 12.x -> experts {2, 3}
    const E = 8, bias = Tensor.fromArray([9, 0, 6, 6, 0, 0, 0, 0], [E]);
    const { u, gate } = inputs(E, 50);
    const base: RouterConfig = { numExperts: E, topK: 2, scoring: 'sigmoid', numGroups: 4, topkGroups: 1 };
    for (const [groupScore, expected] of [['max', [0, 1]], ['top2sum', [2, 3]]] as const) {
      const config = { ...base, groupScore };
      const r = new Router(H, config, { gate, correctionBias: bias }).route(u);
      const ref = router64(toF64(u), H, toF64(gate), config, toF64(bias));
      expect(Array.from(r.experts)).toEqual(Array.from(ref.experts));
      for (let n = 0; n < N; n++) expect([...r.experts.subarray(2 * n, 2 * n + 2)].sort()).toEqual(expected);
    }
  });
});

/** y = w / (Σ_row w + 1e-20), plain f64 */
function normalize64(w: Float64Array, k: number): Float64Array {
  const y = new Float64Array(w.length);
  for (let r = 0; r < w.length / k; r++) {
    let s = 1e-20;
    for (let j = 0; j < k; j++) s += w[r * k + j]!;
    for (let j = 0; j < k; j++) y[r * k + j] = w[r * k + j]! / s;
  }
  return y;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

describe('gradients', () => {
  it('normalizeRows backward (f64) passes gradcheck and keeps the dtype', async () => {
    const w = Tensor.rand([5, 3], { dtype: 'f64', seed: 3, low: 0.05, high: 1 }).requiresGrad_();
    expect(normalizeRows(w).dtype).toBe('f64');
    const res = await gradcheck((x) => normalizeRows(x), [w], { atol: 1e-8, rtol: 1e-6 });
    expect(res.message).toBe('ok');
    expect(res.ok).toBe(true);
    // bf16 goes through f32 and comes back as bf16 (rows sum to 1 within bf16's 2^-8 relative precision)
    const yb = normalizeRows(Tensor.rand([5, 3], { seed: 3, low: 0.05, high: 1 }).to('bf16'));
    expect(yb.dtype).toBe('bf16');
    const v = yb.toArray();
    for (let r = 0; r < 5; r++) expect(Math.abs(v[3 * r]! + v[3 * r + 1]! + v[3 * r + 2]! - 1)).toBeLessThan(3 * 2 ** -8);
  });

  it('normalizeRows f32 forward and backward match float64 central differences', async () => {
    const rows = 6, k = 4;
    const w = Tensor.rand([rows, k], { seed: 4, low: 0.05, high: 1 }).requiresGrad_();
    const coeff = Tensor.randn([rows, k], { seed: 5 });
    const y = normalizeRows(w);
    const w64 = toF64(w), c64 = toF64(coeff);
    const yRef = normalize64(w64, k);
    (y.data as Float32Array).forEach((v, i) => expect(Math.abs(v - yRef[i]!)).toBeLessThan(1e-6));
    await y.backward(coeff);
    const grad = w.grad!.data as Float32Array;
    const h = 1e-6;
    for (let i = 0; i < w64.length; i++) {
      const p = w64.slice(), m = w64.slice();
      p[i]! += h; m[i]! -= h;
      const numeric = (dot(normalize64(p, k), c64) - dot(normalize64(m, k), c64)) / (2 * h);
      expect(Math.abs(grad[i]! - numeric)).toBeLessThan(1e-5 + 1e-5 * Math.abs(numeric));
    }
  });

  const gradCases = [CASES[1]!, CASES[3]!, CASES[5]!, CASES[6]!];

  it.each(gradCases)('route() in f64 passes gradcheck w.r.t. the gate and the input: $name', async ({ config, bias }) => {
    const E = config.numExperts;
    const { u, gate } = inputs(E, 60, 'f64');
    const b = bias ? biasFor(E, 60) : undefined;
    // choices far from ties, so ±eps perturbations cannot flip them
    expect(router64(toF64(u), H, toF64(gate), config, b ? toF64(b) : undefined).margin).toBeGreaterThan(1e-4);
    const router = new Router(H, config, { gate, correctionBias: b });
    const uLeaf = u.requiresGrad_();
    // the router's own trainable gate (a copy of `gate`) is the differentiated input: gradcheck perturbs it in place
    const res = await gradcheck((x, _w) => router.route(x).weights, [uLeaf, router.weight], { atol: 1e-7, rtol: 1e-5 });
    expect(res.message).toBe('ok');
    expect(router.weight.grad!.dtype).toBe('f64');
  });

  it.each(gradCases)('route() f32 gradient of Σ c·weights matches central differences of the f64 reference: $name', async ({ config, bias }) => {
    const E = config.numExperts;
    const { u, gate } = inputs(E, 70);
    const b = bias ? biasFor(E, 70) : undefined;
    const b64 = b ? toF64(b) : undefined;
    const router = new Router(H, config, { gate, correctionBias: b });
    const x = u.detach().clone().requiresGrad_();
    const routing = router.route(x);
    const coeff = Tensor.randn([N, config.topK], { seed: 71 });
    await routing.weights.backward(coeff);
    const c64 = toF64(coeff), u64 = toF64(u), g64 = toF64(gate);
    expect(router64(u64, H, g64, config, b64).margin).toBeGreaterThan(1e-4);
    const loss = (uu: Float64Array, gg: Float64Array): number => dot(router64(uu, H, gg, config, b64).weights, c64);
    const h = 1e-6;
    const check = (analytic: Float32Array, param: Float64Array, f: (p: Float64Array) => number): void => {
      let worst = 0;
      for (let i = 0; i < param.length; i++) {
        const p = param.slice(), m = param.slice();
        p[i]! += h; m[i]! -= h;
        const numeric = (f(p) - f(m)) / (2 * h);
        // f32 backward: measured <= 3e-7 of the largest entry (native and plain-TS kernels); 5e-6 leaves ~15x
        worst = Math.max(worst, Math.abs(analytic[i]! - numeric));
      }
      expect(worst).toBeLessThan(5e-6 * Math.max(1, ...Array.from(analytic, Math.abs)));
    };
    check(router.weight.grad!.data as Float32Array, g64, (gg) => loss(u64, gg));
    check(x.grad!.data as Float32Array, u64, (uu) => loss(uu, g64));
  });
});

describe('Router validation', () => {
  const gate = Tensor.zeros([8, H]);
  const make = (config: Partial<RouterConfig>, g: Tensor = gate, bias?: Tensor) =>
    () => new Router(H, { numExperts: 8, topK: 2, ...config }, { gate: g, correctionBias: bias });

  it('rejects topK outside [1, numExperts]', () => {
    for (const topK of [0, 9, 1.5, -1]) expect(make({ topK })).toThrow(`Router: topK ${topK} must be in [1, numExperts = 8]`);
  });

  it('rejects numGroups that do not divide numExperts', () => {
    expect(make({ numGroups: 3 })).toThrow('Router: numExperts 8 is not divisible by numGroups 3');
  });

  it('rejects topkGroups outside [1, numGroups] or leaving fewer than topK experts eligible', () => {
    expect(make({ numGroups: 4, topkGroups: 0 })).toThrow('Router: topkGroups 0 must be in [1, 4] and leave at least topK = 2 experts eligible');
    expect(make({ numGroups: 4, topkGroups: 5 })).toThrow('Router: topkGroups 5 must be in [1, 4]');
    expect(make({ numGroups: 4, topkGroups: 1, topK: 3 })).toThrow('Router: topkGroups 1 must be in [1, 4] and leave at least topK = 3 experts eligible');
    expect(make({ numGroups: 4, topkGroups: 1, topK: 2 })).not.toThrow();
  });

  it('rejects a gate or correction bias of the wrong shape, naming the weight and both shapes', () => {
    expect(make({}, Tensor.zeros([8, H + 1]))).toThrow(`weight 'router.gate' has shape [8, ${H + 1}], expected [8, ${H}]`);
    expect(make({}, Tensor.zeros([H, 8]))).toThrow(`weight 'router.gate' has shape [${H}, 8], expected [8, ${H}]`);
    expect(make({}, gate, Tensor.zeros([7]))).toThrow("weight 'router.correctionBias' has shape [7], expected [8]");
  });
});
