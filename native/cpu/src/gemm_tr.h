/* gemm_tr.h: AVX-512 16x16 f32 in-register transpose, used to pack / copy transposed GEMM operands (stored
 * [N, K] or [M, K] and needed k-major) without scalar gathers: 16 row loads, 64 shuffles, 16 stores.
 * Only meaningful in the AVX-512 variant; include after immintrin.h. */
#ifndef FS_GEMM_TR_H
#define FS_GEMM_TR_H
#if defined(__AVX512F__)
#include <immintrin.h>

/* r[i] lane j  ->  r[j] lane i */
static inline __attribute__((always_inline)) void fs_tr16x16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) { /* 32-bit interleave of row pairs: a0 b0 a1 b1 | a2 b2 a3 b3 (per 128-bit lane) */
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++) { /* 64-bit interleave: r[4i + j] = rows 4i..4i+3 of column 4L + j in lane L */
    __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) { /* 128-bit lane shuffles: gather the four row groups of each column */
    t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
    t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
    r[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xDD);
  }
}

static inline __mmask16 fs_mask16(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

/* Load a rows x kn block (rows <= 16, kn <= 16) of a row-major matrix (row stride ld) and transpose it:
 * on return r[kk] lane i = src[i*ld + kk] (zero for i >= rows or kk >= kn). */
static inline __attribute__((always_inline)) void fs_load_tr16(const float *src, int64_t ld, int rows, int64_t kn,
                                                               __m512 r[16]) {
  __mmask16 km = fs_mask16(kn);
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(km, src + i * ld) : _mm512_setzero_ps();
  fs_tr16x16(r);
}
#endif
#endif
