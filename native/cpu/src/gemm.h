/* gemm.h: blocking parameters and microkernel contract of the f32 GEMM (per ISA variant).
 *
 * Goto/BLIS structure, row-major C: C[MR x NR] tiles are computed by a register-blocked microkernel from a
 * packed A micro-panel (MR rows, k-major: a[k*MR + r]) and a packed B micro-panel (NR columns, k-major:
 * b[k*NR + c]); vectors run along N, A values are broadcast. Loop nest per thread:
 *   jc (NC cols of B, packed block ~ L3) -> pc (KC deep) -> ic (MC rows of A, packed block ~ L2)
 *   -> jr (NR) -> ir (MR): the KC x NR B micro-panel stays hot in L1/L2 across the ir loop.
 * Zen 4 (1 MiB L2/core, 32 KiB L1d): 14x32 kernel = 28 zmm accumulators + 2 B vectors, A broadcast from
 * memory; 28 FMAs per 16 loads keeps the single 512-bit FMA pipe busy. */
#ifndef FS_GEMM_H
#define FS_GEMM_H
#include "fs_internal.h"

#if defined(__AVX512F__)
#define FS_MR 14
#define FS_NR 32
#ifndef FS_KC /* overridable for tuning experiments */
#define FS_KC 384
#define FS_MC 280
#define FS_NC 2048
#define FS_MC_SHARED 140
#endif
#elif defined(__AVX2__)
#define FS_MR 6
#define FS_NR 16
#define FS_KC 256
#define FS_MC 144
#define FS_NC 2048
#define FS_MC_SHARED 72
#else
#define FS_MR 4
#define FS_NR 8
#define FS_KC 256
#define FS_MC 128
#define FS_NC 1024
#define FS_MC_SHARED 64
#endif

/* No-pack small-GEMM path (gemm_small.c, AVX-512 only): K <= 512 and K x N <= 128 Ki floats keep B in L2 and
 * an 8-row A strip in L1; M <= 256 keeps it to sizes where packing is a visible share of the time. */
#if defined(__AVX512F__)
#define FS_SMALL_GEMM 1
#define FS_SMALL_OK(M, N, K) ((K) <= 512 && (K) * (N) <= 131072 && (M) <= 256)
#define FS_SMALL_PAR_WORK (44.0 * 44 * 44) /* M*N*K from which the small path uses the (hot) pool */
FS_HIDDEN void FS_FN(sgemm_small)(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                                  int64_t ldc);
#endif

/* gemm_skinny.c: C = alpha * A[M,K] @ B[N,K]^T + beta * C for M <= FS_SKINNY_M (decode rows), W read in place */
#define FS_SKINNY_M 8
FS_HIDDEN void FS_FN(sgemm_skinny)(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* threadpool.c: wake sleeping workers without waiting for them (an empty job), so that the next parallel job
 * finds them spinning; used by GEMMs that run serially only because the pool is cold. */
FS_HIDDEN void fs_pool_warm(void);

/* C[mr x nr] = alpha * (A_panel @ B_panel) + beta * C (beta == 0: C not read). mr <= MR, nr <= NR; the panels
 * are zero padded to full MR / NR so the kernel always computes the full tile and masks the store. */
FS_HIDDEN void FS_FN(sgemm_ukr)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr, int nr,
                                float alpha, float beta);

/* gemm_pack.c: pack op(A)[i0:i0+mc, k0:k0+kc] into MR-row micro-panels / op(B)[k0:k0+kc, j0:j0+nc] into
 * NR-column micro-panels, k-major, zero padding the last panel (Bp must be 64-byte aligned) */
FS_HIDDEN void FS_FN(pack_a)(int tA, const float *A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                             float *Ap);
FS_HIDDEN void FS_FN(pack_b)(int tB, const float *B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                             float *Bp);

/* single-threaded blocked GEMM on the sub-block rows [m0,m1) x cols [n0,n1) of C (used by the driver and by
 * callers that parallelise across independent GEMMs themselves) */
FS_HIDDEN void FS_FN(sgemm_serial)(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                                   int64_t ldc);
#endif
