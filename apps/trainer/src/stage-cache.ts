// The repro pipeline's stage cache: <out>/stages.json, one record per finished stage (seconds, result, and the key
// of what it was run with — its job or settings, and the keys of the stages it built on). A rerun reuses a record
// only under the same key, so changing a profile (more distillation steps, say) reruns the stages it affects and
// those downstream of them instead of silently reusing them. Records from before keys were stored (no key) are
// reused as they are. Written atomically after every stage.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './commands.js';

export interface StageRecord { seconds: number; result: unknown; key?: string }

export class StageCache {
  readonly records: Record<string, StageRecord>;

  constructor(readonly file: string) {
    this.records = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, StageRecord>) : {};
  }

  static key(settings: unknown): string {
    return JSON.stringify(settings ?? null);
  }

  /** The record of `name` if it was run under `key` ('stale': it was run with other settings; null: never). */
  lookup(name: string, key: string): StageRecord | 'stale' | null {
    const r = this.records[name];
    if (!r) return null;
    return r.key === undefined || r.key === key ? r : 'stale';
  }

  /** The key `name` was stored under (null when never run): what downstream stages fold into theirs. */
  keyOf(name: string): string | null {
    return this.records[name]?.key ?? null;
  }

  put(name: string, key: string, seconds: number, result: unknown): void {
    this.records[name] = { seconds, result, key };
    writeFileAtomic(this.file, JSON.stringify(this.records, null, 2) + '\n');
  }
}
