// One error type for every failed driver / runtime call: the call, the raw status and the vendor's text, so a log
// line is enough to look the failure up (cuda.h CUresult, hip_runtime_api.h hipError_t, cublas_api.h status).
export class GpuError extends Error {
  override readonly name = 'GpuError';
  constructor(readonly call: string, readonly code: number, detail: string) {
    super(`${call} failed with ${code}: ${detail}`);
  }
}
