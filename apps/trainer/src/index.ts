// The trainer as a library (used by its tests and by the end-to-end pipeline).
export { ConfigSchema, loadConfig, parseFlags } from './config.js';
export type { TrainerConfig } from './config.js';
export { newModelConfig, plotMetrics, prepareData, runTraining } from './commands.js';
export type { Command, RunResult } from './commands.js';
export { renderCurves } from './plots.js';
export { evaluateModel } from './evaluate.js';
export { claims, FAMILIES, PROFILES, runRepro, unigramPerplexity } from './repro.js';
export type { ReproOptions, ReproProfile, ReproResult, SystemsScale } from './repro.js';
export type { FamilyResult, RunTiming } from './repro-report.js';
export { measureSystems } from './systems.js';
export type { SystemsMeasure, SystemsMesh, SystemsResult, SystemsRow } from './systems.js';
