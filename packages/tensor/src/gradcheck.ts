// Finite-difference gradient checking in float64 (torch.autograd.gradcheck). The function must be
// deterministic; inputs must be f64 tensors with requiresGrad. The output is reduced with a fixed random
// projection r, so the check compares J^T r (backward) with central differences of <f(x), r>.
import { noGrad } from './autograd.js';
import { Random } from './random.js';
import { Tensor } from './tensor.js';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
}

export interface GradcheckResult {
  ok: boolean;
  maxAbsError: number;
  /** Human-readable description of the worst mismatch (or 'ok'). */
  message: string;
}

type Fn = (...inputs: Tensor[]) => Tensor | Promise<Tensor>;

function dot(a: Tensor, r: Float64Array): number {
  const d = a.data as Float64Array;
  let s = 0;
  for (let i = 0; i < d.length; i++) s += d[i]! * r[i]!;
  return s;
}

export async function gradcheck(fn: Fn, inputs: Tensor[], options: GradcheckOptions = {}): Promise<GradcheckResult> {
  const eps = options.eps ?? 1e-6, atol = options.atol ?? 1e-5, rtol = options.rtol ?? 1e-3;
  inputs.forEach((t, i) => {
    if (t.requiresGrad && t.dtype !== 'f64') throw new Error(`gradcheck: input ${i} is ${t.dtype}; differentiable inputs must be f64 (use .to('f64'))`);
  });
  const out = await fn(...inputs);
  if (out.dtype !== 'f64') throw new Error(`gradcheck: the function returned ${out.dtype}; it must compute in f64`);
  const rng = new Random(options.seed ?? 1234);
  const r = new Float64Array(out.numel).map(() => rng.normal());
  for (const t of inputs) t.grad = null;
  await out.backward(new Tensor(r.slice(), out.shape, { dtype: 'f64' }));

  let maxAbs = 0;
  let failure: { err: number; msg: string } | null = null;
  for (let k = 0; k < inputs.length; k++) {
    const x = inputs[k]!;
    if (!x.requiresGrad) continue;
    const data = x.data as Float64Array;
    const analytic = x.grad ? (x.grad.data as Float64Array) : new Float64Array(x.numel);
    for (let i = 0; i < data.length; i++) {
      const orig = data[i]!;
      data[i] = orig + eps;
      const fp = dot(await noGrad(() => fn(...inputs)), r);
      data[i] = orig - eps;
      const fm = dot(await noGrad(() => fn(...inputs)), r);
      data[i] = orig;
      const numeric = (fp - fm) / (2 * eps);
      const err = Math.abs(numeric - analytic[i]!);
      const bad = err > atol + rtol * Math.abs(numeric);
      maxAbs = Math.max(maxAbs, err);
      if (bad && (!failure || err > failure.err)) {
        failure = { err, msg: `input ${k} element ${i}: analytic ${analytic[i]} vs numeric ${numeric} (|diff| ${err.toExponential(3)})` };
      }
    }
  }
  return { ok: failure === null, maxAbsError: maxAbs, message: failure?.msg ?? 'ok' };
}
