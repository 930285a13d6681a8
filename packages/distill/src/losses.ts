// The objectives of FarSkip-Collective self-distillation (FCSD) and its ablations.
//   forward KL  KL(teacher ‖ student) per token over logits, at temperature τ (× τ² so gradients keep their
//               scale, as Hinton et al.), averaged over the tokens the mask keeps (prompt tokens can be masked)
//   hidden L2   mean squared difference of final hidden states (ablation), × a coefficient
//   SFT         cross-entropy on the data's next tokens (the baseline the paper compares with)
import { crossEntropy, klDiv, mul, scale, sub, sum } from '@farskip/kernels';
import { Tensor } from '@farskip/tensor';

/** bf16 models: losses run on f32 logits and return an f32 loss (Megatron upcasts the logits the same way) */
const f32 = (t: Tensor): Tensor => (t.dtype === 'bf16' ? t.to('f32') : t);

export interface KlOptions {
  temperature?: number;
  /** [B·T] 1 = the token counts, 0 = masked (e.g. prompt tokens); default all count */
  mask?: Float32Array;
}

/** Mean over kept tokens of KL(teacher ‖ student); logits [B, T, V] (teacher frozen). */
export function forwardKl(studentLogits: Tensor, teacherLogits: Tensor, options: KlOptions = {}): Tensor {
  const T = options.temperature ?? 1;
  const perToken = klDiv(f32(studentLogits), f32(teacherLogits.detach()), { temperature: T, reduction: 'none' }).reshape(-1);
  const n = perToken.numel;
  let total: Tensor;
  let count = n;
  if (options.mask) {
    if (options.mask.length !== n) throw new Error(`forwardKl: mask has ${options.mask.length} entries for ${n} tokens`);
    count = options.mask.reduce((a, b) => a + b, 0);
    if (count === 0) throw new Error('forwardKl: the mask keeps no token; every position of the batch is masked');
    total = sum(mul(perToken, new Tensor(options.mask, [n])));
  } else {
    total = sum(perToken);
  }
  return scale(total, (T * T) / count);
}

/** coef · mean((h_student − h_teacher)²) over all elements. */
export function hiddenL2(studentHidden: Tensor, teacherHidden: Tensor, coef: number): Tensor {
  const d = sub(f32(studentHidden), f32(teacherHidden.detach()));
  return scale(sum(mul(d, d)), coef / d.numel);
}

/** Mean next-token cross-entropy; logits [B, T, V], targets i32 [B·T] (ignoreIndex −100 skips a token). */
export function sftLoss(logits: Tensor, targets: Int32Array, ignoreIndex = -100): Tensor {
  const V = logits.shape[logits.ndim - 1]!;
  return crossEntropy(f32(logits).reshape(-1, V), new Tensor(targets, [targets.length], { dtype: 'i32' }), { ignoreIndex });
}
