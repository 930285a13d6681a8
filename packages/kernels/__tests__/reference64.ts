// Independent float64 reference maths for the op tests (ops-*.test.ts), written from the textbook
// definitions on plain arrays. Deliberately imports NOTHING from packages/kernels/src (nor @farskip/kernels):
// it must not share code with the implementation under test. Also holds the tests' seeded PRNG, a bf16
// rounding helper (own implementation), a closeness assertion, and a small harness over @farskip/tensor
// (tensor construction, gradcheck wrapper, gradients of a function) that never calls a kernel itself.
import { type DType, Tensor, gradcheck } from '@farskip/tensor';

export type Arr = ArrayLike<number>;

// ---------------------------------------------------------------------------------------------------------
// Seeded randomness (mulberry32 + Box–Muller) so failures reproduce.
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed * 2654435761) >>> 0; }
  uniform(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    let u = this.uniform();
    while (u === 0) u = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
  int(lo: number, hi: number): number { return lo + Math.floor(this.uniform() * (hi - lo)); }
  randn(n: number, scale = 1): Float64Array {
    const o = new Float64Array(n);
    for (let i = 0; i < n; i++) o[i] = this.normal() * scale;
    return o;
  }
  ints(n: number, lo: number, hi: number): number[] {
    return Array.from({ length: n }, () => this.int(lo, hi));
  }
}

export const prod = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Rounds to f32 then to bf16 with round-to-nearest-even (finite inputs). */
export function roundBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const bits = u[0]!;
  const lower = bits & 0xffff;
  let upper = bits >>> 16;
  if (lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1)) upper += 1;
  u[0] = (upper << 16) >>> 0;
  return f[0]!;
}
export const roundAllBf16 = (a: Arr): Float64Array => Float64Array.from(a, roundBf16);
export const roundAllF32 = (a: Arr): Float64Array => Float64Array.from(a, Math.fround);

export interface Tol { atol: number; rtol: number }

/** Throws unless |got - want| <= atol + rtol*|want| everywhere; the message names the worst element. */
export function assertClose(got: Arr, want: Arr, tol: Tol, label: string): void {
  if (got.length !== want.length) throw new Error(`${label}: length ${got.length} vs expected ${want.length}`);
  let worst = -1, worstExcess = 0, maxErr = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    const err = Math.abs(g - w);
    if (!Number.isFinite(g) || !(err <= tol.atol + tol.rtol * Math.abs(w))) {
      const excess = Number.isFinite(err) ? err / (tol.atol + tol.rtol * Math.abs(w)) : Infinity;
      if (worst < 0 || excess > worstExcess) { worst = i; worstExcess = excess; }
    }
    if (err > maxErr) maxErr = err;
  }
  if (worst >= 0) {
    throw new Error(`${label}: element ${worst} got ${got[worst]} expected ${want[worst]} ` +
      `(atol ${tol.atol}, rtol ${tol.rtol}; max |err| ${maxErr.toExponential(3)}, n=${want.length})`);
  }
}

export const maxAbs = (a: Arr): number => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!)); return m; };

// ---------------------------------------------------------------------------------------------------------
// GEMM family.

/** op(A)[M,K] @ op(B)[K,N]; A stored [M,K] (or [K,M] when transA), B stored [K,N] (or [N,K] when transB). */
export function matmulRef(a: Arr, b: Arr, M: number, K: number, N: number, transA = false, transB = false): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const av = transA ? a[k * M + i]! : a[i * K + k]!;
        const bv = transB ? b[j * K + k]! : b[k * N + j]!;
        s += av * bv;
      }
      c[i * N + j] = s;
    }
  }
  return c;
}

/** Batched: a [batch, ...], b [batch, ...] stored as above per batch. */
export function bmmRef(a: Arr, b: Arr, batch: number, M: number, K: number, N: number, transA = false, transB = false): Float64Array {
  const out = new Float64Array(batch * M * N);
  const A = Array.from(a), B = Array.from(b);
  for (let i = 0; i < batch; i++) {
    out.set(matmulRef(A.slice(i * M * K, (i + 1) * M * K), B.slice(i * K * N, (i + 1) * K * N), M, K, N, transA, transB), i * M * N);
  }
  return out;
}

/** nn.Linear: x [rows, in], w [out, in], bias [out] -> [rows, out]. */
export function linearRef(x: Arr, w: Arr, bias: Arr | null, rows: number, inF: number, outF: number): Float64Array {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = bias ? bias[o]! : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i]! * w[o * inF + i]!;
      y[r * outF + o] = s;
    }
  }
  return y;
}

