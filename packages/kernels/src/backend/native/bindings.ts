// koffi prototypes for every function of native/cpu/include/farskip_cpu.h (ABI version 1), declared once at load.
// Typed arrays are passed straight through as pointers (koffi hands C the address of the view's first element,
// byteOffset included; see __tests__/backend-native.test.ts), int64_t parameters take plain JS numbers.

import type { LibraryHandle } from 'koffi';

/** The C prototypes, copied from farskip_cpu.h (parameter names kept for koffi's error messages). */
export const PROTOTYPES = {
  fs_abi_version: 'int fs_abi_version(void)',
  fs_isa: 'int fs_isa(void)',
  fs_isa_supported: 'int fs_isa_supported(void)',
  fs_set_isa: 'int fs_set_isa(int isa)',
  fs_num_threads: 'int fs_num_threads(void)',
  fs_set_num_threads: 'void fs_set_num_threads(int n)',

  fs_sgemm: 'void fs_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, ' +
    'int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)',
  fs_sgemm_batched: 'void fs_sgemm_batched(int64_t batch, int transA, int transB, int64_t M, int64_t N, int64_t K, ' +
    'float alpha, const float *A, int64_t lda, int64_t strideA, const float *B, int64_t ldb, int64_t strideB, ' +
    'float beta, float *C, int64_t ldc, int64_t strideC)',
  fs_bgemm: 'void fs_bgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A, ' +
    'int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc)',
  fs_grouped_sgemm: 'void fs_grouped_sgemm(int64_t E, const int32_t *offsets, int transW, int64_t N, int64_t K, ' +
    'const float *X, const float *W, float beta, float *Y)',
  fs_grouped_sgemm_wgrad: 'void fs_grouped_sgemm_wgrad(int64_t E, const int32_t *offsets, int transW, int64_t N, ' +
    'int64_t K, const float *X, const float *dY, float beta, float *dW)',

  fs_axpby: 'void fs_axpby(int64_t n, float alpha, const float *a, float beta, const float *b, float *out)',
  fs_mul: 'void fs_mul(int64_t n, const float *a, const float *b, float *out)',
  fs_scale: 'void fs_scale(int64_t n, const float *a, float s, float *out)',
  fs_add_row: 'void fs_add_row(int64_t rows, int64_t cols, const float *a, const float *b, float *out)',
  fs_mul_row: 'void fs_mul_row(int64_t rows, int64_t cols, const float *a, const float *b, float *out)',
  fs_add_col: 'void fs_add_col(int64_t rows, int64_t cols, const float *a, const float *b, float *out)',
  fs_mul_col: 'void fs_mul_col(int64_t rows, int64_t cols, const float *a, const float *b, float *out)',
  fs_sum_axis: 'void fs_sum_axis(int64_t outer, int64_t dim, int64_t inner, const float *x, float *out)',

  fs_rmsnorm_fwd: 'void fs_rmsnorm_fwd(int64_t rows, int64_t cols, const float *x, const float *w, float eps, ' +
    'float *y, float *rstd)',
  fs_rmsnorm_bwd: 'void fs_rmsnorm_bwd(int64_t rows, int64_t cols, const float *x, const float *w, ' +
    'const float *rstd, const float *dy, float *dx, float *dw)',

  fs_softmax_fwd: 'void fs_softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y)',
  fs_softmax_bwd: 'void fs_softmax_bwd(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx)',
  fs_log_softmax_fwd: 'void fs_log_softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y)',
  fs_log_softmax_bwd: 'void fs_log_softmax_bwd(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx)',

  fs_silu_fwd: 'void fs_silu_fwd(int64_t n, const float *x, float *y)',
  fs_silu_bwd: 'void fs_silu_bwd(int64_t n, const float *x, const float *dy, float *dx)',
  fs_swiglu_fwd: 'void fs_swiglu_fwd(int64_t n, const float *gate, const float *up, float *y)',
  fs_swiglu_bwd: 'void fs_swiglu_bwd(int64_t n, const float *gate, const float *up, const float *dy, float *dgate, ' +
    'float *dup)',

  fs_rope: 'void fs_rope(int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, int64_t rot_dim, ' +
    'const int32_t *positions, const float *inv_freq, int inverse, const float *x, float *y)',

  fs_embedding_fwd: 'void fs_embedding_fwd(int64_t n, int64_t dim, const int32_t *ids, const float *table, float *out)',
  fs_embedding_bwd: 'void fs_embedding_bwd(int64_t n, int64_t dim, const int32_t *ids, const float *dout, ' +
    'float *dtable)',

  fs_attention_fwd: 'void fs_attention_fwd(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, ' +
    'int64_t Dv, float scale, int causal, const float *q, const float *k, int64_t kBatchStride, const float *v, ' +
    'int64_t vBatchStride, float *o, float *lse)',
  fs_attention_fwd_cached: 'void fs_attention_fwd_cached(int64_t B, int64_t Tq, int64_t Hq, int64_t Hkv, int64_t D, ' +
    'int64_t Dv, float scale, int causal, const float *q, const float *k, int64_t kSlotStride, const float *v, ' +
    'int64_t vSlotStride, const int32_t *slots, const int32_t *lens, float *o, float *lse)',
  fs_attention_bwd: 'void fs_attention_bwd(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, ' +
    'int64_t Dv, float scale, int causal, const float *q, const float *k, const float *v, const float *o, ' +
    'const float *lse, const float *dout, float *dq, float *dk, float *dv)',

  fs_topk: 'void fs_topk(int64_t rows, int64_t cols, int64_t k, const float *x, float *values, int32_t *indices)',

  fs_cross_entropy_fwd: 'void fs_cross_entropy_fwd(int64_t rows, int64_t V, const float *logits, ' +
    'const int32_t *targets, int32_t ignoreIndex, float *loss, float *lse)',
  fs_cross_entropy_bwd: 'void fs_cross_entropy_bwd(int64_t rows, int64_t V, const float *logits, ' +
    'const int32_t *targets, int32_t ignoreIndex, const float *lse, const float *dloss, float *dlogits)',
  fs_kl_div_fwd: 'void fs_kl_div_fwd(int64_t rows, int64_t V, const float *student, const float *teacher, ' +
    'float temperature, float *kl)',
  fs_kl_div_bwd: 'void fs_kl_div_bwd(int64_t rows, int64_t V, const float *student, const float *teacher, ' +
    'float temperature, const float *dkl, float *dstudent)',

  fs_adamw_step: 'void fs_adamw_step(int64_t n, float *param, const float *grad, float *m, float *v, float lr, ' +
    'float beta1, float beta2, float eps, float weightDecay, int64_t step)',

  fs_f32_to_bf16: 'void fs_f32_to_bf16(int64_t n, const float *x, uint16_t *y)',
  fs_bf16_to_f32: 'void fs_bf16_to_f32(int64_t n, const uint16_t *x, float *y)',
} as const;

export type NativeName = keyof typeof PROTOTYPES;
// koffi functions are variadic from TypeScript's point of view
export type NativeFn = (...args: unknown[]) => any; // eslint-disable-line @typescript-eslint/no-explicit-any
export type NativeFns = Record<NativeName, NativeFn>;

/** Bind every prototype; throws (naming the symbol) if the library lacks one. */
export function bindAll(lib: LibraryHandle): NativeFns {
  const out = {} as NativeFns;
  for (const name of Object.keys(PROTOTYPES) as NativeName[]) {
    try {
      out[name] = lib.func(PROTOTYPES[name]) as NativeFn;
    } catch (e) {
      throw new Error(`symbol ${name} missing or unbindable: ${(e as Error).message}`);
    }
  }
  return out;
}
