/* farskip_cpu.h: the C ABI of the native CPU kernels behind @farskip/kernels.
 *
 * Conventions
 * - Row-major, contiguous unless a leading dimension (ld*) or stride is given. Sizes and strides are int64_t
 *   (element counts, not bytes). Index arrays are int32_t.
 * - Every function is synchronous and thread-safe to call from one thread at a time; internally it may run on
 *   the library's thread pool (FARSKIP_NUM_THREADS, default = online cores). Small problems run on the calling
 *   thread so a 64x64 matmul costs a few microseconds end to end.
 * - Outputs are overwritten (never accumulated) unless the comment says "+=" or a beta is given.
 * - Runtime dispatch: each kernel exists as AVX-512 (+BF16), AVX2+FMA and scalar builds; fs_isa() reports which
 *   is active, fs_set_isa() can force a lower one (tests hold every path to the plain-TS reference).
 * - Shape vocabulary: [rows, cols], [tokens, hidden], [batch, seq, heads, head_dim], [experts, ...].
 */
#ifndef FARSKIP_CPU_H
#define FARSKIP_CPU_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#define FS_API __attribute__((visibility("default")))

/* ---- runtime ---------------------------------------------------------------------------------------- */
#define FS_ISA_SCALAR 0
#define FS_ISA_AVX2 1
#define FS_ISA_AVX512 2
#define FS_ISA_AVX512_BF16 3
FS_API int fs_abi_version(void);            /* 1 */
FS_API int fs_isa(void);                    /* active ISA (FS_ISA_*) */
FS_API int fs_isa_supported(void);          /* best ISA this CPU supports */
FS_API int fs_set_isa(int isa);             /* force min(isa, supported); returns the active ISA */
FS_API int fs_num_threads(void);
FS_API void fs_set_num_threads(int n);      /* n <= 0 restores the default */

/* ---- GEMM --------------------------------------------------------------------------------------------
 * C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C. transA=1: A is stored [K,M] (lda >= M); transB=1: B
 * is stored [N,K] (ldb >= K). beta == 0 means C is not read (may hold NaN). */
FS_API void fs_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* batch of independent GEMMs; stride* in elements between consecutive matrices; strideB = 0 broadcasts B. */
FS_API void fs_sgemm_batched(int64_t batch, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                             const float *A, int64_t lda, int64_t strideA, const float *B, int64_t ldb,
                             int64_t strideB, float beta, float *C, int64_t ldc, int64_t strideC);
/* bf16 inputs (raw 16-bit patterns), f32 accumulate and output. AVX-512-BF16 uses vdpbf16ps. M == 1 (decode) or
 * N == 1 streams the matrix once without packing or temporaries (memory bound). */
FS_API void fs_bgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                     const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* ---- grouped expert GEMM ------------------------------------------------------------------------------
 * Rows of X are grouped by expert: group e is rows [offsets[e], offsets[e+1]), offsets has E+1 entries,
 * offsets[0] = 0, non-decreasing (empty groups allowed). W holds E matrices: transW=0 -> W_e is [K,N];
 * transW=1 -> W_e is [N,K] (nn.Linear / Hugging Face layout).
 * fwd:   Y[group e] = X[group e] @ op(W_e) (+ beta * Y)          X [rows,K], Y [rows,N]
 * wgrad: dW_e = op^-1(X_e^T @ dY_e) (+ beta * dW_e)              i.e. transW=0: dW_e[K,N] = X_e^T dY_e;
 *                                                                 transW=1: dW_e[N,K] = dY_e^T X_e
 * (The input gradient dX = dY @ op(W_e)^T is fs_grouped_sgemm with the other transW and N,K swapped.) */
FS_API void fs_grouped_sgemm(int64_t E, const int32_t *offsets, int transW, int64_t N, int64_t K,
                             const float *X, const float *W, float beta, float *Y);
FS_API void fs_grouped_sgemm_wgrad(int64_t E, const int32_t *offsets, int transW, int64_t N, int64_t K,
                                   const float *X, const float *dY, float beta, float *dW);

