// The task files shipped with the package (packages/eval/tasks/*.jsonl, built by tasks/build.mjs). This module sits
// one folder below the package root both as source (src/) and bundled (dist/), so one relative URL finds them.
import { fileURLToPath } from 'node:url';
import { readMultipleChoiceTask } from './multiple-choice.js';
import type { MultipleChoiceExample } from './multiple-choice.js';

export const SHIPPED_TASKS = ['sotu-next-sentence', 'sotu-cloze'] as const;
export type ShippedTask = (typeof SHIPPED_TASKS)[number];

/** Absolute path of a shipped task file. */
export function shippedTaskPath(name: ShippedTask): string {
  if (!SHIPPED_TASKS.includes(name)) throw new Error(`unknown shipped task "${name}"; the package ships ${SHIPPED_TASKS.join(', ')}`);
  return fileURLToPath(new URL(`../tasks/${name}.jsonl`, import.meta.url));
}

/** The examples of a shipped multiple-choice task. */
export function loadShippedTask(name: ShippedTask): MultipleChoiceExample[] {
  return readMultipleChoiceTask(shippedTaskPath(name));
}
