// elementwise.cu: flat elementwise ops, row / column broadcasts, axis sum, SiLU / SwiGLU, f32 <-> bf16.
// Semantics: packages/kernels/src/backend/ts/elementwise.ts and bf16.ts. Outputs are overwritten; every output
// may alias an input of the same shape (each element is read before it is written, by the same thread).
//
// Shapes:  axpby / mul / scale / silu / swiglu: [n] (n is int64).
//          addRow / mulRow: a, out [rows, cols], b [cols]   (out[r,c] = a[r,c] op b[c])
//          addCol / mulCol: a, out [rows, cols], b [rows]   (out[r,c] = a[r,c] op b[r])
//          sumAxis: x [outer, dim, inner] -> out [outer, inner]
// Launch:  flat and broadcast kernels are grid-stride loops: block [256], grid [min(cdiv(total, 256), 65535)]
//          (any grid >= 1 is correct). sumAxis: block [32, 8], grid [cdiv(inner, 32), outer] (x = inner tiles,
//          y = outer; outer <= 65535), sharedBytes 0.
// The f32 and bf16 variants take the same arguments; in bf16 every tensor argument is bf16 and math is f32.
#include "fs_cuda.cuh"

template <typename T>
__device__ void axpby_impl(long long n, float alpha, const T *a, float beta, const T *b, T *out) {
  FS_GRID_STRIDE(i, n) fs_st(out + i, alpha * fs_ld(a + i) + beta * fs_ld(b + i));
}
template <typename T>
__device__ void mul_impl(long long n, const T *a, const T *b, T *out) {
  FS_GRID_STRIDE(i, n) fs_st(out + i, fs_ld(a + i) * fs_ld(b + i));
}
template <typename T>
__device__ void scale_impl(long long n, const T *a, float s, T *out) {
  FS_GRID_STRIDE(i, n) fs_st(out + i, fs_ld(a + i) * s);
}

// op: 0 add, 1 mul; byRow: b is indexed by column (addRow/mulRow) or by row (addCol/mulCol)
template <typename T, int OP, bool BY_COL_INDEX>
__device__ void bcast_impl(int rows, int cols, const T *a, const T *b, T *out) {
  const long long n = (long long)rows * cols;
  FS_GRID_STRIDE(i, n) {
    const float bv = BY_COL_INDEX ? fs_ld(b + (i % cols)) : fs_ld(b + (i / cols));
    const float av = fs_ld(a + i);
    fs_st(out + i, OP == 0 ? av + bv : av * bv);
  }
}

// block [32, 8]: threadIdx.x walks inner (coalesced), threadIdx.y splits dim; the 8 partial sums are added in
// a fixed order (deterministic). f64 accumulation as the CPU reference.
template <typename T>
__device__ void sum_axis_impl(int outer, int dim, int inner, const T *x, T *out) {
  __shared__ double part[8][33];
  const int o = blockIdx.y, i = blockIdx.x * 32 + threadIdx.x;
  double acc = 0;
  if (i < inner) {
    const T *base = x + (long long)o * dim * inner + i;
    for (int d = threadIdx.y; d < dim; d += blockDim.y) acc += (double)fs_ld(base + (long long)d * inner);
  }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && i < inner) {
    double s = 0;
    for (int y = 0; y < (int)blockDim.y; y++) s += part[y][threadIdx.x];
    fs_st(out + (long long)o * inner + i, (float)s);
  }
}

// silu(x) = x * sigmoid(x);  silu'(x) = s * (1 + x * (1 - s));  swiglu(g, u) = silu(g) * u
template <typename T>
__device__ void silu_fwd_impl(long long n, const T *x, T *y) {
  FS_GRID_STRIDE(i, n) { const float v = fs_ld(x + i); fs_st(y + i, v / (1.f + expf(-v))); }
}
template <typename T>
__device__ void silu_bwd_impl(long long n, const T *x, const T *dy, T *dx) {
  FS_GRID_STRIDE(i, n) {
    const float v = fs_ld(x + i), s = fs_sigmoid(v);
    fs_st(dx + i, fs_ld(dy + i) * s * (1.f + v * (1.f - s)));
  }
}
template <typename T>
__device__ void swiglu_fwd_impl(long long n, const T *gate, const T *up, T *y) {
  FS_GRID_STRIDE(i, n) { const float g = fs_ld(gate + i); fs_st(y + i, (g / (1.f + expf(-g))) * fs_ld(up + i)); }
}
template <typename T>
__device__ void swiglu_bwd_impl(long long n, const T *gate, const T *up, const T *dy, T *dgate, T *dup) {
  FS_GRID_STRIDE(i, n) {
    const float g = fs_ld(gate + i), u = fs_ld(up + i), d = fs_ld(dy + i), s = fs_sigmoid(g);
    fs_st(dgate + i, d * u * s * (1.f + g * (1.f - s)));
    fs_st(dup + i, d * g * s);
  }
}