/* ---- elementwise and reductions --------------------------------------------------------------------- */
FS_API void fs_axpby(int64_t n, float alpha, const float *a, float beta, const float *b, float *out); /* alpha*a + beta*b */
FS_API void fs_mul(int64_t n, const float *a, const float *b, float *out);
FS_API void fs_scale(int64_t n, const float *a, float s, float *out);
/* row broadcast: out[r,c] = a[r,c] + b[c] / a[r,c] * b[c];  a,out [rows,cols], b [cols] */
FS_API void fs_add_row(int64_t rows, int64_t cols, const float *a, const float *b, float *out);
FS_API void fs_mul_row(int64_t rows, int64_t cols, const float *a, const float *b, float *out);
/* column broadcast: out[r,c] = a[r,c] + b[r] / a[r,c] * b[r];  a,out [rows,cols], b [rows] (e.g. MoE combine:
 * each token's expert output times its routing weight) */
FS_API void fs_add_col(int64_t rows, int64_t cols, const float *a, const float *b, float *out);  /* out[r,c] = a[r,c] + b[r] */
FS_API void fs_mul_col(int64_t rows, int64_t cols, const float *a, const float *b, float *out);  /* out[r,c] = a[r,c] * b[r] */
/* x viewed as [outer, dim, inner] -> out [outer, inner] = sum over dim (f64 accumulation not required;
 * pairwise or blocked summation so error grows like log(dim)) */
FS_API void fs_sum_axis(int64_t outer, int64_t dim, int64_t inner, const float *x, float *out);

/* ---- RMSNorm (HF Llama: y = x * rsqrt(mean(x^2) + eps) * w) -------------------------------------------
 * x,y,dy,dx [rows,cols]; w,dw [cols]; rstd [rows] (written by fwd, read by bwd). dw is overwritten. */
FS_API void fs_rmsnorm_fwd(int64_t rows, int64_t cols, const float *x, const float *w, float eps, float *y, float *rstd);
FS_API void fs_rmsnorm_bwd(int64_t rows, int64_t cols, const float *x, const float *w, const float *rstd,
                           const float *dy, float *dx, float *dw);

/* ---- softmax over the last dim: [rows, cols] -------------------------------------------------------- */
FS_API void fs_softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y);
FS_API void fs_softmax_bwd(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx); /* y*(dy - sum(dy*y)) */
FS_API void fs_log_softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y);
FS_API void fs_log_softmax_bwd(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx); /* dy - exp(y)*sum(dy) */

/* ---- activations: silu(x) = x * sigmoid(x); swiglu(gate, up) = silu(gate) * up ------------------------ */
FS_API void fs_silu_fwd(int64_t n, const float *x, float *y);
FS_API void fs_silu_bwd(int64_t n, const float *x, const float *dy, float *dx);
FS_API void fs_swiglu_fwd(int64_t n, const float *gate, const float *up, float *y);
FS_API void fs_swiglu_bwd(int64_t n, const float *gate, const float *up, const float *dy, float *dgate, float *dup);

/* ---- RoPE, rotate-half (HF Llama) convention -----------------------------------------------------------
 * x,y [batch, seq, heads, head_dim]; positions [batch*seq] (int32); inv_freq [rot_dim/2]
 * (theta^(-2i/rot_dim) for plain RoPE; scaled variants pass their own). Only the first rot_dim (even) dims
 * of each head rotate; the rest are copied. With h = rot_dim/2, angle = pos*inv_freq[i], i < h:
 *   y[i] = x[i]*cos - x[i+h]*sin;  y[i+h] = x[i+h]*cos + x[i]*sin.
 * inverse=1 rotates by -angle (the backward pass). x == y (in place) is allowed. */
FS_API void fs_rope(int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, int64_t rot_dim,
                    const int32_t *positions, const float *inv_freq, int inverse, const float *x, float *y);

