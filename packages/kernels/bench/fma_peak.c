/* fma_peak.c: the machine's f32 FMA throughput ceiling, measured by register-only FMA loops.
 * 12 independent accumulators per thread (more than latency x pipes = 4 x 2 on Zen 4), the FMAs written as inline
 * asm so the compiler can neither spill, fold nor vectorise differently. Built by bench/gemm.mjs with
 *   cc -O2 -shared -fPIC -pthread fma_peak.c -o <tmp>/libfma_peak.so
 * (no -m flags needed: the asm names the instructions; callers check CPU support first).
 *   double fma_peak_gflops(int isa, int threads, long iters)   isa 512 = AVX-512 zmm, 256 = AVX2/FMA3 ymm
 * Returns GFLOP/s (1 FMA = 2 FLOP) over all threads, timed from the first thread start to the last thread end. */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>

struct job { int isa; long iters; };

static void *run(void *p) {
  struct job *j = (struct job *)p;
  long n = j->iters;
  if (j->isa == 512) {
    __asm__ volatile(
      "vxorps %%zmm0, %%zmm0, %%zmm0\n\t" "vxorps %%zmm1, %%zmm1, %%zmm1\n\t" "vxorps %%zmm2, %%zmm2, %%zmm2\n\t"
      "vxorps %%zmm3, %%zmm3, %%zmm3\n\t" "vxorps %%zmm4, %%zmm4, %%zmm4\n\t" "vxorps %%zmm5, %%zmm5, %%zmm5\n\t"
      "vxorps %%zmm6, %%zmm6, %%zmm6\n\t" "vxorps %%zmm7, %%zmm7, %%zmm7\n\t" "vxorps %%zmm8, %%zmm8, %%zmm8\n\t"
      "vxorps %%zmm9, %%zmm9, %%zmm9\n\t" "vxorps %%zmm10, %%zmm10, %%zmm10\n\t" "vxorps %%zmm11, %%zmm11, %%zmm11\n\t"
      "vxorps %%zmm12, %%zmm12, %%zmm12\n\t" "vxorps %%zmm13, %%zmm13, %%zmm13\n\t"
      "1:\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm0\n\t" "vfmadd231ps %%zmm12, %%zmm13, %%zmm1\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm2\n\t" "vfmadd231ps %%zmm12, %%zmm13, %%zmm3\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm4\n\t" "vfmadd231ps %%zmm12, %%zmm13, %%zmm5\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm6\n\t" "vfmadd231ps %%zmm12, %%zmm13, %%zmm7\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm8\n\t" "vfmadd231ps %%zmm12, %%zmm13, %%zmm9\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm10\n\t" "vfmadd231ps %%zmm12, %%zmm13, %%zmm11\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(n) : : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm12", "xmm13", "cc");
  } else {
    __asm__ volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t" "vxorps %%ymm1, %%ymm1, %%ymm1\n\t" "vxorps %%ymm2, %%ymm2, %%ymm2\n\t"
      "vxorps %%ymm3, %%ymm3, %%ymm3\n\t" "vxorps %%ymm4, %%ymm4, %%ymm4\n\t" "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
      "vxorps %%ymm6, %%ymm6, %%ymm6\n\t" "vxorps %%ymm7, %%ymm7, %%ymm7\n\t" "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"
      "vxorps %%ymm9, %%ymm9, %%ymm9\n\t" "vxorps %%ymm10, %%ymm10, %%ymm10\n\t" "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
      "vxorps %%ymm12, %%ymm12, %%ymm12\n\t" "vxorps %%ymm13, %%ymm13, %%ymm13\n\t"
      "1:\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm0\n\t" "vfmadd231ps %%ymm12, %%ymm13, %%ymm1\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm2\n\t" "vfmadd231ps %%ymm12, %%ymm13, %%ymm3\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm4\n\t" "vfmadd231ps %%ymm12, %%ymm13, %%ymm5\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm6\n\t" "vfmadd231ps %%ymm12, %%ymm13, %%ymm7\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm8\n\t" "vfmadd231ps %%ymm12, %%ymm13, %%ymm9\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm10\n\t" "vfmadd231ps %%ymm12, %%ymm13, %%ymm11\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(n) : : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm12", "xmm13", "cc");
  }
  return 0;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

double fma_peak_gflops(int isa, int threads, long iters) {
  if (threads < 1) threads = 1;
  if (threads > 64) threads = 64;
  pthread_t tid[64];
  struct job j = { isa, iters };
  double t0 = now();
  for (int i = 1; i < threads; i++) pthread_create(&tid[i], 0, run, &j);
  run(&j);
  for (int i = 1; i < threads; i++) pthread_join(tid[i], 0);
  double dt = now() - t0;
  double flop_per_iter = 12.0 * (isa == 512 ? 16 : 8) * 2.0;
  return flop_per_iter * (double)iters * threads / dt * 1e-9;
}
