// The repro stage cache: a record is reused only under the key it was stored with (records from before keys were
// stored are reused as they are), survives a reload from disk, and the file is never half-written.
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StageCache } from '../src/stage-cache.js';

describe('StageCache', () => {
  it('reuses a stage only under the same key, across reloads', () => {
    const dir = mkdtempSync(join(tmpdir(), 'farskip-stages-'));
    const file = join(dir, 'stages.json');
    const a = new StageCache(file);
    const k = StageCache.key({ job: { steps: 600 }, after: [null] });
    expect(a.lookup('fcsd', k)).toBeNull();
    a.put('fcsd', k, 12.5, { modelDir: 'x' });
    const b = new StageCache(file);
    expect(b.lookup('fcsd', k)).toEqual({ seconds: 12.5, result: { modelDir: 'x' }, key: k });
    expect(b.lookup('fcsd', StageCache.key({ job: { steps: 900 }, after: [null] }))).toBe('stale');
    expect(b.keyOf('fcsd')).toBe(k);
    expect(b.keyOf('sft')).toBeNull();
    expect(readdirSync(dir)).toEqual(['stages.json']); // written through a temporary file, renamed
  });

  it('a record stored before keys existed is reused as it is', () => {
    const dir = mkdtempSync(join(tmpdir(), 'farskip-stages-'));
    const file = join(dir, 'stages.json');
    writeFileSync(file, JSON.stringify({ data: { seconds: 9, result: '/d' } }));
    expect(new StageCache(file).lookup('data', StageCache.key({ vocabSize: 4096 }))).toEqual({ seconds: 9, result: '/d' });
  });
});
