// The raw-array kernel surface. Two implementations stand side by side:
//   - backend/ts:     plain TypeScript, the readable reference and the fallback when the native library is absent.
//                     Works on Float32Array and Float64Array (gradcheck runs it in f64).
//   - backend/native: koffi bindings to native/cpu (libfarskip_cpu.so), Float32Array only (bf16 GEMM: Uint16Array).
// Signatures mirror native/cpu/include/farskip_cpu.h one to one (same argument order, same semantics), so
// tests can hold one to the other. Outputs are overwritten unless a beta / "+=" says otherwise.

export type FloatArray = Float32Array | Float64Array;

export interface CpuBackend {
  readonly name: 'native' | 'ts';
  /** Active instruction set ('scalar' | 'avx2' | 'avx512' | 'avx512-bf16'); 'ts' for the TS backend. */
  isa(): string;
  numThreads(): number;
  setNumThreads(n: number): void;

  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: FloatArray, lda: number, B: FloatArray, ldb: number, beta: number, C: FloatArray, ldc: number): void;
  sgemmBatched(batch: number, transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: FloatArray, lda: number, strideA: number, B: FloatArray, ldb: number, strideB: number,
    beta: number, C: FloatArray, ldc: number, strideC: number): void;
  /** bf16 inputs as raw 16-bit patterns, f32 output. */
  bgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Uint16Array, lda: number, B: Uint16Array, ldb: number, beta: number, C: Float32Array, ldc: number): void;
  groupedSgemm(E: number, offsets: Int32Array, transW: boolean, N: number, K: number,
    X: FloatArray, W: FloatArray, beta: number, Y: FloatArray): void;
  groupedSgemmWgrad(E: number, offsets: Int32Array, transW: boolean, N: number, K: number,
    X: FloatArray, dY: FloatArray, beta: number, dW: FloatArray): void;

  axpby(n: number, alpha: number, a: FloatArray, beta: number, b: FloatArray, out: FloatArray): void;
  mul(n: number, a: FloatArray, b: FloatArray, out: FloatArray): void;
  scale(n: number, a: FloatArray, s: number, out: FloatArray): void;
  addRow(rows: number, cols: number, a: FloatArray, b: FloatArray, out: FloatArray): void;
  mulRow(rows: number, cols: number, a: FloatArray, b: FloatArray, out: FloatArray): void;
  /** out[r,c] = a[r,c] + b[r];  b [rows] (column broadcast) */
  addCol(rows: number, cols: number, a: FloatArray, b: FloatArray, out: FloatArray): void;
  /** out[r,c] = a[r,c] * b[r];  b [rows] (column broadcast, e.g. MoE combine by routing weight) */
  mulCol(rows: number, cols: number, a: FloatArray, b: FloatArray, out: FloatArray): void;
  sumAxis(outer: number, dim: number, inner: number, x: FloatArray, out: FloatArray): void;

  rmsnormFwd(rows: number, cols: number, x: FloatArray, w: FloatArray, eps: number, y: FloatArray, rstd: FloatArray): void;
  rmsnormBwd(rows: number, cols: number, x: FloatArray, w: FloatArray, rstd: FloatArray, dy: FloatArray,
    dx: FloatArray, dw: FloatArray): void;

  softmaxFwd(rows: number, cols: number, x: FloatArray, y: FloatArray): void;
  softmaxBwd(rows: number, cols: number, y: FloatArray, dy: FloatArray, dx: FloatArray): void;
  logSoftmaxFwd(rows: number, cols: number, x: FloatArray, y: FloatArray): void;
  logSoftmaxBwd(rows: number, cols: number, y: FloatArray, dy: FloatArray, dx: FloatArray): void;

  siluFwd(n: number, x: FloatArray, y: FloatArray): void;
  siluBwd(n: number, x: FloatArray, dy: FloatArray, dx: FloatArray): void;
  swigluFwd(n: number, gate: FloatArray, up: FloatArray, y: FloatArray): void;
  swigluBwd(n: number, gate: FloatArray, up: FloatArray, dy: FloatArray, dgate: FloatArray, dup: FloatArray): void;

  rope(batch: number, seq: number, heads: number, headDim: number, rotDim: number, positions: Int32Array,
    invFreq: FloatArray, inverse: boolean, x: FloatArray, y: FloatArray): void;

  embeddingFwd(n: number, dim: number, ids: Int32Array, table: FloatArray, out: FloatArray): void;
  /** dtable += scatter of dout rows */
  embeddingBwd(n: number, dim: number, ids: Int32Array, dout: FloatArray, dtable: FloatArray): void;

  attentionFwd(B: number, Tq: number, Tk: number, Hq: number, Hkv: number, D: number, Dv: number, scale: number,
    causal: boolean, q: FloatArray, k: FloatArray, kBatchStride: number, v: FloatArray, vBatchStride: number,
    o: FloatArray, lse: FloatArray): void;
  /** Attention over a slot cache k [slots, maxT, Hkv, D] (kSlotStride elements per slot) with a length per sequence:
   *  batch row b (q [B, Tq, Hq, D]) reads slot slots[b], keys [0, lens[b]); causal aligns its queries to the end. */
  attentionFwdCached(B: number, Tq: number, Hq: number, Hkv: number, D: number, Dv: number, scale: number,
    causal: boolean, q: FloatArray, k: FloatArray, kSlotStride: number, v: FloatArray, vSlotStride: number,
    slots: Int32Array, lens: Int32Array, o: FloatArray, lse: FloatArray): void;
  attentionBwd(B: number, Tq: number, Tk: number, Hq: number, Hkv: number, D: number, Dv: number, scale: number,
    causal: boolean, q: FloatArray, k: FloatArray, v: FloatArray, o: FloatArray, lse: FloatArray, dout: FloatArray,
    dq: FloatArray, dk: FloatArray, dv: FloatArray): void;

  topk(rows: number, cols: number, k: number, x: FloatArray, values: FloatArray, indices: Int32Array): void;

  crossEntropyFwd(rows: number, V: number, logits: FloatArray, targets: Int32Array, ignoreIndex: number,
    loss: FloatArray, lse: FloatArray): void;
  crossEntropyBwd(rows: number, V: number, logits: FloatArray, targets: Int32Array, ignoreIndex: number,
    lse: FloatArray, dloss: FloatArray, dlogits: FloatArray): void;
  klDivFwd(rows: number, V: number, student: FloatArray, teacher: FloatArray, temperature: number, kl: FloatArray): void;
  klDivBwd(rows: number, V: number, student: FloatArray, teacher: FloatArray, temperature: number,
    dkl: FloatArray, dstudent: FloatArray): void;

  adamwStep(n: number, param: FloatArray, grad: FloatArray, m: FloatArray, v: FloatArray, lr: number, beta1: number,
    beta2: number, eps: number, weightDecay: number, step: number): void;

  f32ToBf16(n: number, x: Float32Array, y: Uint16Array): void;
  bf16ToF32(n: number, x: Uint16Array, y: Float32Array): void;
}
