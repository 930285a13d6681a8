// loss.cu: cross-entropy and distillation KL, forward and backward.
// Semantics: packages/kernels/src/backend/ts/losses.ts.
//
//   crossEntropyFwd: loss[r] = lse[r] - logits[r, t]; lse[r] = logsumexp(logits[r, :]) (written for every row;
//                    -inf for an all -inf row); t == ignoreIndex gives loss 0.
//   crossEntropyBwd: dlogits[r, :] = (softmax(logits[r]) - onehot(t)) * dloss[r], softmax recomputed from the
//                    stored lse; rows with t == ignoreIndex get 0.
//   klDivFwd:        forward KL(P_teacher || Q_student) per row at temperature T:
//                    log p = teacher/T - lse(teacher/T), log q = student/T - lse(student/T),
//                    kl[r] = sum_c p (log p - log q) (terms with p == 0 contribute 0)
//   klDivBwd:        dstudent[r, :] = (q - p) / T * dkl[r]   (both lse recomputed)
//
// Shapes: logits, dlogits, student, teacher, dstudent [rows, V] (f32, or bf16 in the _bf16 variants);
//         targets [rows] int32; loss, lse, dloss, kl, dkl [rows] always f32. Outputs overwritten.
// Launch (all): grid [rows], block [256] (any multiple of FS_WARP <= 1024), sharedBytes 0. One block per row.
// Targets are not range-checked (the caller validates 0 <= t < V or t == ignoreIndex).
#include "fs_cuda.cuh"

// log(sum(exp(x[0..n) * invT))) with max subtraction; -inf for an all -inf row. Every thread gets it.
template <typename T>
__device__ float block_lse(const T *x, int n, float invT, float *scratch) {
  float m = -INFINITY;
  for (int c = threadIdx.x; c < n; c += blockDim.x) m = fs_nanmax(m, fs_ld(x + c) * invT);
  const float mx = fs_block_max(m, scratch);
  if (mx == -INFINITY) return -INFINITY;  // uniform over the block: no thread skips a barrier
  float s = 0.f;
  for (int c = threadIdx.x; c < n; c += blockDim.x) s += expf(fs_ld(x + c) * invT - mx);
  return mx + logf(fs_block_sum(s, scratch));
}

template <typename T>
__device__ void ce_fwd_impl(int rows, int V, const T *logits, const int *targets, int ignoreIndex, float *loss,
                            float *lse) {
  __shared__ float scratch[FS_MAX_WARPS];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const T *lr = logits + (long long)r * V;
  const float l = block_lse(lr, V, 1.f, scratch);
  if (threadIdx.x == 0) {
    lse[r] = l;
    const int t = targets[r];
    loss[r] = t == ignoreIndex ? 0.f : l - fs_ld(lr + t);
  }
}

template <typename T>
__device__ void ce_bwd_impl(int rows, int V, const T *logits, const int *targets, int ignoreIndex, const float *lse,
                            const float *dloss, T *dlogits) {
  const int r = blockIdx.x;
  if (r >= rows) return;
  const long long base = (long long)r * V;
  const int t = targets[r];
  if (t == ignoreIndex) {
    for (int c = threadIdx.x; c < V; c += blockDim.x) fs_st(dlogits + base + c, 0.f);
    return;
  }
  const float l = lse[r], g = dloss[r];
  for (int c = threadIdx.x; c < V; c += blockDim.x) {
    const float p = expf(fs_ld(logits + base + c) - l);
    fs_st(dlogits + base + c, (c == t ? p - 1.f : p) * g);
  }
}

template <typename T>
__device__ void kl_fwd_impl(int rows, int V, const T *student, const T *teacher, float temperature, float *kl) {
  __shared__ float scratch[FS_MAX_WARPS];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const long long base = (long long)r * V;
  const float invT = 1.f / temperature;
  const float lseP = block_lse(teacher + base, V, invT, scratch);
  const float lseQ = block_lse(student + base, V, invT, scratch);
  float s = 0.f;
  for (int c = threadIdx.x; c < V; c += blockDim.x) {
    const float logp = fs_ld(teacher + base + c) * invT - lseP;
    const float p = expf(logp);
    if (p == 0.f) continue;
    s += p * (logp - (fs_ld(student + base + c) * invT - lseQ));
  }
  s = fs_block_sum(s, scratch);
  if (threadIdx.x == 0) kl[r] = s;
}

template <typename T>
__device__ void kl_bwd_impl(int rows, int V, const T *student, const T *teacher, float temperature, const float *dkl,
                            T *dstudent) {
  __shared__ float scratch[FS_MAX_WARPS];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const long long base = (long long)r * V;
  const float invT = 1.f / temperature;
  const float lseP = block_lse(teacher + base, V, invT, scratch);
  const float lseQ = block_lse(student + base, V, invT, scratch);
  const float g = dkl[r] * invT;
  for (int c = threadIdx.x; c < V; c += blockDim.x) {
    const float p = expf(fs_ld(teacher + base + c) * invT - lseP);
    const float q = expf(fs_ld(student + base + c) * invT - lseQ);
    fs_st(dstudent + base + c, (q - p) * g);
  }
}

extern "C" __global__ void fs_cross_entropy_fwd_f32(int rows, int V, const float *logits, const int *targets, int ignoreIndex, float *loss, float *lse) { ce_fwd_impl(rows, V, logits, targets, ignoreIndex, loss, lse); }
extern "C" __global__ void fs_cross_entropy_fwd_bf16(int rows, int V, const bf16 *logits, const int *targets, int ignoreIndex, float *loss, float *lse) { ce_fwd_impl(rows, V, logits, targets, ignoreIndex, loss, lse); }
extern "C" __global__ void fs_cross_entropy_bwd_f32(int rows, int V, const float *logits, const int *targets, int ignoreIndex, const float *lse, const float *dloss, float *dlogits) { ce_bwd_impl(rows, V, logits, targets, ignoreIndex, lse, dloss, dlogits); }
extern "C" __global__ void fs_cross_entropy_bwd_bf16(int rows, int V, const bf16 *logits, const int *targets, int ignoreIndex, const float *lse, const float *dloss, bf16 *dlogits) { ce_bwd_impl(rows, V, logits, targets, ignoreIndex, lse, dloss, dlogits); }
extern "C" __global__ void fs_kl_div_fwd_f32(int rows, int V, const float *student, const float *teacher, float temperature, float *kl) { kl_fwd_impl(rows, V, student, teacher, temperature, kl); }
extern "C" __global__ void fs_kl_div_fwd_bf16(int rows, int V, const bf16 *student, const bf16 *teacher, float temperature, float *kl) { kl_fwd_impl(rows, V, student, teacher, temperature, kl); }
extern "C" __global__ void fs_kl_div_bwd_f32(int rows, int V, const float *student, const float *teacher, float temperature, const float *dkl, float *dstudent) { kl_bwd_impl(rows, V, student, teacher, temperature, dkl, dstudent); }
extern "C" __global__ void fs_kl_div_bwd_bf16(int rows, int V, const bf16 *student, const bf16 *teacher, float temperature, const float *dkl, bf16 *dstudent) { kl_bwd_impl(rows, V, student, teacher, temperature, dkl, dstudent); }
