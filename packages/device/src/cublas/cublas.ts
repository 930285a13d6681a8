// cuBLAS bindings (libcublas.so.12 / .13) for the GEMMs the models need: bf16 (or f16 / f32) inputs with f32
// accumulation (CUBLAS_COMPUTE_32F), row-major at our API and column-major at cuBLAS's (mapping.ts).
//
// cuBLAS runs on the CUDA runtime, which uses the device's primary context: CudaRuntime retains that same context,
// so pointers and streams from it are valid here. A handle belongs to one device; make that device current first
// (the constructor and every call do, through the runtime). alpha and beta are host floats (CUBLAS_POINTER_MODE_HOST,
// the default), the scale type of CUBLAS_COMPUTE_32F.
//
// cuBLASLt: libcublas.so.12 needs libcublasLt.so.12 (DT_NEEDED); wheels find it through their RUNPATH, but a copy
// found by our search may not, so we load cuBLASLt first from the same lookup (FARSKIP_CUBLASLT_LIB): once loaded,
// the dynamic loader satisfies libcublas's dependency with it. Lt's own matmul API is not bound yet.
import { GpuError } from '../errors.js';
import { LazyBindings, loadLib, optionalFunc, type LoadedLib } from '../lookup.js';
import type { GpuRuntime } from '../runtime.js';
import { CUBLAS_GEMM_DEFAULT, CUBLAS_MATH, CUBLAS_STATUS, type CublasMathMode } from './enums.js';
import { rowMajorToCublas, type GemmDTypes, type Trans } from './mapping.js';

const DECLS = [
  'int cublasCreate_v2(_Out_ uintptr_t *handle)',
  'int cublasDestroy_v2(uintptr_t handle)',
  'int cublasGetVersion_v2(uintptr_t handle, _Out_ int *version)',
  'int cublasSetStream_v2(uintptr_t handle, uintptr_t stream)',
  'int cublasSetMathMode(uintptr_t handle, int mode)',
  'int cublasGemmEx(uintptr_t handle, int transa, int transb, int m, int n, int k, const void *alpha, uint64_t A, int Atype, int lda, uint64_t B, int Btype, int ldb, const void *beta, uint64_t C, int Ctype, int ldc, int computeType, int algo)',
  'int cublasGemmStridedBatchedEx(uintptr_t handle, int transa, int transb, int m, int n, int k, const void *alpha, uint64_t A, int Atype, int lda, int64_t strideA, uint64_t B, int Btype, int ldb, int64_t strideB, const void *beta, uint64_t C, int Ctype, int ldc, int64_t strideC, int batchCount, int computeType, int algo)',
];

/** Loads cuBLAS (after cuBLASLt, see above); throws the lookup error naming FARSKIP_CUBLAS_LIB when absent. */
export function loadCublas(): LoadedLib {
  try { loadLib('cublasLt'); } catch { /* libcublas may still find its own copy; its load error will say so */ }
  return loadLib('cublas');
}

export class Cublas {
  readonly libPath: string;
  /** e.g. 120804 for 12.8.4 (CUBLAS_VERSION encoding). */
  readonly version: number;
  private readonly f: LazyBindings;
  private readonly statusText: (code: number) => string;
  private handle: bigint;

  /** A cuBLAS handle on `rt`'s device (a CUDA runtime), bound to `stream` (default stream 0n). */
  constructor(private readonly rt: GpuRuntime, options: { stream?: bigint; mathMode?: CublasMathMode } = {}) {
    if (rt.kind !== 'cuda') throw new Error(`cuBLAS needs a CUDA runtime, got ${rt.kind}:${rt.device} (hipBLAS is not bound yet)`);
    const { lib, path } = loadCublas();
    this.libPath = path;
    this.f = new LazyBindings(lib, path, DECLS);
    const name = optionalFunc(lib, 'const char *cublasGetStatusString(int status)');
    this.statusText = (code) => `${CUBLAS_STATUS[code] ?? `cublasStatus_t ${code}`}${name ? `: ${String(name(code))}` : ''}`;
    rt.makeCurrent();
    const h: (number | bigint)[] = [0];
    this.call('cublasCreate_v2', h);
    this.handle = BigInt(h[0]!);
    const v = [0];
    this.call('cublasGetVersion_v2', this.handle, v);
    this.version = v[0]!;
    this.setStream(options.stream ?? 0n);
    if (options.mathMode) this.setMathMode(options.mathMode);
  }

  private call(name: string, ...args: unknown[]): void {
    const code = this.f.get(name)(...args) as number;
    if (code !== 0) throw new GpuError(name, code, this.statusText(code));
  }
  private live(): bigint {
    if (this.handle === 0n) throw new Error('cuBLAS handle used after destroy()');
    this.rt.makeCurrent();
    return this.handle;
  }

  setStream(stream: bigint): void { this.call('cublasSetStream_v2', this.live(), stream); }
  /** 'default' lets cuBLAS use tensor cores for bf16/f16 inputs; 'pedantic' forbids any shortcut. */
  setMathMode(mode: CublasMathMode): void { this.call('cublasSetMathMode', this.live(), CUBLAS_MATH[mode]); }

  /**
   * Row-major C[M, N] = alpha · op(A) · op(B) + beta · C on device pointers, where op(A) is [M, K] (A stored [M, K]
   * for 'N', [K, M] for 'T', row stride lda), op(B) is [K, N] (B stored [K, N] / [N, K], ldb), C row stride ldc.
   */
  gemm(transA: Trans, transB: Trans, M: number, N: number, K: number, alpha: number, A: bigint, lda: number,
    B: bigint, ldb: number, beta: number, C: bigint, ldc: number, dtypes: GemmDTypes): void {
    const g = rowMajorToCublas({ transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, dtypes });
    this.call('cublasGemmEx', this.live(), g.transa, g.transb, g.m, g.n, g.k, new Float32Array([g.alpha]),
      g.A, g.Atype, g.lda, g.B, g.Btype, g.ldb, new Float32Array([g.beta]), g.C, g.Ctype, g.ldc, g.computeType, CUBLAS_GEMM_DEFAULT);
  }

  /** `batchCount` independent row-major GEMMs; matrix i of each operand starts `stride*` ELEMENTS after matrix i-1. */
  gemmStridedBatched(transA: Trans, transB: Trans, M: number, N: number, K: number, alpha: number,
    A: bigint, lda: number, strideA: number, B: bigint, ldb: number, strideB: number, beta: number,
    C: bigint, ldc: number, strideC: number, batchCount: number, dtypes: GemmDTypes): void {
    const g = rowMajorToCublas({ transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, dtypes, batch: { count: batchCount, strideA, strideB, strideC } });
    const b = g.batch!;
    this.call('cublasGemmStridedBatchedEx', this.live(), g.transa, g.transb, g.m, g.n, g.k, new Float32Array([g.alpha]),
      g.A, g.Atype, g.lda, b.strideA, g.B, g.Btype, g.ldb, b.strideB, new Float32Array([g.beta]),
      g.C, g.Ctype, g.ldc, b.strideC, b.count, g.computeType, CUBLAS_GEMM_DEFAULT);
  }

  destroy(): void {
    if (this.handle === 0n) return;
    this.rt.makeCurrent();
    this.call('cublasDestroy_v2', this.handle);
    this.handle = 0n;
  }
}
