/* fs_kernels.h: the list of ISA-specific kernels. X(name, (params), (args)) for every public function that is
 * dispatched; dispatch.c builds one function-pointer table per ISA variant and the public wrappers from it.
 * Each kernel is defined in a per-ISA source as FS_FN(name), e.g. fsk_sgemm_avx512. */
#ifndef FS_KERNELS_H
#define FS_KERNELS_H
#include "fs_internal.h"

#define FS_KERNEL_LIST(X)                                                                                         \
  X(sgemm, (int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,    \
            const float *B, int64_t ldb, float beta, float *C, int64_t ldc),                                       \
    (transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))                                                \
  X(sgemm_batched, (int64_t batch, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,          \
                    const float *A, int64_t lda, int64_t strideA, const float *B, int64_t ldb, int64_t strideB,    \
                    float beta, float *C, int64_t ldc, int64_t strideC),                                           \
    (batch, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC))              \
  X(bgemm, (int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A, int64_t lda, \
            const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc),                                    \
    (transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))                                                \
  X(grouped_sgemm, (int64_t E, const int32_t *offsets, int transW, int64_t N, int64_t K, const float *X,          \
                    const float *W, float beta, float *Y),                                                         \
    (E, offsets, transW, N, K, X, W, beta, Y))                                                                     \
  X(grouped_sgemm_wgrad, (int64_t E, const int32_t *offsets, int transW, int64_t N, int64_t K, const float *X,    \
                          const float *dY, float beta, float *dW),                                                 \
    (E, offsets, transW, N, K, X, dY, beta, dW))                                                                   \
  X(axpby, (int64_t n, float alpha, const float *a, float beta, const float *b, float *out),                      \
    (n, alpha, a, beta, b, out))                                                                                   \
  X(mul, (int64_t n, const float *a, const float *b, float *out), (n, a, b, out))                                 \
  X(scale, (int64_t n, const float *a, float s, float *out), (n, a, s, out))                                      \
  X(add_row, (int64_t rows, int64_t cols, const float *a, const float *b, float *out), (rows, cols, a, b, out))   \
  X(mul_row, (int64_t rows, int64_t cols, const float *a, const float *b, float *out), (rows, cols, a, b, out))   \
  X(add_col, (int64_t rows, int64_t cols, const float *a, const float *b, float *out), (rows, cols, a, b, out))   \
  X(mul_col, (int64_t rows, int64_t cols, const float *a, const float *b, float *out), (rows, cols, a, b, out))   \
  X(sum_axis, (int64_t outer, int64_t dim, int64_t inner, const float *x, float *out),                            \
    (outer, dim, inner, x, out))                                                                                   \
  X(rmsnorm_fwd, (int64_t rows, int64_t cols, const float *x, const float *w, float eps, float *y, float *rstd),  \
    (rows, cols, x, w, eps, y, rstd))                                                                              \
  X(rmsnorm_bwd, (int64_t rows, int64_t cols, const float *x, const float *w, const float *rstd,                  \
                  const float *dy, float *dx, float *dw),                                                          \
    (rows, cols, x, w, rstd, dy, dx, dw))                                                                          \
  X(softmax_fwd, (int64_t rows, int64_t cols, const float *x, float *y), (rows, cols, x, y))                      \
  X(softmax_bwd, (int64_t rows, int64_t cols, const float *y, const float *dy, float *dx), (rows, cols, y, dy, dx))\
  X(log_softmax_fwd, (int64_t rows, int64_t cols, const float *x, float *y), (rows, cols, x, y))                  \
  X(log_softmax_bwd, (int64_t rows, int64_t cols, const float *y, const float *dy, float *dx),                    \
    (rows, cols, y, dy, dx))                                                                                       \
  X(silu_fwd, (int64_t n, const float *x, float *y), (n, x, y))                                                   \
  X(silu_bwd, (int64_t n, const float *x, const float *dy, float *dx), (n, x, dy, dx))                            \
  X(swiglu_fwd, (int64_t n, const float *gate, const float *up, float *y), (n, gate, up, y))                      \
  X(swiglu_bwd, (int64_t n, const float *gate, const float *up, const float *dy, float *dgate, float *dup),       \
    (n, gate, up, dy, dgate, dup))                                                                                 \
  X(rope, (int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, int64_t rot_dim,                          \
           const int32_t *positions, const float *inv_freq, int inverse, const float *x, float *y),                \
    (batch, seq, heads, head_dim, rot_dim, positions, inv_freq, inverse, x, y))                                    \
  X(embedding_fwd, (int64_t n, int64_t dim, const int32_t *ids, const float *table, float *out),                  \
    (n, dim, ids, table, out))                                                                                     \
  X(embedding_bwd, (int64_t n, int64_t dim, const int32_t *ids, const float *dout, float *dtable),                \
    (n, dim, ids, dout, dtable))                                                                                   \
  X(attention_fwd, (int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv,           \
                    float scale, int causal, const float *q, const float *k, int64_t kBatchStride, const float *v, \
                    int64_t vBatchStride, float *o, float *lse),                                                   \
    (B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, kBatchStride, v, vBatchStride, o, lse))                       \
  X(attention_fwd_cached, (int64_t B, int64_t Tq, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv, float scale,    \
                           int causal, const float *q, const float *k, int64_t kSlotStride, const float *v,       \
                           int64_t vSlotStride, const int32_t *slots, const int32_t *lens, float *o, float *lse),  \
    (B, Tq, Hq, Hkv, D, Dv, scale, causal, q, k, kSlotStride, v, vSlotStride, slots, lens, o, lse))                \
  X(attention_bwd, (int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv,           \
                    float scale, int causal, const float *q, const float *k, const float *v, const float *o,       \
                    const float *lse, const float *dout, float *dq, float *dk, float *dv),                         \
    (B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, v, o, lse, dout, dq, dk, dv))                                 \
  X(topk, (int64_t rows, int64_t cols, int64_t k, const float *x, float *values, int32_t *indices),               \
    (rows, cols, k, x, values, indices))                                                                           \
  X(cross_entropy_fwd, (int64_t rows, int64_t V, const float *logits, const int32_t *targets, int32_t ignoreIndex,\
                        float *loss, float *lse),                                                                  \
    (rows, V, logits, targets, ignoreIndex, loss, lse))                                                            \
  X(cross_entropy_bwd, (int64_t rows, int64_t V, const float *logits, const int32_t *targets, int32_t ignoreIndex,\
                        const float *lse, const float *dloss, float *dlogits),                                     \
    (rows, V, logits, targets, ignoreIndex, lse, dloss, dlogits))                                                  \
  X(kl_div_fwd, (int64_t rows, int64_t V, const float *student, const float *teacher, float temperature,          \
                 float *kl),                                                                                       \
    (rows, V, student, teacher, temperature, kl))                                                                  \
  X(kl_div_bwd, (int64_t rows, int64_t V, const float *student, const float *teacher, float temperature,          \
                 const float *dkl, float *dstudent),                                                               \
    (rows, V, student, teacher, temperature, dkl, dstudent))                                                       \
  X(adamw_step, (int64_t n, float *param, const float *grad, float *m, float *v, float lr, float beta1,           \
                 float beta2, float eps, float weightDecay, int64_t step),                                         \
    (n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step))                                              \
  X(f32_to_bf16, (int64_t n, const float *x, uint16_t *y), (n, x, y))                                             \
  X(bf16_to_f32, (int64_t n, const uint16_t *x, float *y), (n, x, y))

/* declarations of every variant's kernels */
#define FS_DECL_VARIANT(tag)                                                                                       \
  FS_KERNEL_LIST(FS_DECL_ONE_##tag)
#define FS_DECL_ONE_scalar(name, params, args) FS_HIDDEN void fsk_##name##_scalar params;
#define FS_DECL_ONE_avx2(name, params, args) FS_HIDDEN void fsk_##name##_avx2 params;
#define FS_DECL_ONE_avx512(name, params, args) FS_HIDDEN void fsk_##name##_avx512 params;
FS_DECL_VARIANT(scalar)
FS_DECL_VARIANT(avx2)
FS_DECL_VARIANT(avx512)
/* the AVX-512-BF16 bgemm is the only kernel with its own -mavx512bf16 object */
FS_HIDDEN void fsk_bgemm_avx512bf16(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                                    const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb, float beta,
                                    float *C, int64_t ldc);
#endif
