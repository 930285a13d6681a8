// @farskip/infer: the inference runner as a library — engine (continuous batching, multi-rank lockstep),
// OpenAI-compatible server, model loading, and the benchmark.
export { Engine, QueueFullError, Sequence } from './engine.js';
export type { EngineOptions, FinishReason, SequenceHooks, SequenceParams } from './engine.js';
export { loadForInference, resolveModelSource } from './load.js';
export type { LoadedModel, ModelSource } from './load.js';
export { InferenceServer, VERSION } from './server.js';
export type { ServeOptions } from './server.js';
export { ApiError } from './openai.js';
export { logprobsOf } from './logprobs.js';
export type { TokenLogprobs } from './logprobs.js';
export { CompletionText } from './text.js';
export { decodePlan, encodePlan, PlanChannel } from './plan.js';
export type { StepPlan } from './plan.js';
