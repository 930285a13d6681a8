// tsBackend: the plain-TypeScript CpuBackend. Readable reference for the native kernels and the fallback when
// libfarskip_cpu.so is absent. Works on Float32Array and Float64Array (accumulation is always f64).

import type { CpuBackend } from '../types.js';
import { bgemm, groupedSgemm, groupedSgemmWgrad, sgemm, sgemmBatched } from './gemm.js';
import {
  addCol, addRow, axpby, embeddingBwd, embeddingFwd, mul, mulCol, mulRow, scale, siluBwd, siluFwd, sumAxis, swigluBwd,
  swigluFwd,
} from './elementwise.js';
import { rmsnormBwd, rmsnormFwd } from './norm.js';
import { logSoftmaxBwd, logSoftmaxFwd, softmaxBwd, softmaxFwd } from './softmax.js';
import { rope } from './rope.js';
import { attentionBwd, attentionFwd, attentionFwdCached } from './attention.js';
import { topk } from './topk.js';
import { crossEntropyBwd, crossEntropyFwd, klDivBwd, klDivFwd } from './losses.js';
import { adamwStep } from './adamw.js';
import { bf16ToF32, f32ToBf16 } from './bf16.js';

export const tsBackend: CpuBackend = Object.freeze({
  name: 'ts' as const,
  isa: () => 'ts',
  numThreads: () => 1,
  setNumThreads: (_n: number) => {},
  sgemm, sgemmBatched, bgemm, groupedSgemm, groupedSgemmWgrad,
  axpby, mul, scale, addRow, mulRow, addCol, mulCol, sumAxis,
  rmsnormFwd, rmsnormBwd,
  softmaxFwd, softmaxBwd, logSoftmaxFwd, logSoftmaxBwd,
  siluFwd, siluBwd, swigluFwd, swigluBwd,
  rope,
  embeddingFwd, embeddingBwd,
  attentionFwd, attentionFwdCached, attentionBwd,
  topk,
  crossEntropyFwd, crossEntropyBwd, klDivFwd, klDivBwd,
  adamwStep,
  f32ToBf16, bf16ToF32,
});

export { bf16BitsToNumber, numberToBf16Bits, BF16_QNAN } from './bf16.js';
