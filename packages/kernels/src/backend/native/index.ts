// Native CpuBackend: koffi bindings to native/cpu (libfarskip_cpu.so), one to one with farskip_cpu.h.
//
// Float arguments must be Float32Array (bf16 GEMM operands Uint16Array, indices Int32Array): the native kernels
// are f32 only and koffi would otherwise reinterpret any typed array's bytes silently, so each array argument
// gets one instanceof check (no loops, no allocations on the call path). The plain-TS backend handles f64.
// Booleans go to C as 0/1, int64_t sizes as JS numbers.

import type { CpuBackend, FloatArray } from '../types.js';
import { bindAll, type NativeFns } from './bindings.js';
import { openLibrary } from './load.js';

export const ISA_NAMES = ['scalar', 'avx2', 'avx512', 'avx512-bf16'] as const;
export type IsaName = (typeof ISA_NAMES)[number];

/** The native backend plus test / diagnostics extras that are not part of CpuBackend. */
export interface NativeBackend extends CpuBackend {
  /** Force dispatch to min(isa, supported); returns the ISA now active. */
  setIsa(isa: IsaName): string;
  /** Best ISA this CPU supports. */
  supportedIsa(): IsaName;
  readonly libraryPath: string;
}

export interface NativeLibraryStatus { loaded: boolean; path?: string; reason?: string; isa?: string }
export interface LoadNativeOptions {
  /** Explicit library path (takes precedence over FARSKIP_NATIVE_LIB); throws if it does not load. */
  libPath?: string;
}

function typeName(x: unknown): string {
  return x === null || x === undefined ? String(x) : ((x as object).constructor?.name ?? typeof x);
}
function bad(fn: string, name: string, want: string, x: unknown): never {
  const hint = want === 'Float32Array' ? '; the plain-TS backend handles f64' : '';
  throw new TypeError(`native backend: ${fn} argument ${name} must be ${want}, got ${typeName(x)}${hint}`);
}
// One instanceof per array argument; the string arguments are constants, so nothing is allocated.
function f(x: FloatArray, fn: string, name: string): Float32Array {
  return x instanceof Float32Array ? x : bad(fn, name, 'Float32Array', x);
}
function i32(x: Int32Array, fn: string, name: string): Int32Array {
  return x instanceof Int32Array ? x : bad(fn, name, 'Int32Array', x);
}
function u16(x: Uint16Array, fn: string, name: string): Uint16Array {
  return x instanceof Uint16Array ? x : bad(fn, name, 'Uint16Array', x);
}

