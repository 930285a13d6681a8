/* bf16.c: f32 <-> bf16 conversion. Round to nearest even; NaN -> 0x7FC0 (PyTorch's c10::BFloat16 does the same).
 * Integer arithmetic (not vcvtneps2bf16, which flushes denormals) so every ISA build gives identical bits. */
#include "fs_internal.h"

static void f2b_body(void *p, int64_t b, int64_t e) {
  const float *x = ((const void **)p)[0];
  uint16_t *y = ((void **)p)[1];
  for (int64_t i = b; i < e; i++) {
    uint32_t u = fs_f2u(x[i]);
    uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    y[i] = (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC0u : r);
  }
}
static void b2f_body(void *p, int64_t b, int64_t e) {
  const uint16_t *x = ((const void **)p)[0];
  float *y = ((void **)p)[1];
  for (int64_t i = b; i < e; i++) y[i] = fs_u2f((uint32_t)x[i] << 16);
}

void FS_FN(f32_to_bf16)(int64_t n, const float *x, uint16_t *y) {
  const void *c[2] = {x, y};
  fs_parallel_for(n, 1 << 16, f2b_body, c);
}
void FS_FN(bf16_to_f32)(int64_t n, const uint16_t *x, float *y) {
  const void *c[2] = {x, y};
  fs_parallel_for(n, 1 << 16, b2f_body, c);
}
