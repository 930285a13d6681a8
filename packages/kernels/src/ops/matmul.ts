// Matrix products: matmul (torch.matmul semantics for the ranks models use), linear (nn.Linear layout), and the
// grouped expert GEMM. f32/f64 run sgemm; bf16 x bf16 runs the bf16 GEMM (f32 accumulate) and rounds to bf16.
import { Tensor, formatShape, recordOp } from '@farskip/tensor';
import { gpuGemm } from '../backend/cuda/ops.js';
import { cpuBackend } from '../backend/select.js';
import { add } from './elementwise.js';
import { arr, commonDtype, describe, requireIndex } from './util.js';

/**
 * op(a) @ op(b) for 2-D [M,K]x[K,N] or batched 3-D [B,M,K]x[B,K,N] operands, where transA / transB mean
 * the operand is stored transposed. Differentiable (its backward is itself, so it composes).
 */
export function mm(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  const dtype = commonDtype('matmul', { a, b });
  if (a.ndim !== b.ndim || (a.ndim !== 2 && a.ndim !== 3)) {
    throw new Error(`matmul: a ${describe(a)} and b ${describe(b)} must both be 2-D or both 3-D here`);
  }
  const batched = a.ndim === 3;
  const batch = batched ? a.shape[0]! : 1;
  if (batched && b.shape[0] !== batch) throw new Error(`matmul: batch sizes differ: a ${describe(a)} vs b ${describe(b)}`);
  const nd = a.ndim;
  const ar = a.shape[nd - 2]!, ac = a.shape[nd - 1]!, br = b.shape[nd - 2]!, bc = b.shape[nd - 1]!;
  const M = transA ? ac : ar, K = transA ? ar : ac;
  const Kb = transB ? bc : br, N = transB ? br : bc;
  if (K !== Kb) {
    throw new Error(`matmul: inner dimensions differ: a ${describe(a)}${transA ? 'ᵀ' : ''} has K=${K} but b ${describe(b)}${transB ? 'ᵀ' : ''} has K=${Kb}`);
  }
  const shape = batched ? [batch, M, N] : [M, N];
  let out: Tensor;
  if (a.storage !== null || b.storage !== null) out = gpuGemm(a, b, transA, transB, { batch, M, N, K }, shape);
  else if (dtype === 'bf16') {
    const be = cpuBackend(dtype);
    const c = Tensor.empty([batch * M * N]).data as Float32Array;
    for (let i = 0; i < batch; i++) {
      be.bgemm(transA, transB, M, N, K, 1, (a.data as Uint16Array).subarray(i * ar * ac), ac, (b.data as Uint16Array).subarray(i * br * bc), bc,
        0, c.subarray(i * M * N), N);
    }
    out = new Tensor(c, shape).to('bf16').detach();
  } else {
    out = Tensor.empty(shape, { dtype });
    cpuBackend(dtype).sgemmBatched(batch, transA, transB, M, N, K, 1, arr(a), ac, ar * ac, arr(b), bc, br * bc, 0, arr(out), N, M * N);
  }
  return recordOp(out, 'matmul', [a, b], (g) => [
    a.requiresGrad ? (transA ? mm(b, g, transB, true) : mm(g, b, false, !transB)) : null,
    b.requiresGrad ? (transB ? mm(g, a, true, transA) : mm(a, g, !transA, false)) : null,
  ]);
}