/** x [rows, K] sorted by group; w [E, K, N] (or [E, N, K] when transW); sizes [E]. */
export function groupedMatmulRef(x: Arr, w: Arr, sizes: readonly number[], K: number, N: number, transW: boolean): Float64Array {
  const rows = sizes.reduce((a, b) => a + b, 0);
  const y = new Float64Array(rows * N);
  let r0 = 0;
  sizes.forEach((size, e) => {
    for (let r = r0; r < r0 + size; r++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const wv = transW ? w[e * N * K + n * K + k]! : w[e * K * N + k * N + n]!;
          s += x[r * K + k]! * wv;
        }
        y[r * N + n] = s;
      }
    }
    r0 += size;
  });
  return y;
}

// ---------------------------------------------------------------------------------------------------------
// Elementwise with NumPy broadcasting, reductions.

export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1, db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`reference: ${a} and ${b} do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Value of a (shape `shape`) at the multi-index `idx` of the broadcast shape (right-aligned, size-1 dims repeat). */
function atBroadcast(a: Arr, shape: readonly number[], idx: readonly number[]): number {
  const off = idx.length - shape.length;
  let flat = 0;
  for (let d = 0; d < shape.length; d++) flat = flat * shape[d]! + (shape[d] === 1 ? 0 : idx[d + off]!);
  return a[flat]!;
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) { idx[d] = i % shape[d]!; i = Math.floor(i / shape[d]!); }
  return idx;
}

export function binaryRef(a: Arr, aShape: readonly number[], b: Arr, bShape: readonly number[], f: (x: number, y: number) => number): { data: Float64Array; shape: number[] } {
  const shape = broadcastShape(aShape, bShape);
  const n = prod(shape);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, shape);
    data[i] = f(atBroadcast(a, aShape, idx), atBroadcast(b, bShape, idx));
  }
  return { data, shape };
}

/** Sum over `dim` (all when undefined). Returns data in row-major order of the reduced shape. */
export function sumRef(x: Arr, shape: readonly number[], dim?: number): Float64Array {
  if (dim === undefined) { let s = 0; for (let i = 0; i < x.length; i++) s += x[i]!; return Float64Array.of(s); }
  const d = dim < 0 ? dim + shape.length : dim;
  const outShape = shape.filter((_, i) => i !== d);
  const out = new Float64Array(prod(outShape));
  for (let i = 0; i < x.length; i++) {
    const idx = unravel(i, shape);
    idx.splice(d, 1);
    let flat = 0;
    for (let k = 0; k < outShape.length; k++) flat = flat * outShape[k]! + idx[k]!;
    out[flat] += x[i]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Norm, activations.

/** y = x / sqrt(mean(x^2) + eps) * w over rows of length `cols`. */
export function rmsNormRef(x: Arr, w: Arr, rows: number, cols: number, eps = 1e-6): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let ms = 0;
    for (let c = 0; c < cols; c++) ms += x[r * cols + c]! ** 2;
    ms /= cols;
    const inv = 1 / Math.sqrt(ms + eps);
    for (let c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c]! * inv * w[c]!;
  }
  return y;
}

/** softmax (or log-softmax) of x (shape `shape`) along `dim`, by definition exp(x_i)/sum exp(x_j) (shifted by max). */
export function softmaxRef(x: Arr, shape: readonly number[], dim = -1, log = false): Float64Array {
  const d = dim < 0 ? dim + shape.length : dim;
  const outer = prod(shape.slice(0, d)), n = shape[d]!, inner = prod(shape.slice(d + 1));
  const y = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (j: number): number => (o * n + j) * inner + i;
      let m = -Infinity;
      for (let j = 0; j < n; j++) m = Math.max(m, x[at(j)]!);
      let z = 0;
      for (let j = 0; j < n; j++) z += Math.exp(x[at(j)]! - m);
      for (let j = 0; j < n; j++) y[at(j)] = log ? x[at(j)]! - m - Math.log(z) : Math.exp(x[at(j)]! - m) / z;
    }
  }
  return y;
}

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
export const siluRef = (x: Arr): Float64Array => Float64Array.from(x, (v) => v * sigmoid(v));
export function swigluRef(gate: Arr, up: Arr): Float64Array {
  return Float64Array.from(gate, (g, i) => g * sigmoid(g) * up[i]!);
}

// ---------------------------------------------------------------------------------------------------------
// RoPE (Hugging Face rotate-half), embedding, top-k.

/**
 * x [B, T, H, D]; positions length T (shared by the batch) or B*T. The first rotDim dims rotate: pair
 * (i, i + rotDim/2) by angle pos * theta^(-2i/rotDim); dims >= rotDim pass through.
 */
export function ropeRef(x: Arr, B: number, T: number, H: number, D: number, positions: readonly number[], rotDim = D, theta = 10000): Float64Array {
  const y = Float64Array.from(x);
  const half = rotDim / 2;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pos = positions.length === T ? positions[t]! : positions[b * T + t]!;
      for (let h = 0; h < H; h++) {
        const base = ((b * T + t) * H + h) * D;
        for (let i = 0; i < half; i++) {
          const ang = pos * Math.pow(theta, (-2 * i) / rotDim);
          const c = Math.cos(ang), s = Math.sin(ang);
          const x1 = x[base + i]!, x2 = x[base + i + half]!;
          y[base + i] = x1 * c - x2 * s;
          y[base + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
  return y;
}

export function embeddingRef(ids: readonly number[], table: Arr, dim: number): Float64Array {
  const out = new Float64Array(ids.length * dim);
  ids.forEach((id, i) => { for (let c = 0; c < dim; c++) out[i * dim + c] = table[id * dim + c]!; });
  return out;
}

/** Per row: k largest values descending; equal values keep the lower index first. */
export function topkRef(x: Arr, rows: number, n: number, k: number): { values: Float64Array; indices: number[] } {
  const values = new Float64Array(rows * k);
  const indices: number[] = [];
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => (x[r * n + j]! - x[r * n + i]!) || i - j);
    for (let j = 0; j < k; j++) { values[r * k + j] = x[r * n + order[j]!]!; indices.push(order[j]!); }
  }
  return { values, indices };
}

// ---------------------------------------------------------------------------------------------------------
// Attention: full masked score matrix per (batch, head).

/**
 * q [B, Tq, Hq, D], k [B, Tk, Hkv, D], v [B, Tk, Hkv, Dv] -> [B, Tq, Hq, Dv]. Query head h reads kv head
 * floor(h / (Hq/Hkv)) (HF repeat_kv). Causal: query i sees keys j <= i + (Tk - Tq).
 */
export function attentionRef(q: Arr, k: Arr, v: Arr, B: number, Tq: number, Tk: number, Hq: number, Hkv: number, D: number, Dv: number,
  causal = true, scale = 1 / Math.sqrt(D)): Float64Array {
  const out = new Float64Array(B * Tq * Hq * Dv);
  const rep = Hq / Hkv;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / rep);
      // scores [Tq, Tk]
      const S: number[][] = [];
      for (let i = 0; i < Tq; i++) {
        const row: number[] = [];
        for (let j = 0; j < Tk; j++) {
          if (causal && j > i + (Tk - Tq)) { row.push(-Infinity); continue; }
          let s = 0;
          for (let d = 0; d < D; d++) s += q[((b * Tq + i) * Hq + h) * D + d]! * k[((b * Tk + j) * Hkv + hk) * D + d]!;
          row.push(s * scale);
        }
        S.push(row);
      }
      for (let i = 0; i < Tq; i++) {
        const P = softmaxRef(S[i]!, [Tk]);
        for (let e = 0; e < Dv; e++) {
          let s = 0;
          for (let j = 0; j < Tk; j++) if (P[j]! !== 0) s += P[j]! * v[((b * Tk + j) * Hkv + hk) * Dv + e]!;
          out[((b * Tq + i) * Hq + h) * Dv + e] = s;
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Losses.

function logSumExp(x: Arr, off: number, n: number, mult = 1): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, x[off + j]! * mult);
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(x[off + j]! * mult - m);
  return m + Math.log(s);
}

export type Reduction = 'mean' | 'sum' | 'none';

function reduceRef(perRow: Float64Array, reduction: Reduction, count: number): Float64Array {
  if (reduction === 'none') return perRow;
  const s = perRow.reduce((a, b) => a + b, 0);
  return Float64Array.of(reduction === 'sum' ? s : s / count);
}

/** loss_r = logsumexp(logits_r) - logits_r[target_r]; ignored rows give 0 and are not counted by 'mean'. */
export function crossEntropyRef(logits: Arr, targets: readonly number[], V: number, reduction: Reduction = 'mean', ignoreIndex = -100): Float64Array {
  const rows = targets.length;
  const per = new Float64Array(rows);
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const t = targets[r]!;
    if (t === ignoreIndex) continue;
    count++;
    per[r] = logSumExp(logits, r * V, V) - logits[r * V + t]!;
  }
  return reduceRef(per, reduction, count);
}

/** KL(p||q) per row = sum p (log p - log q), p = softmax(teacher/T), q = softmax(student/T); no T^2 factor. */
export function klDivRef(student: Arr, teacher: Arr, rows: number, V: number, T = 1, reduction: Reduction = 'mean'): Float64Array {
  const per = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const lp = logSumExp(teacher, r * V, V, 1 / T), lq = logSumExp(student, r * V, V, 1 / T);
    let s = 0;
    for (let c = 0; c < V; c++) {
      const logp = teacher[r * V + c]! / T - lp, logq = student[r * V + c]! / T - lq;
      s += Math.exp(logp) * (logp - logq);
    }
    per[r] = s;
  }
  return reduceRef(per, reduction, rows);
}

// ---------------------------------------------------------------------------------------------------------
// AdamW, the torch.optim.AdamW algorithm (amsgrad=False, maximize=False).

export interface AdamWRefState { m: Float64Array; v: Float64Array; t: number }

export function adamwRefInit(n: number): AdamWRefState {
  return { m: new Float64Array(n), v: new Float64Array(n), t: 0 };
}

/** One step, in place on `p` (float64), as documented for torch.optim.AdamW. */
export function adamwRefStep(p: Float64Array, g: Arr, st: AdamWRefState, lr: number, beta1: number, beta2: number, eps: number, wd: number): void {
  st.t += 1;
  for (let i = 0; i < p.length; i++) {
    p[i] = p[i]! - lr * wd * p[i]!;
    st.m[i] = beta1 * st.m[i]! + (1 - beta1) * g[i]!;
    st.v[i] = beta2 * st.v[i]! + (1 - beta2) * g[i]! * g[i]!;
    const mHat = st.m[i]! / (1 - beta1 ** st.t);
    const vHat = st.v[i]! / (1 - beta2 ** st.t);
    p[i] = p[i]! - lr * mHat / (Math.sqrt(vHat) + eps);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Test harness over @farskip/tensor (no kernels): construction, gradients of an op, gradcheck wrapper.

export const t = (data: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32', requiresGrad = false): Tensor =>
  Tensor.fromArray(data, shape, { dtype, requiresGrad });
export const f64 = (x: Tensor): Float64Array => Float64Array.from(x.toArray());

/** Runs fn on fresh tensors of `dtype` built from `datas`, backprops a fixed random seed, returns the grads. */
export async function gradsOf(fn: (...xs: Tensor[]) => Tensor, datas: Arr[], shapes: number[][], dtype: DType, seed = 99): Promise<Float64Array[]> {
  const xs = datas.map((d, i) => t(d, shapes[i]!, dtype, true));
  const y = fn(...xs);
  const r = new Rng(seed).randn(y.numel);
  await y.backward(t(r, [...y.shape], dtype));
  return xs.map((x) => (x.grad ? f64(x.grad) : new Float64Array(x.numel)));
}

/** gradcheck in f64 (tight tolerances: f64 central differences are accurate to ~1e-9 here); throws on mismatch. */
export async function expectGradcheck(fn: (...xs: Tensor[]) => Tensor, datas: Arr[], shapes: number[][], label = 'gradcheck'): Promise<void> {
  const xs = datas.map((d, i) => t(d, shapes[i]!, 'f64', true));
  const res = await gradcheck(fn, xs, { eps: 1e-6, atol: 1e-6, rtol: 1e-5 });
  if (!res.ok) throw new Error(`${label}: ${res.message}`);
}

/** f32 backward (native when built) against the f64 (TS backend) gradients of the same f32-rounded inputs. */
export async function expectF32GradsMatchF64(fn: (...xs: Tensor[]) => Tensor, datas: Arr[], shapes: number[][], label: string, rel = 1e-5): Promise<void> {
  const rounded = datas.map(roundAllF32);
  const g64 = await gradsOf(fn, rounded, shapes, 'f64');
  const g32 = await gradsOf(fn, rounded, shapes, 'f32');
  g64.forEach((g, i) => assertClose(g32[i]!, g, { atol: rel * Math.max(1, maxAbs(g)), rtol: 10 * rel }, `${label} grad[${i}]`));
}
