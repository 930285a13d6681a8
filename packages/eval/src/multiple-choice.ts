// Multiple-choice tasks scored by log-likelihood, as lm-evaluation-harness' `multiple_choice` output type:
// each choice is a continuation of the context (target_delimiter + choice), acc takes the argmax of the summed
// log-likelihoods, acc_norm the argmax of log-likelihood / characters of the choice.
import { asRecord, describe, readJsonl, parseJsonl, stringField } from './jsonl.js';
import { loglikelihoods } from './loglikelihood.js';
import type { LoglikelihoodOptions } from './loglikelihood.js';
import type { ScoringModel, TextCodec } from './model.js';

export interface MultipleChoiceExample {
  context: string;
  choices: string[];
  /** index of the correct choice */
  gold: number;
}

export interface MultipleChoiceOptions extends LoglikelihoodOptions {
  /** put between context and choice; default ' ' (the harness's target_delimiter) */
  targetDelimiter?: string;
  /** the task's name in the result; default 'multiple-choice' */
  task?: string;
}

export interface MultipleChoiceDetail {
  /** log-likelihood of each choice's continuation */
  logliks: number[];
  /** whether each choice's tokens are all the model's argmax */
  isGreedy: boolean[];
  gold: number;
  /** argmax of logliks */
  pred: number;
  /** argmax of logliks[i] / length of choices[i] in characters */
  predNorm: number;
  acc: 0 | 1;
  acc_norm: 0 | 1;
}

export interface MultipleChoiceResult {
  task: string;
  n: number;
  acc: number;
  acc_norm: number;
  /** standard error of each mean: sample standard deviation (n-1) / sqrt(n) */
  stderr: { acc: number; acc_norm: number };
  examples: MultipleChoiceDetail[];
}

/** First index of the maximum (numpy's argmax). */
function argmaxOf(values: number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** The harness's mean_stderr: sample standard deviation (ddof 1) / sqrt(n); NaN below 2 samples. */
export function meanStderr(values: number[]): number {
  const n = values.length;
  if (n < 2) return NaN;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  return Math.sqrt(variance / n);
}

/** Scores every example (all choices of all examples batched together) and aggregates acc and acc_norm. */
export async function evaluateMultipleChoice(model: ScoringModel, codec: TextCodec, examples: MultipleChoiceExample[], options: MultipleChoiceOptions = {}): Promise<MultipleChoiceResult> {
  const task = options.task ?? 'multiple-choice';
  const delimiter = options.targetDelimiter ?? ' ';
  examples.forEach((ex, i) => checkExample(ex, `${task} example ${i}: `));
  const requests = examples.flatMap((ex) => ex.choices.map((c) => ({ context: ex.context, continuation: delimiter + c })));
  const scored = await loglikelihoods(model, codec, requests, options);
  let at = 0;
  const details = examples.map((ex): MultipleChoiceDetail => {
    const s = scored.slice(at, at += ex.choices.length);
    const logliks = s.map((r) => r.loglik);
    const pred = argmaxOf(logliks);
    // Python's len(): code points of the choice (without the delimiter)
    const predNorm = argmaxOf(logliks.map((l, i) => l / [...ex.choices[i]!].length));
    return { logliks, isGreedy: s.map((r) => r.isGreedy), gold: ex.gold, pred, predNorm, acc: pred === ex.gold ? 1 : 0, acc_norm: predNorm === ex.gold ? 1 : 0 };
  });
  const accs = details.map((d) => d.acc as number), norms = details.map((d) => d.acc_norm as number);
  const n = details.length;
  const mean = (v: number[]): number => (n === 0 ? NaN : v.reduce((a, b) => a + b, 0) / n);
  return { task, n, acc: mean(accs), acc_norm: mean(norms), stderr: { acc: meanStderr(accs), acc_norm: meanStderr(norms) }, examples: details };
}

/** Throws when the example cannot be scored; `where` prefixes the message. */
function checkExample(ex: MultipleChoiceExample, where: string): void {
  if (!Array.isArray(ex.choices) || ex.choices.length < 2) throw new Error(`${where}"choices" must hold at least 2 strings, got ${describe(ex.choices)}`);
  ex.choices.forEach((c, i) => {
    if (typeof c !== 'string' || c.length === 0) throw new Error(`${where}"choices"[${i}] must be a non-empty string, got ${describe(c)}`);
  });
  if (!Number.isInteger(ex.gold) || ex.gold < 0 || ex.gold >= ex.choices.length) {
    throw new Error(`${where}"gold" must be an integer index into the ${ex.choices.length} choices, got ${describe(ex.gold)}`);
  }
}

/** Validates one parsed line {context, choices, gold} (extra fields are kept). */
export function multipleChoiceExample(value: unknown): MultipleChoiceExample {
  const o = asRecord(value, '{"context": string, "choices": string[], "gold": integer}');
  const context = stringField(o, 'context');
  const ex = { ...o, context, choices: o.choices as string[], gold: o.gold as number };
  checkExample(ex, '');
  return ex;
}

/** Parses multiple-choice JSONL text (errors name `file`:line). */
export function parseMultipleChoiceJsonl(text: string, file = '<text>'): MultipleChoiceExample[] {
  return parseJsonl(text, file, multipleChoiceExample);
}

/** Reads a multiple-choice JSONL file of {context, choices, gold} lines. */
export function readMultipleChoiceTask(file: string): MultipleChoiceExample[] {
  return readJsonl(file, multipleChoiceExample);
}
