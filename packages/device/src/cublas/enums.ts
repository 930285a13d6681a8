// cuBLAS ABI values, from NVIDIA's headers (CUDA 12; unchanged in 13):
//   library_types.h  cudaDataType_t:        CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14
//   cublas_api.h     cublasOperation_t:     CUBLAS_OP_N = 0, CUBLAS_OP_T = 1
//                    cublasComputeType_t:   CUBLAS_COMPUTE_32F = 68 (f32 accumulate, any allowed input type)
//                    cublasGemmAlgo_t:      CUBLAS_GEMM_DEFAULT = -1
//                    cublasMath_t:          CUBLAS_DEFAULT_MATH = 0, CUBLAS_PEDANTIC_MATH = 2,
//                                           CUBLAS_TF32_TENSOR_OP_MATH = 3,
//                                           CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION = 16
//                    cublasStatus_t:        see CUBLAS_STATUS below
// Checked against cublas_api.h as vendored in ggerganov/llama.cpp (include/cuda/cublas_api.h, CUBLAS 11.9; these
// enumerators have kept their values since) and a preprocessed CUDA toolkit library_types.h (CUDA_R_16BF = 14).
export const CUDA_R_32F = 0;
export const CUDA_R_16F = 2;
export const CUDA_R_16BF = 14;
export const CUBLAS_OP_N = 0;
export const CUBLAS_OP_T = 1;
export const CUBLAS_COMPUTE_32F = 68;
export const CUBLAS_GEMM_DEFAULT = -1;

export const CUBLAS_MATH = { default: 0, pedantic: 2, tf32: 3, disallowReducedPrecisionReduction: 16 } as const;
export type CublasMathMode = keyof typeof CUBLAS_MATH;

export const CUBLAS_STATUS: Readonly<Record<number, string>> = {
  0: 'CUBLAS_STATUS_SUCCESS', 1: 'CUBLAS_STATUS_NOT_INITIALIZED', 3: 'CUBLAS_STATUS_ALLOC_FAILED',
  7: 'CUBLAS_STATUS_INVALID_VALUE', 8: 'CUBLAS_STATUS_ARCH_MISMATCH', 11: 'CUBLAS_STATUS_MAPPING_ERROR',
  13: 'CUBLAS_STATUS_EXECUTION_FAILED', 14: 'CUBLAS_STATUS_INTERNAL_ERROR', 15: 'CUBLAS_STATUS_NOT_SUPPORTED',
  16: 'CUBLAS_STATUS_LICENSE_ERROR',
};

/** Element types the GEMM wrappers accept; the compute (accumulate) type is always f32. */
export type GemmDType = 'bf16' | 'f16' | 'f32';
export const CUDA_DTYPE: Readonly<Record<GemmDType, number>> = { f32: CUDA_R_32F, f16: CUDA_R_16F, bf16: CUDA_R_16BF };
