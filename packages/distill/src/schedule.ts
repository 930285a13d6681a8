// Learning-rate schedule: linear warm-up from 0 to lr over warmupSteps, then cosine decay to minLr at
// totalSteps (constant minLr after), as torchtune's get_cosine_schedule_with_warmup / Megatron's cosine.
export interface CosineSchedule {
  lr: number;
  minLr?: number;
  warmupSteps: number;
  totalSteps: number;
}

/** The learning rate of optimizer step `step` (0-based). */
export function cosineLr(step: number, s: CosineSchedule): number {
  const min = s.minLr ?? 0;
  if (s.warmupSteps > 0 && step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const t = Math.min(1, (step - s.warmupSteps) / span);
  return min + 0.5 * (s.lr - min) * (1 + Math.cos(Math.PI * t));
}
