// JSONL task files: one JSON object per line (blank lines skipped). Every error names the file and the line.
import { readFileSync } from 'node:fs';

/** Parses JSONL text; `check` validates one parsed line (throw a plain message, the caller adds file:line). */
export function parseJsonl<T>(text: string, file: string, check: (value: unknown) => T): T[] {
  const out: T[] = [];
  const lines = text.split(/\r?\n/u);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: invalid JSON (${(e as Error).message}); each line must be one JSON object`);
    }
    try {
      out.push(check(value));
    } catch (e) {
      throw new Error(`${file}:${i + 1}: ${(e as Error).message}`);
    }
  });
  return out;
}

/** Reads and parses a JSONL file. */
export function readJsonl<T>(file: string, check: (value: unknown) => T): T[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read the task file (${(e as Error).message})`);
  }
  return parseJsonl(text, file, check);
}

/** Serializes objects as JSONL (one line each, trailing newline). */
export function toJsonl(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v) + '\n').join('');
}

export function asRecord(value: unknown, expected: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`expected an object ${expected}, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

export function stringField(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new Error(`"${key}" must be a string, got ${describe(v)}`);
  return v;
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing (missing)';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value === null) return 'null';
  return `${typeof value} ${JSON.stringify(value)?.slice(0, 60)}`;
}