/* ---- embedding: out[i] = table[ids[i]]; ids validated by the caller (0 <= id < vocab) ----------------- */
FS_API void fs_embedding_fwd(int64_t n, int64_t dim, const int32_t *ids, const float *table, float *out);
FS_API void fs_embedding_bwd(int64_t n, int64_t dim, const int32_t *ids, const float *dout, float *dtable); /* dtable += */

/* ---- fused attention (online softmax; flash-attention style) --------------------------------------------
 * q [B, Tq, Hq, D]; k [B, Tk, Hkv, D]; v [B, Tk, Hkv, Dv]; o [B, Tq, Hq, Dv]; lse [B, Hq, Tq].
 * GQA: query head h reads kv head h / (Hq / Hkv) (Hq % Hkv == 0). kBatchStride / vBatchStride: elements between
 * batches of k / v (0 = packed Tk*Hkv*D), so a KV cache [B, maxT, Hkv, D] can be read up to Tk <= maxT.
 * causal=1: query i sees keys j <= i + (Tk - Tq) (decode with a cache: Tq=1 sees all Tk keys).
 * s = scale * q.k; lse = log(sum_j exp(s_j)) over visible keys (a row with no visible key gives o = 0, lse = -inf).
 * bwd recomputes P from lse; dq, dk, dv are overwritten; dk/dv are packed [B, Tk, Hkv, D/Dv]. */
FS_API void fs_attention_fwd(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv,
                             float scale, int causal, const float *q, const float *k, int64_t kBatchStride,
                             const float *v, int64_t vBatchStride, float *o, float *lse);
FS_API void fs_attention_bwd(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv,
                             float scale, int causal, const float *q, const float *k, const float *v,
                             const float *o, const float *lse, const float *dout, float *dq, float *dk, float *dv);

/* ---- top-k over the last dim: values descending; ties keep the lower index first ---------------------- */
FS_API void fs_topk(int64_t rows, int64_t cols, int64_t k, const float *x, float *values, int32_t *indices);

/* ---- losses --------------------------------------------------------------------------------------------
 * cross-entropy: logits [rows, V], targets [rows]; target == ignoreIndex gives loss 0 and zero gradient.
 * loss[r] = lse[r] - logits[r, t]; bwd: dlogits[r] = (softmax(logits[r]) - onehot(t)) * dloss[r]. */
FS_API void fs_cross_entropy_fwd(int64_t rows, int64_t V, const float *logits, const int32_t *targets,
                                 int32_t ignoreIndex, float *loss, float *lse);
FS_API void fs_cross_entropy_bwd(int64_t rows, int64_t V, const float *logits, const int32_t *targets,
                                 int32_t ignoreIndex, const float *lse, const float *dloss, float *dlogits);
/* forward KL(P_teacher || Q_student) per row at temperature T: p = softmax(teacher/T), q = softmax(student/T),
 * kl[r] = sum p (log p - log q). bwd (student only): dstudent[r] = (q - p) / T * dkl[r]. */
FS_API void fs_kl_div_fwd(int64_t rows, int64_t V, const float *student, const float *teacher, float temperature, float *kl);
FS_API void fs_kl_div_bwd(int64_t rows, int64_t V, const float *student, const float *teacher, float temperature,
                          const float *dkl, float *dstudent);

/* ---- fused AdamW (PyTorch semantics, decoupled weight decay), step >= 1 ----------------------------------
 * p -= lr*wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; p -= lr * (m/(1-b1^step)) / (sqrt(v/(1-b2^step)) + eps) */
FS_API void fs_adamw_step(int64_t n, float *param, const float *grad, float *m, float *v, float lr, float beta1,
                          float beta2, float eps, float weightDecay, int64_t step);

/* ---- bf16 conversion (round to nearest even; NaN stays NaN) -------------------------------------------- */
FS_API void fs_f32_to_bf16(int64_t n, const float *x, uint16_t *y);
FS_API void fs_bf16_to_f32(int64_t n, const uint16_t *x, float *y);

#ifdef __cplusplus
}
#endif
#endif
