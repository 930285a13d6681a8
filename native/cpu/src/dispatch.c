/* dispatch.c: runtime ISA selection and the exported fs_* wrappers (compiled once, no ISA flags).
 *
 * One table of kernel pointers per compiled variant (see fs_kernels.h). At load time the best variant the CPU
 * supports is chosen with __builtin_cpu_supports; fs_set_isa() can force a lower one (the tests use it to hold
 * every path to the reference). FS_ISA_AVX512_BF16 is the AVX-512 table with the vdpbf16ps bgemm swapped in.
 * When the build targets a non-x86 machine only the scalar table exists (FS_X86_VARIANTS undefined). */
#include "fs_kernels.h"

typedef struct {
#define FS_FIELD(name, params, args) void(*name) params;
  FS_KERNEL_LIST(FS_FIELD)
#undef FS_FIELD
} fs_table;

#define FS_ENTRY_scalar(name, params, args) fsk_##name##_scalar,
#define FS_ENTRY_avx2(name, params, args) fsk_##name##_avx2,
#define FS_ENTRY_avx512(name, params, args) fsk_##name##_avx512,
static fs_table T_scalar = {FS_KERNEL_LIST(FS_ENTRY_scalar)};
#ifdef FS_X86_VARIANTS
static fs_table T_avx2 = {FS_KERNEL_LIST(FS_ENTRY_avx2)};
static fs_table T_avx512 = {FS_KERNEL_LIST(FS_ENTRY_avx512)};
static fs_table T_avx512bf16 = {FS_KERNEL_LIST(FS_ENTRY_avx512)};
#endif

static const fs_table *g_table = &T_scalar;
static int g_isa = FS_ISA_SCALAR;
static int g_supported = -1;

static int detect(void) {
#ifdef FS_X86_VARIANTS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma")) {
    if (__builtin_cpu_supports("avx512bf16")) return FS_ISA_AVX512_BF16;
    return FS_ISA_AVX512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return FS_ISA_AVX2;
#endif
  return FS_ISA_SCALAR;
}

static void select_isa(int isa) {
  if (isa < 0) isa = 0;
  if (isa > g_supported) isa = g_supported;
#ifdef FS_X86_VARIANTS
  switch (isa) {
    case FS_ISA_AVX512_BF16: g_table = &T_avx512bf16; break;
    case FS_ISA_AVX512: g_table = &T_avx512; break;
    case FS_ISA_AVX2: g_table = &T_avx2; break;
    default: g_table = &T_scalar; isa = FS_ISA_SCALAR; break;
  }
#else
  isa = FS_ISA_SCALAR;
  g_table = &T_scalar;
#endif
  g_isa = isa;
}

__attribute__((constructor)) static void fs_init(void) {
#ifdef FS_X86_VARIANTS
  T_avx512bf16.bgemm = fsk_bgemm_avx512bf16;
#endif
  g_supported = detect();
  select_isa(g_supported);
}

FS_API int fs_abi_version(void) { return 1; }
FS_API int fs_isa(void) { return g_isa; }
FS_API int fs_isa_supported(void) { return g_supported; }
FS_API int fs_set_isa(int isa) {
  select_isa(isa);
  return g_isa;
}

#define FS_WRAP(name, params, args) \
  FS_API void fs_##name params { g_table->name args; }
FS_KERNEL_LIST(FS_WRAP)
