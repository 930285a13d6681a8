// Exact-match generation tasks: greedy decoding of each prompt, cut at the first stop string, compared with the
// answer after trimming (optionally ignoring case, runs of whitespace and punctuation), as the harness's
// generate_until + exact_match.
import { generate } from '@farskip/models';
import type { CausalLM } from '@farskip/models';
import { asRecord, parseJsonl, readJsonl, stringField } from './jsonl.js';
import { checkPositiveInt, chunks } from './model.js';
import type { EvalForwardOptions, TextCodec } from './model.js';
import { meanStderr } from './multiple-choice.js';

export interface GenerationExample {
  prompt: string;
  answer: string;
}

export interface NormalizeOptions {
  /** compare lower-cased */
  ignoreCase?: boolean;
  /** collapse every run of whitespace to one space */
  collapseWhitespace?: boolean;
  /** drop Unicode punctuation */
  ignorePunctuation?: boolean;
}

export interface GenerationOptions {
  maxNewTokens: number;
  /** generated text ends before the first of these; default ['\n'] */
  stop?: string[];
  /** token ids that end generation early (e.g. the tokenizer's eos); they are not part of the prediction */
  stopTokens?: number[];
  /** true = ignore case and collapse whitespace; default false (trim only) */
  normalize?: boolean | NormalizeOptions;
  /** tokens put before every prompt (e.g. [bos]) */
  prefixTokens?: number[];
  /** encode prompts with the tokenizer's special tokens; default false */
  addSpecialTokens?: boolean;
  /** prompts per generate() call; default 8 */
  batchSize?: number;
  forward?: EvalForwardOptions;
  /** the task's name in the result; default 'generation' */
  task?: string;
}

export interface GenerationDetail {
  prompt: string;
  answer: string;
  /** the generated text up to the first stop string */
  prediction: string;
  exact_match: 0 | 1;
}

export interface GenerationResult {
  task: string;
  n: number;
  exact_match: number;
  stderr: { exact_match: number };
  examples: GenerationDetail[];
}

/** The text before the first occurrence of any stop string. */
export function truncateAtStop(text: string, stop: readonly string[]): string {
  let end = text.length;
  for (const s of stop) {
    if (s === '') continue;
    const at = text.indexOf(s);
    if (at >= 0 && at < end) end = at;
  }
  return text.slice(0, end);
}

/** Trims, then applies the chosen normalisations. */
export function normalizeAnswer(text: string, normalize: boolean | NormalizeOptions = false): string {
  const o: NormalizeOptions = normalize === true ? { ignoreCase: true, collapseWhitespace: true } : normalize === false ? {} : normalize;
  let s = text;
  if (o.ignorePunctuation) s = s.replace(/\p{P}/gu, '');
  if (o.collapseWhitespace) s = s.replace(/\s+/gu, ' ');
  if (o.ignoreCase) s = s.toLowerCase();
  return s.trim();
}

/** Whether prediction and answer are equal after normalizeAnswer. */
export function exactMatch(prediction: string, answer: string, normalize: boolean | NormalizeOptions = false): boolean {
  return normalizeAnswer(prediction, normalize) === normalizeAnswer(answer, normalize);
}

/** Greedy-generates an answer for every prompt and scores exact match. */
export async function evaluateGeneration(model: CausalLM, codec: TextCodec, examples: GenerationExample[], options: GenerationOptions): Promise<GenerationResult> {
  const task = options.task ?? 'generation';
  checkPositiveInt(options.maxNewTokens, 'maxNewTokens', 'evaluateGeneration');
  const batchSize = options.batchSize ?? 8;
  checkPositiveInt(batchSize, 'batchSize', 'evaluateGeneration');
  const stop = options.stop ?? ['\n'];
  const stopTokens = options.stopTokens ?? [];
  const prompts = examples.map((ex, i) => {
    const ids = [...(options.prefixTokens ?? []), ...(ex.prompt === '' ? [] : codec.encode(ex.prompt, { addSpecialTokens: options.addSpecialTokens ?? false }))];
    if (ids.length === 0) throw new Error(`evaluateGeneration: ${task} example ${i} has an empty prompt; give a prompt or set prefixTokens (e.g. [bos])`);
    return ids;
  });
  const predictions: string[] = [];
  for (const batch of chunks(prompts, batchSize)) {
    const out = await generate(model, batch, { maxNewTokens: options.maxNewTokens, stopTokens, temperature: 0, forward: options.forward });
    for (const toks of out.tokens) {
      const kept = toks.length > 0 && stopTokens.includes(toks[toks.length - 1]!) ? toks.slice(0, -1) : toks;
      predictions.push(truncateAtStop(codec.decode(kept, { skipSpecialTokens: true }), stop));
    }
  }
  const details = examples.map((ex, i): GenerationDetail => ({
    prompt: ex.prompt, answer: ex.answer, prediction: predictions[i]!,
    exact_match: exactMatch(predictions[i]!, ex.answer, options.normalize) ? 1 : 0,
  }));
  const scores = details.map((d) => d.exact_match as number);
  const n = scores.length;
  return { task, n, exact_match: n === 0 ? NaN : scores.reduce((a, b) => a + b, 0) / n, stderr: { exact_match: meanStderr(scores) }, examples: details };
}

/** Validates one parsed line {prompt, answer} (extra fields are kept). */
export function generationExample(value: unknown): GenerationExample {
  const o = asRecord(value, '{"prompt": string, "answer": string}');
  return { ...o, prompt: stringField(o, 'prompt'), answer: stringField(o, 'answer') };
}

/** Parses generation JSONL text (errors name `file`:line). */
export function parseGenerationJsonl(text: string, file = '<text>'): GenerationExample[] {
  return parseJsonl(text, file, generationExample);
}

/** Reads a generation JSONL file of {prompt, answer} lines. */
export function readGenerationTask(file: string): GenerationExample[] {
  return readJsonl(file, generationExample);
}