/**
 * torch.matmul for a [..., M, K] and b [K, N] or [..., K, N] (equal leading dims), and 1-D vectors.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) throw new Error(`matmul: operands must have at least one dimension, got a ${describe(a)} and b ${describe(b)}`);
  if (a.ndim === 1 && b.ndim === 1) return mm(a.unsqueeze(0), b.unsqueeze(1)).reshape();
  if (a.ndim === 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.ndim === 1) return matmul(a, b.unsqueeze(1)).squeeze(-1);
  if (a.ndim === 2 && b.ndim === 2) return mm(a, b);
  if (b.ndim === 2) {
    const lead = a.shape.slice(0, -1);
    return mm(a.reshape(-1, a.shape[a.ndim - 1]!), b).reshape(...lead, b.shape[1]!);
  }
  const leadA = a.shape.slice(0, -2), leadB = b.shape.slice(0, -2);
  if (a.ndim === 2) return matmul(a.expand(...leadB, ...a.shape), b);
  if (leadA.length !== leadB.length || leadA.some((d, i) => d !== leadB[i])) {
    throw new Error(`matmul: batch dims of a ${describe(a)} and b ${describe(b)} differ: ${formatShape(leadA)} vs ${formatShape(leadB)}`);
  }
  const B = leadA.reduce((p, d) => p * d, 1);
  const out = mm(a.reshape(B, a.shape[a.ndim - 2]!, a.shape[a.ndim - 1]!), b.reshape(B, b.shape[b.ndim - 2]!, b.shape[b.ndim - 1]!));
  return out.reshape(...leadA, out.shape[1]!, out.shape[2]!);
}

/** nn.Linear: x [..., in] @ weight[out, in]ᵀ (+ bias [out]). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.ndim !== 2) throw new Error(`linear: weight must be 2-D [out, in], got ${describe(weight)}`);
  const inF = x.shape[x.ndim - 1];
  if (inF !== weight.shape[1]) throw new Error(`linear: input ${describe(x)} has ${inF} features but weight ${describe(weight)} expects ${weight.shape[1]}`);
  const lead = x.shape.slice(0, -1);
  let y = mm(x.reshape(-1, inF), weight, false, true);
  if (bias) y = add(y, bias);
  return y.reshape(...lead, weight.shape[0]!);
}

/** Converts per-expert row counts [E] to offsets [E+1] (i32). */
export function groupOffsets(groupSizes: ArrayLike<number>): Int32Array {
  const off = new Int32Array(groupSizes.length + 1);
  for (let e = 0; e < groupSizes.length; e++) off[e + 1] = off[e]! + groupSizes[e]!;
  return off;
}

export interface GroupedMatmulOptions {
  /** true when each expert matrix is stored [N, K] (nn.Linear / Hugging Face layout). */
  transW?: boolean;
}

/**
 * Grouped expert GEMM: x [rows, K] whose rows are sorted by expert, groups given by `groupSizes` [E] (i32,
 * sums to rows); w [E, K, N] (or [E, N, K] with transW). Returns [rows, N]: each group times its expert.
 */
export function groupedMatmul(x: Tensor, w: Tensor, groupSizes: Tensor, options: GroupedMatmulOptions = {}): Tensor {
  const transW = options.transW ?? false;
  const dtypeIn = commonDtype('groupedMatmul', { x, w });
  if (dtypeIn === 'bf16') return groupedMatmul(x.to('f32'), w.to('f32'), groupSizes, options).to('bf16');
  const sizes = requireIndex('groupedMatmul', 'groupSizes', groupSizes);
  if (x.ndim !== 2 || w.ndim !== 3) throw new Error(`groupedMatmul: expected x [rows, K] and w [E, K, N], got x ${describe(x)} and w ${describe(w)}`);
  const E = w.shape[0]!;
  const K = transW ? w.shape[2]! : w.shape[1]!, N = transW ? w.shape[1]! : w.shape[2]!;
  if (x.shape[1] !== K) throw new Error(`groupedMatmul: x ${describe(x)} has K=${x.shape[1]} but w ${describe(w)} expects K=${K}`);
  if (sizes.length !== E) throw new Error(`groupedMatmul: groupSizes has ${sizes.length} entries but w has ${E} experts`);
  const offsets = groupOffsets(sizes);
  if (offsets[E] !== x.shape[0] || sizes.some((s) => s < 0)) {
    throw new Error(`groupedMatmul: groupSizes must be non-negative and sum to the ${x.shape[0]} rows of x, got sum ${offsets[E]}`);
  }
  return groupedForward(x, w, offsets, transW, N, K);
}

function groupedForward(x: Tensor, w: Tensor, offsets: Int32Array, transW: boolean, N: number, K: number): Tensor {
  const E = offsets.length - 1;
  const be = cpuBackend(x.dtype);
  const y = Tensor.empty([x.shape[0]!, N], { dtype: x.dtype });
  be.groupedSgemm(E, offsets, transW, N, K, arr(x), arr(w), 0, arr(y));
  return recordOp(y, 'groupedMatmul', [x, w], (g) => {
    let dx: Tensor | null = null, dw: Tensor | null = null;
    if (x.requiresGrad) dx = groupedForward(g, w, offsets, !transW, K, N);
    if (w.requiresGrad) {
      // dW is not itself differentiable here (no double backward through expert weights)
      dw = Tensor.empty(w.shape, { dtype: w.dtype }); // beta 0: every expert's block is written, empty groups as zeros
      cpuBackend(x.dtype).groupedSgemmWgrad(E, offsets, transW, N, K, arr(x), arr(g), 0, arr(dw));
    }
    return [dx, dw];
  });
}
