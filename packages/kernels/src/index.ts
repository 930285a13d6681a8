// @farskip/kernels: differentiable ops over @farskip/tensor. f32/bf16 run the native CPU library
// (native/cpu, AVX-512/AVX2/scalar) when built, else the plain-TS reference; f64 always runs the reference.
// On cuda:N tensors, the elementwise ops (add/sub/mul/scale, row and column broadcasts), silu/swiglu, rmsNorm,
// softmax/logSoftmax (last dim) and matmul run on the GPU (backend/cuda/ops.ts); other ops say they are CPU-only.
import { registerEngineOps } from '@farskip/tensor';
import { cpuBackend } from './backend/select.js';
import type { FloatArray } from './backend/types.js';
import { gpuAddInPlace, gpuCast } from './backend/cuda/ops.js';
import { add } from './ops/elementwise.js';

export { matmul, mm, linear, groupedMatmul, groupOffsets } from './ops/matmul.js';
export type { GroupedMatmulOptions } from './ops/matmul.js';
export { add, sub, mul, scale, neg, addScalar, sum, mean } from './ops/elementwise.js';
export { rmsNorm } from './ops/norm.js';
export { softmax, logSoftmax, silu, swiglu, sigmoid } from './ops/activation.js';
export { rope, ropeInvFreq } from './ops/rope.js';
export type { RopeOptions } from './ops/rope.js';
export { embedding } from './ops/embedding.js';
export { attention, KVCache } from './ops/attention.js';
export type { AttentionOptions } from './ops/attention.js';
export { topk } from './ops/topk.js';
export type { TopK } from './ops/topk.js';
export { crossEntropy, klDiv } from './ops/loss.js';
export type { CrossEntropyOptions, KlDivOptions, Reduction } from './ops/loss.js';
export { AdamW, adamwStep } from './ops/adamw.js';
export type { AdamWOptions } from './ops/adamw.js';
export { useBackend, cpuBackend, backendInfo } from './backend/select.js';
export type { BackendChoice } from './backend/select.js';
export { tsBackend } from './backend/ts/index.js';
export { loadNativeBackend, nativeLibraryStatus } from './backend/native/index.js';
export type { CpuBackend, FloatArray } from './backend/types.js';
// The CUDA kernels of native/cuda (a fatbin loaded through @farskip/device) and their launch manifest.
export { CudaKernelModule, fatbinPath } from './backend/cuda/module.js';
export { evalRule, loadManifest, manifestPath, prepareLaunch } from './backend/cuda/manifest.js';
export type { DeviceAddress, KernelArg, KernelManifest, KernelParam, KernelParamKind, KernelSpec, Launch } from './backend/cuda/manifest.js';

// Gradient accumulation through the kernels (one fused axpby instead of the engine's plain loop).
registerEngineOps('cpu', {
  add: (a, b) => add(a.detach(), b.detach()),
  addInPlace(dst, src) {
    if (dst.dtype === 'bf16') { (dst.data as Uint16Array).set(add(dst.detach(), src.detach()).data as Uint16Array); return; }
    const d = dst.data as FloatArray;
    cpuBackend(dst.dtype).axpby(d.length, 1, d, 1, src.data as FloatArray, d);
  },
});

// The same for every cuda:N device: the sum through the GPU add, in place through fs_axpby on the compute stream,
// casts f32 <-> bf16 through the conversion kernels. (hip:N has no kernels yet, so nothing is registered for it: a
// second gradient contribution to a hip:N leaf throws 'no engine ops registered'.)
registerEngineOps('cuda', {
  add: (a, b) => add(a.detach(), b.detach()),
  addInPlace: gpuAddInPlace,
  cast: gpuCast,
});
