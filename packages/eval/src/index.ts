// @farskip/eval: perplexity, lm-evaluation-harness-style multiple-choice and exact-match generation tasks,
// teacher–student KL and top-1 agreement, comparison reports, and tasks built from held-out SOTU addresses.
export { perplexity, perplexityWindows } from './perplexity.js';
export type { PerplexityOptions, PerplexityResult, PerplexityWindow } from './perplexity.js';
export { encodePair, loglikelihoods } from './loglikelihood.js';
export type { LoglikelihoodOptions, LoglikelihoodRequest, LoglikelihoodResult } from './loglikelihood.js';
export { evaluateMultipleChoice, meanStderr, multipleChoiceExample, parseMultipleChoiceJsonl, readMultipleChoiceTask } from './multiple-choice.js';
export type { MultipleChoiceDetail, MultipleChoiceExample, MultipleChoiceOptions, MultipleChoiceResult } from './multiple-choice.js';
export { evaluateGeneration, exactMatch, generationExample, normalizeAnswer, parseGenerationJsonl, readGenerationTask, truncateAtStop } from './generation.js';
export type { GenerationDetail, GenerationExample, GenerationOptions, GenerationResult, NormalizeOptions } from './generation.js';
export { agreement, klDivergence, tokenWindows } from './agreement.js';
export type { AgreementOptions, AgreementResult } from './agreement.js';
export { evaluationReport, writeReport } from './report.js';
export type { EvaluationReport, ReportJsonRow, ReportRow, ReportTask } from './report.js';
export { parseJsonl, readJsonl, toJsonl } from './jsonl.js';
export { buildSotuTasks, loadSotu, sotuHeldOut, SOTU_HELD_OUT_FRACTION } from './tasks/sotu.js';
export type { SotuAddress, SotuAddressRef, SotuExample, SotuTaskOptions, SotuTasks } from './tasks/sotu.js';
export { loadShippedTask, shippedTaskPath, SHIPPED_TASKS } from './task-files.js';
export type { ShippedTask } from './task-files.js';
export type { EvalForwardOptions, ScoringModel, TextCodec } from './model.js';