function makeBackend(c: NativeFns, libraryPath: string): NativeBackend {
  const isaName = (i: number): IsaName => ISA_NAMES[i] ?? 'scalar';
  return Object.freeze<NativeBackend>({
    name: 'native',
    libraryPath,
    isa: () => isaName(c.fs_isa()),
    supportedIsa: () => isaName(c.fs_isa_supported()),
    setIsa: (isa: IsaName) => {
      const idx = ISA_NAMES.indexOf(isa);
      if (idx < 0) throw new RangeError(`native backend: unknown ISA '${isa}' (expected one of ${ISA_NAMES.join(', ')})`);
      return isaName(c.fs_set_isa(idx));
    },
    numThreads: () => c.fs_num_threads(),
    setNumThreads: (n) => { c.fs_set_num_threads(n); },

    sgemm: (tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) => {
      c.fs_sgemm(tA ? 1 : 0, tB ? 1 : 0, M, N, K, alpha, f(A, 'sgemm', 'A'), lda, f(B, 'sgemm', 'B'), ldb, beta,
        f(C, 'sgemm', 'C'), ldc);
    },
    sgemmBatched: (batch, tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC) => {
      c.fs_sgemm_batched(batch, tA ? 1 : 0, tB ? 1 : 0, M, N, K, alpha, f(A, 'sgemmBatched', 'A'), lda, sA,
        f(B, 'sgemmBatched', 'B'), ldb, sB, beta, f(C, 'sgemmBatched', 'C'), ldc, sC);
    },
    bgemm: (tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) => {
      c.fs_bgemm(tA ? 1 : 0, tB ? 1 : 0, M, N, K, alpha, u16(A, 'bgemm', 'A'), lda, u16(B, 'bgemm', 'B'), ldb, beta,
        f(C, 'bgemm', 'C'), ldc);
    },
    groupedSgemm: (E, offsets, transW, N, K, X, W, beta, Y) => {
      c.fs_grouped_sgemm(E, i32(offsets, 'groupedSgemm', 'offsets'), transW ? 1 : 0, N, K, f(X, 'groupedSgemm', 'X'),
        f(W, 'groupedSgemm', 'W'), beta, f(Y, 'groupedSgemm', 'Y'));
    },
    groupedSgemmWgrad: (E, offsets, transW, N, K, X, dY, beta, dW) => {
      c.fs_grouped_sgemm_wgrad(E, i32(offsets, 'groupedSgemmWgrad', 'offsets'), transW ? 1 : 0, N, K,
        f(X, 'groupedSgemmWgrad', 'X'), f(dY, 'groupedSgemmWgrad', 'dY'), beta, f(dW, 'groupedSgemmWgrad', 'dW'));
    },

    axpby: (n, alpha, a, beta, b, out) => {
      c.fs_axpby(n, alpha, f(a, 'axpby', 'a'), beta, f(b, 'axpby', 'b'), f(out, 'axpby', 'out'));
    },
    mul: (n, a, b, out) => { c.fs_mul(n, f(a, 'mul', 'a'), f(b, 'mul', 'b'), f(out, 'mul', 'out')); },
    scale: (n, a, s, out) => { c.fs_scale(n, f(a, 'scale', 'a'), s, f(out, 'scale', 'out')); },
    addRow: (rows, cols, a, b, out) => {
      c.fs_add_row(rows, cols, f(a, 'addRow', 'a'), f(b, 'addRow', 'b'), f(out, 'addRow', 'out'));
    },
    mulRow: (rows, cols, a, b, out) => {
      c.fs_mul_row(rows, cols, f(a, 'mulRow', 'a'), f(b, 'mulRow', 'b'), f(out, 'mulRow', 'out'));
    },
    addCol: (rows, cols, a, b, out) => {
      c.fs_add_col(rows, cols, f(a, 'addCol', 'a'), f(b, 'addCol', 'b'), f(out, 'addCol', 'out'));
    },
    mulCol: (rows, cols, a, b, out) => {
      c.fs_mul_col(rows, cols, f(a, 'mulCol', 'a'), f(b, 'mulCol', 'b'), f(out, 'mulCol', 'out'));
    },
    sumAxis: (outer, dim, inner, x, out) => {
      c.fs_sum_axis(outer, dim, inner, f(x, 'sumAxis', 'x'), f(out, 'sumAxis', 'out'));
    },

    rmsnormFwd: (rows, cols, x, w, eps, y, rstd) => {
      c.fs_rmsnorm_fwd(rows, cols, f(x, 'rmsnormFwd', 'x'), f(w, 'rmsnormFwd', 'w'), eps, f(y, 'rmsnormFwd', 'y'),
        f(rstd, 'rmsnormFwd', 'rstd'));
    },
    rmsnormBwd: (rows, cols, x, w, rstd, dy, dx, dw) => {
      c.fs_rmsnorm_bwd(rows, cols, f(x, 'rmsnormBwd', 'x'), f(w, 'rmsnormBwd', 'w'), f(rstd, 'rmsnormBwd', 'rstd'),
        f(dy, 'rmsnormBwd', 'dy'), f(dx, 'rmsnormBwd', 'dx'), f(dw, 'rmsnormBwd', 'dw'));
    },

    softmaxFwd: (rows, cols, x, y) => {
      c.fs_softmax_fwd(rows, cols, f(x, 'softmaxFwd', 'x'), f(y, 'softmaxFwd', 'y'));
    },
    softmaxBwd: (rows, cols, y, dy, dx) => {
      c.fs_softmax_bwd(rows, cols, f(y, 'softmaxBwd', 'y'), f(dy, 'softmaxBwd', 'dy'), f(dx, 'softmaxBwd', 'dx'));
    },
    logSoftmaxFwd: (rows, cols, x, y) => {
      c.fs_log_softmax_fwd(rows, cols, f(x, 'logSoftmaxFwd', 'x'), f(y, 'logSoftmaxFwd', 'y'));
    },
    logSoftmaxBwd: (rows, cols, y, dy, dx) => {
      c.fs_log_softmax_bwd(rows, cols, f(y, 'logSoftmaxBwd', 'y'), f(dy, 'logSoftmaxBwd', 'dy'),
        f(dx, 'logSoftmaxBwd', 'dx'));
    },

    siluFwd: (n, x, y) => { c.fs_silu_fwd(n, f(x, 'siluFwd', 'x'), f(y, 'siluFwd', 'y')); },
    siluBwd: (n, x, dy, dx) => {
      c.fs_silu_bwd(n, f(x, 'siluBwd', 'x'), f(dy, 'siluBwd', 'dy'), f(dx, 'siluBwd', 'dx'));
    },
    swigluFwd: (n, gate, up, y) => {
      c.fs_swiglu_fwd(n, f(gate, 'swigluFwd', 'gate'), f(up, 'swigluFwd', 'up'), f(y, 'swigluFwd', 'y'));
    },
    swigluBwd: (n, gate, up, dy, dgate, dup) => {
      c.fs_swiglu_bwd(n, f(gate, 'swigluBwd', 'gate'), f(up, 'swigluBwd', 'up'), f(dy, 'swigluBwd', 'dy'),
        f(dgate, 'swigluBwd', 'dgate'), f(dup, 'swigluBwd', 'dup'));
    },

    rope: (batch, seq, heads, headDim, rotDim, positions, invFreq, inverse, x, y) => {
      c.fs_rope(batch, seq, heads, headDim, rotDim, i32(positions, 'rope', 'positions'), f(invFreq, 'rope', 'invFreq'),
        inverse ? 1 : 0, f(x, 'rope', 'x'), f(y, 'rope', 'y'));
    },

    embeddingFwd: (n, dim, ids, table, out) => {
      c.fs_embedding_fwd(n, dim, i32(ids, 'embeddingFwd', 'ids'), f(table, 'embeddingFwd', 'table'),
        f(out, 'embeddingFwd', 'out'));
    },
    embeddingBwd: (n, dim, ids, dout, dtable) => {
      c.fs_embedding_bwd(n, dim, i32(ids, 'embeddingBwd', 'ids'), f(dout, 'embeddingBwd', 'dout'),
        f(dtable, 'embeddingBwd', 'dtable'));
    },

    attentionFwd: (B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, kBatchStride, v, vBatchStride, o, lse) => {
      c.fs_attention_fwd(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal ? 1 : 0, f(q, 'attentionFwd', 'q'),
        f(k, 'attentionFwd', 'k'), kBatchStride, f(v, 'attentionFwd', 'v'), vBatchStride, f(o, 'attentionFwd', 'o'),
        f(lse, 'attentionFwd', 'lse'));
    },
    attentionFwdCached: (B, Tq, Hq, Hkv, D, Dv, scale, causal, q, k, kSlotStride, v, vSlotStride, slots, lens, o, lse) => {
      c.fs_attention_fwd_cached(B, Tq, Hq, Hkv, D, Dv, scale, causal ? 1 : 0, f(q, 'attentionFwdCached', 'q'),
        f(k, 'attentionFwdCached', 'k'), kSlotStride, f(v, 'attentionFwdCached', 'v'), vSlotStride,
        i32(slots, 'attentionFwdCached', 'slots'), i32(lens, 'attentionFwdCached', 'lens'), f(o, 'attentionFwdCached', 'o'),
        f(lse, 'attentionFwdCached', 'lse'));
    },
    attentionBwd: (B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, v, o, lse, dout, dq, dk, dv) => {
      c.fs_attention_bwd(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal ? 1 : 0, f(q, 'attentionBwd', 'q'),
        f(k, 'attentionBwd', 'k'), f(v, 'attentionBwd', 'v'), f(o, 'attentionBwd', 'o'), f(lse, 'attentionBwd', 'lse'),
        f(dout, 'attentionBwd', 'dout'), f(dq, 'attentionBwd', 'dq'), f(dk, 'attentionBwd', 'dk'),
        f(dv, 'attentionBwd', 'dv'));
    },

    topk: (rows, cols, k, x, values, indices) => {
      c.fs_topk(rows, cols, k, f(x, 'topk', 'x'), f(values, 'topk', 'values'), i32(indices, 'topk', 'indices'));
    },

    crossEntropyFwd: (rows, V, logits, targets, ignoreIndex, loss, lse) => {
      c.fs_cross_entropy_fwd(rows, V, f(logits, 'crossEntropyFwd', 'logits'), i32(targets, 'crossEntropyFwd', 'targets'),
        ignoreIndex, f(loss, 'crossEntropyFwd', 'loss'), f(lse, 'crossEntropyFwd', 'lse'));
    },
    crossEntropyBwd: (rows, V, logits, targets, ignoreIndex, lse, dloss, dlogits) => {
      c.fs_cross_entropy_bwd(rows, V, f(logits, 'crossEntropyBwd', 'logits'),
        i32(targets, 'crossEntropyBwd', 'targets'), ignoreIndex, f(lse, 'crossEntropyBwd', 'lse'),
        f(dloss, 'crossEntropyBwd', 'dloss'), f(dlogits, 'crossEntropyBwd', 'dlogits'));
    },
    klDivFwd: (rows, V, student, teacher, temperature, kl) => {
      c.fs_kl_div_fwd(rows, V, f(student, 'klDivFwd', 'student'), f(teacher, 'klDivFwd', 'teacher'), temperature,
        f(kl, 'klDivFwd', 'kl'));
    },
    klDivBwd: (rows, V, student, teacher, temperature, dkl, dstudent) => {
      c.fs_kl_div_bwd(rows, V, f(student, 'klDivBwd', 'student'), f(teacher, 'klDivBwd', 'teacher'), temperature,
        f(dkl, 'klDivBwd', 'dkl'), f(dstudent, 'klDivBwd', 'dstudent'));
    },

    adamwStep: (n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step) => {
      c.fs_adamw_step(n, f(param, 'adamwStep', 'param'), f(grad, 'adamwStep', 'grad'), f(m, 'adamwStep', 'm'),
        f(v, 'adamwStep', 'v'), lr, beta1, beta2, eps, weightDecay, step);
    },

    f32ToBf16: (n, x, y) => { c.fs_f32_to_bf16(n, f(x, 'f32ToBf16', 'x'), u16(y, 'f32ToBf16', 'y')); },
    bf16ToF32: (n, x, y) => { c.fs_bf16_to_f32(n, u16(x, 'bf16ToF32', 'x'), f(y, 'bf16ToF32', 'y')); },
  });
}

