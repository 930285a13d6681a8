// @farskip/distill: FarSkip-Collective self-distillation (FCSD) — losses, the training loop (schedule, clipping,
// accumulation, early stopping, data parallelism), resumable checkpoints — and the tokenized data pipeline.
export { forwardKl, hiddenL2, sftLoss } from './losses.js';
export type { KlOptions } from './losses.js';
export { cosineLr } from './schedule.js';
export type { CosineSchedule } from './schedule.js';
export { clipGradNorm } from './clip.js';
export { EarlyStopping } from './early-stopping.js';
export type { EarlyStoppingOptions } from './early-stopping.js';
export { saveCheckpoint, loadCheckpoint, listCheckpoints, checkpointName } from './checkpoint.js';
export type { TrainerState } from './checkpoint.js';
export { Trainer, TrainingDivergedError } from './trainer.js';
export type { BatchSource, StepMetrics, TrainConfig, TrainerOptions } from './trainer.js';
export * from './data/index.js';