// ---- exported kernels --------------------------------------------------------------------------------------

extern "C" __global__ void fs_axpby_f32(long long n, float alpha, const float *a, float beta, const float *b, float *out) { axpby_impl(n, alpha, a, beta, b, out); }
extern "C" __global__ void fs_axpby_bf16(long long n, float alpha, const bf16 *a, float beta, const bf16 *b, bf16 *out) { axpby_impl(n, alpha, a, beta, b, out); }
extern "C" __global__ void fs_mul_f32(long long n, const float *a, const float *b, float *out) { mul_impl(n, a, b, out); }
extern "C" __global__ void fs_mul_bf16(long long n, const bf16 *a, const bf16 *b, bf16 *out) { mul_impl(n, a, b, out); }
extern "C" __global__ void fs_scale_f32(long long n, const float *a, float s, float *out) { scale_impl(n, a, s, out); }
extern "C" __global__ void fs_scale_bf16(long long n, const bf16 *a, float s, bf16 *out) { scale_impl(n, a, s, out); }

extern "C" __global__ void fs_add_row_f32(int rows, int cols, const float *a, const float *b, float *out) { bcast_impl<float, 0, true>(rows, cols, a, b, out); }
extern "C" __global__ void fs_add_row_bf16(int rows, int cols, const bf16 *a, const bf16 *b, bf16 *out) { bcast_impl<bf16, 0, true>(rows, cols, a, b, out); }
extern "C" __global__ void fs_mul_row_f32(int rows, int cols, const float *a, const float *b, float *out) { bcast_impl<float, 1, true>(rows, cols, a, b, out); }
extern "C" __global__ void fs_mul_row_bf16(int rows, int cols, const bf16 *a, const bf16 *b, bf16 *out) { bcast_impl<bf16, 1, true>(rows, cols, a, b, out); }
extern "C" __global__ void fs_add_col_f32(int rows, int cols, const float *a, const float *b, float *out) { bcast_impl<float, 0, false>(rows, cols, a, b, out); }
extern "C" __global__ void fs_add_col_bf16(int rows, int cols, const bf16 *a, const bf16 *b, bf16 *out) { bcast_impl<bf16, 0, false>(rows, cols, a, b, out); }
extern "C" __global__ void fs_mul_col_f32(int rows, int cols, const float *a, const float *b, float *out) { bcast_impl<float, 1, false>(rows, cols, a, b, out); }
extern "C" __global__ void fs_mul_col_bf16(int rows, int cols, const bf16 *a, const bf16 *b, bf16 *out) { bcast_impl<bf16, 1, false>(rows, cols, a, b, out); }

extern "C" __global__ void fs_sum_axis_f32(int outer, int dim, int inner, const float *x, float *out) { sum_axis_impl(outer, dim, inner, x, out); }
extern "C" __global__ void fs_sum_axis_bf16(int outer, int dim, int inner, const bf16 *x, bf16 *out) { sum_axis_impl(outer, dim, inner, x, out); }

extern "C" __global__ void fs_silu_fwd_f32(long long n, const float *x, float *y) { silu_fwd_impl(n, x, y); }
extern "C" __global__ void fs_silu_fwd_bf16(long long n, const bf16 *x, bf16 *y) { silu_fwd_impl(n, x, y); }
extern "C" __global__ void fs_silu_bwd_f32(long long n, const float *x, const float *dy, float *dx) { silu_bwd_impl(n, x, dy, dx); }
extern "C" __global__ void fs_silu_bwd_bf16(long long n, const bf16 *x, const bf16 *dy, bf16 *dx) { silu_bwd_impl(n, x, dy, dx); }
extern "C" __global__ void fs_swiglu_fwd_f32(long long n, const float *gate, const float *up, float *y) { swiglu_fwd_impl(n, gate, up, y); }
extern "C" __global__ void fs_swiglu_fwd_bf16(long long n, const bf16 *gate, const bf16 *up, bf16 *y) { swiglu_fwd_impl(n, gate, up, y); }
extern "C" __global__ void fs_swiglu_bwd_f32(long long n, const float *gate, const float *up, const float *dy, float *dgate, float *dup) { swiglu_bwd_impl(n, gate, up, dy, dgate, dup); }
extern "C" __global__ void fs_swiglu_bwd_bf16(long long n, const bf16 *gate, const bf16 *up, const bf16 *dy, bf16 *dgate, bf16 *dup) { swiglu_bwd_impl(n, gate, up, dy, dgate, dup); }

// f32 -> bf16: round to nearest even, NaN -> 0x7FC0; bf16 -> f32 exact. x, y [n].
extern "C" __global__ void fs_f32_to_bf16(long long n, const float *x, bf16 *y) {
  FS_GRID_STRIDE(i, n) fs_st(y + i, x[i]);
}
extern "C" __global__ void fs_bf16_to_f32(long long n, const bf16 *x, float *y) {
  FS_GRID_STRIDE(i, n) y[i] = fs_ld(x + i);
}