let cached: NativeBackend | null = null;
let status: NativeLibraryStatus | null = null;

/**
 * The native backend, or null when it is disabled (FARSKIP_NO_NATIVE=1) or the default build is absent / stale
 * (nativeLibraryStatus().reason says why). An explicit library (options.libPath or FARSKIP_NATIVE_LIB) that
 * cannot be loaded throws. The library is loaded and its functions bound once; later calls return the same object.
 */
export function loadNativeBackend(options?: LoadNativeOptions): NativeBackend | null {
  if (typeof process !== 'undefined' && process.env.FARSKIP_NO_NATIVE === '1') {
    status = { loaded: false, reason: 'disabled by FARSKIP_NO_NATIVE=1' };
    return null;
  }
  if (cached && (options?.libPath === undefined || options.libPath === cached.libraryPath)) {
    status = { loaded: true, path: cached.libraryPath };
    return cached;
  }
  let res: ReturnType<typeof openLibrary>;
  try {
    res = openLibrary(options?.libPath);
  } catch (e) {
    if (!cached) status = { loaded: false, reason: (e as Error).message };
    throw e;
  }
  if (!res.ok) {
    if (!cached) status = { loaded: false, reason: res.reason, ...(res.path ? { path: res.path } : {}) };
    return null;
  }
  let fns: NativeFns;
  try {
    fns = bindAll(res.lib);
  } catch (e) {
    const reason = `${res.path}: ${(e as Error).message}; rebuild with \`node tooling/build-native.mjs --force\``;
    status = { loaded: false, path: res.path, reason };
    if (options?.libPath !== undefined || process.env.FARSKIP_NATIVE_LIB) throw new Error(`native backend: ${reason}`);
    return null;
  }
  cached = makeBackend(fns, res.path);
  status = { loaded: true, path: res.path, isa: cached.isa() };
  return cached;
}

/** Whether the native library is loaded (attempting the default load once if nobody has), for diagnostics. */
export function nativeLibraryStatus(): NativeLibraryStatus {
  if (!status) {
    try { loadNativeBackend(); } catch (e) { status = { loaded: false, reason: (e as Error).message }; }
  }
  const s = status!;
  return cached && s.loaded ? { ...s, isa: cached.isa() } : { ...s };
}
