// @farskip/layers: the FarSkip two-stream block, TP/EP/DP parallel layers and the schedules that overlap every
// collective with computation (forward and backward), with per-rank instrumentation.
export { ParallelContext, solo } from './context.js';
export type { MeshShape } from './context.js';
export { allToAllTensor, allReduceTensor, copyToGroup, issued, resolved } from './comm.js';
export type { CommEnv, Pending, Schedule } from './comm.js';
export { ColumnParallelLinear, RowParallelLinear } from './linear.js';
export { Attention, deinterleave } from './attention.js';
export type { AttentionConfig, AttentionLike, AttentionState, AttentionWeights } from './attention.js';
export { SwiGluMlp } from './mlp.js';
export type { MlpLike, MlpWeights } from './mlp.js';
export { Router, normalizeRows } from './router.js';
export type { RouterConfig, RouterWeights, Routing } from './router.js';
export { MoE, sortCopiesByExpert, sourceToExpertMajor } from './moe.js';
export type { CombinedTokens, DispatchedTokens, RoutedTokens, ExpertWeights, MoEConfig, MoEForm, MoELike, MoEOptions, MoEWeights } from './moe.js';
export { layerPlan } from './connectivity.js';
export type { FarSkipMode, FarSkipOptions, LayerConnectivity } from './connectivity.js';
export { FarSkipStack, isMoE } from './stack.js';
export type { BlockModules, StackRunOptions } from './stack.js';
export { standardForward } from './standard.js';
export { buildStack, randomStackWeights } from './build.js';
export type { BlockWeights, StackConfig, StackWeights } from './build.js';
export { GradientBuckets } from './ddp.js';
export type { GradientBucketsOptions } from './ddp.js';
export { dataParallel, tracedBackward } from './training.js';
export type { DataParallel } from './training.js';
export { Tracer, perfettoTrace, now } from './trace.js';
export type { CommSpan, ComputeSpan, IdleSpan, OverlapStats, Span, TraceEvent, TracePhase } from './trace.js';
