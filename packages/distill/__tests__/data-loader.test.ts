// TokenDataset and PackedLoader against the raw shard bytes (read here with Buffer.readUInt16LE, independently of
// the loader): windows of T + 1 tokens shifted by one and covering the stream, seeded per-epoch shuffles, exact
// resume from state(), disjoint rank shards, the chat loss mask, and open() errors that name the broken file.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainByteLevelBpe } from '@farskip/models';
import { DatasetFormatError, IGNORE_INDEX, PackedLoader, TokenDataset, buildDataset } from '../src/data/index.js';
import type { Document, PackedBatch, TokenizerFiles } from '../src/data/index.js';

const EOS = '<|endoftext|>';
const WORDS = ['the', 'union', 'state', 'of', 'congress', 'people', 'année', '日本', 'tax', 'war', 'peace', '1790'];
const TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

function makeTexts(n: number, seed: number): string[] {
  let s = seed;
  const r = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  return Array.from({ length: n }, (_, i) => [`d${i}`, ...Array.from({ length: 3 + Math.floor(r() * 30) }, () => WORDS[Math.floor(r() * WORDS.length)]!)].join(' '));
}

const TOKENIZER: TokenizerFiles = {
  json: trainByteLevelBpe(makeTexts(100, 9), { vocabSize: 300, specialTokens: [EOS, '<|im_start|>', '<|im_end|>'] }),
  config: { eos_token: EOS, chat_template: TEMPLATE },
};

const root = mkdtempSync(join(tmpdir(), 'farskip-loader-'));
const dataDir = join(root, 'ds');
let stream: number[] = [];
let dataset: TokenDataset;

/** The train split's token stream from the raw shard files. */
function rawStream(dir: string): number[] {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
  const out: number[] = [];
  for (const s of index.splits.train.shards) {
    const b = readFileSync(join(dir, s.file));
    for (let i = 0; i < s.tokens; i++) out.push(b.readUInt16LE(2 * i));
  }
  return out;
}

beforeAll(async () => {
  const documents = makeTexts(150, 1).map((text, i): Document => ({ id: `t${i}`, text }));
  await buildDataset({ documents, tokenizer: TOKENIZER, outDir: dataDir, heldOutFraction: 0.1, shardTokens: 97 });
  stream = rawStream(dataDir);
  dataset = TokenDataset.open(dataDir);
});
afterAll(() => {
  dataset.close();
  rmSync(root, { recursive: true, force: true });
});

const T = 16;
const B = 3;

/** Which window each row of a batch is, found by matching its inputs against the stream (checks the shift too). */
function rowsOf(batch: PackedBatch): number[] {
  const rows: number[] = [];
  for (let b = 0; b < B; b++) {
    const inputs = Array.from(batch.inputs.subarray(b * T, (b + 1) * T));
    const targets = Array.from(batch.targets.subarray(b * T, (b + 1) * T));
    const w = Array.from({ length: Math.floor((stream.length - 1) / T) }, (_, k) => k).find(
      (k) => stream.slice(k * T, k * T + T).join() === inputs.join(),
    );
    expect(w).toBeDefined();
    expect(targets).toEqual(stream.slice(w! * T + 1, w! * T + T + 1));
    rows.push(w!);
  }
  return rows;
}

describe('TokenDataset', () => {
  it('reads any range of the stream across shard boundaries', () => {
    const train = dataset.split('train');
    expect(train.tokens).toBe(stream.length);
    expect(dataset.index.splits.train.shards.length).toBeGreaterThan(5);
    for (const [start, count] of [[0, stream.length], [90, 20], [96, 1], [97, 97], [stream.length - 5, 5], [10, 0]] as const) {
      expect(Array.from(train.read(start, count))).toEqual(stream.slice(start, start + count));
    }
    expect(() => train.read(stream.length - 2, 3)).toThrow(/cannot read/);
    expect(() => dataset.split('valid')).toThrow(/no split 'valid'/);
    const offsets = train.documentOffsets();
    expect(offsets.length).toBe(train.documents + 1);
    expect(offsets[train.documents]).toBe(stream.length);
    expect(stream.filter((id) => id === 0).length).toBe(train.documents); // one EOS per document
    for (let d = 0; d < train.documents; d++) expect(stream[offsets[d + 1]! - 1]).toBe(0);
  });
});

describe('PackedLoader', () => {
  it('unshuffled: consecutive windows of T + 1 tokens, inputs/targets shifted by one, covering the stream', () => {
    const loader = new PackedLoader(dataset.split('train'), { batchSize: B, seqLen: T, shuffle: false });
    const W = Math.floor((stream.length - 1) / T);
    expect(loader.windows).toBe(W);
    expect(loader.batchesPerEpoch).toBe(Math.floor(W / B));
    const covered: number[] = [];
    for (let k = 0; k < loader.batchesPerEpoch; k++) {
      const batch = loader.next();
      expect(batch.inputs.length).toBe(B * T);
      expect(batch.mask).toBeUndefined();
      for (let b = 0; b < B; b++) {
        const w = k * B + b;
        expect(Array.from(batch.inputs.subarray(b * T, (b + 1) * T))).toEqual(stream.slice(w * T, w * T + T));
        expect(Array.from(batch.targets.subarray(b * T, (b + 1) * T))).toEqual(stream.slice(w * T + 1, w * T + T + 1));
        covered.push(...Array.from(batch.targets.subarray(b * T, (b + 1) * T)));
      }
    }
    // the targets of an epoch are the stream from token 1 on, each once (up to the dropped remainder)
    expect(covered).toEqual(stream.slice(1, 1 + loader.batchesPerEpoch * B * T));
    expect(loader.state()).toEqual({ epoch: 1, position: 0, seed: 0 });
  });

  it('shuffled: a permutation of the windows, the same for a seed, different across epochs and seeds', () => {
    const split = dataset.split('train');
    const a = new PackedLoader(split, { batchSize: B, seqLen: T, seed: 5 });
    const b = new PackedLoader(split, { batchSize: B, seqLen: T, seed: 5 });
    const c = new PackedLoader(split, { batchSize: B, seqLen: T, seed: 6 });
    const epoch = (l: PackedLoader): number[] => Array.from({ length: l.batchesPerEpoch }, () => rowsOf(l.next())).flat();
    const a0 = epoch(a);
    const a1 = epoch(a);
    expect(epoch(b)).toEqual(a0);
    expect(new Set(a0).size).toBe(a0.length);
    expect(a0.length).toBe(a.batchesPerEpoch * B);
    expect(a0.every((w) => w >= 0 && w < a.windows)).toBe(true);
    expect(a1).not.toEqual(a0);
    expect(epoch(c)).not.toEqual(a0);
    expect(a0).not.toEqual([...a0].sort((x, y) => x - y));
  });

  it('restore(state) after k batches yields exactly the batches an uninterrupted loader yields next', () => {
    const split = dataset.split('train');
    const options = { batchSize: B, seqLen: T, seed: 3 };
    const reference = new PackedLoader(split, options);
    const first = new PackedLoader(split, options);
    const n = reference.batchesPerEpoch;
    const k = n - 2; // the resumed run crosses into the next epoch
    const expected = Array.from({ length: k + 5 }, () => reference.next());
    for (let i = 0; i < k; i++) first.next();
    const saved = JSON.parse(JSON.stringify(first.state()));
    expect(saved).toEqual({ epoch: 0, position: k, seed: 3 });
    const resumed = new PackedLoader(split, { batchSize: B, seqLen: T, seed: 99 });
    resumed.restore(saved);
    for (let i = k; i < k + 5; i++) {
      const got = resumed.next();
      expect(Array.from(got.inputs)).toEqual(Array.from(expected[i]!.inputs));
      expect(Array.from(got.targets)).toEqual(Array.from(expected[i]!.targets));
      expect([got.epoch, got.position]).toEqual([expected[i]!.epoch, expected[i]!.position]);
    }
    expect(() => resumed.restore({ epoch: 0 })).toThrow(/expected \{ epoch, position, seed \}/);
    expect(() => resumed.restore({ epoch: 0, position: n, seed: 0 })).toThrow(/past this loader's/);
  });

  it('ranks take disjoint windows of the shared order, the same number of batches each', () => {
    const split = dataset.split('train');
    const n = 3;
    const loaders = Array.from({ length: n }, (_, rank) => new PackedLoader(split, { batchSize: B, seqLen: T, seed: 8, rank, worldSize: n }));
    const single = new PackedLoader(split, { batchSize: B, seqLen: T, seed: 8 });
    const perRank = Math.floor(single.windows / n / B);
    expect(loaders.map((l) => l.batchesPerEpoch)).toEqual([perRank, perRank, perRank]);
    const order = Array.from(single.windowOrder(0));
    const seen = loaders.map((l) => Array.from({ length: l.batchesPerEpoch }, () => rowsOf(l.next())).flat());
    const all = seen.flat();
    expect(new Set(all).size).toBe(all.length);
    expect([...all].sort((x, y) => x - y)).toEqual(order.slice(0, n * B * perRank).sort((x, y) => x - y));
    seen.forEach((windows, rank) => expect(windows).toEqual(order.filter((_, i) => i % n === rank).slice(0, B * perRank)));
  });

  it('rejects bad options and splits too small for one batch per rank', () => {
    const split = dataset.split('heldout');
    expect(() => new PackedLoader(split, { batchSize: 1000, seqLen: T })).toThrow(/split 'heldout' has \d+ tokens.*smaller batchSize/);
    expect(() => new PackedLoader(split, { batchSize: 1, seqLen: T, rank: 2, worldSize: 2 })).toThrow(/rank is 2/);
    expect(() => new PackedLoader(split, { batchSize: 1, seqLen: 0 })).toThrow(/seqLen is 0/);
    expect(() => new PackedLoader(split, { batchSize: 1, seqLen: T, lossMask: true })).toThrow(/no loss mask/);
  });

  it('lossMask: only assistant tokens are targets (IGNORE_INDEX elsewhere), mask is 1 exactly there', async () => {
    const chats = Array.from({ length: 40 }, (_, i): Document => ({
      id: `c${i}`,
      messages: [
        { role: 'user', content: makeTexts(1, i + 10)[0]! },
        { role: 'assistant', content: makeTexts(1, i + 500)[0]! },
      ],
    }));
    const dir = join(root, 'chat');
    await buildDataset({ documents: chats, tokenizer: TOKENIZER, outDir: dir, heldOutFraction: 0, shardTokens: 50 });
    const split = TokenDataset.open(dir).split('train');
    const loader = new PackedLoader(split, { batchSize: 2, seqLen: 32, shuffle: false, lossMask: true });
    const mask = split.readMask(0, split.tokens);
    const tokens = split.read(0, split.tokens);
    let kept = 0;
    for (let k = 0; k < loader.batchesPerEpoch; k++) {
      const batch = loader.next();
      for (let i = 0; i < 64; i++) {
        const pos = k * 64 + i + 1; // the stream position of this target (unshuffled windows are consecutive)
        expect(batch.mask![i]).toBe(mask[pos]);
        expect(batch.targets[i]).toBe(mask[pos] ? tokens[pos] : IGNORE_INDEX);
        kept += mask[pos]!;
      }
    }
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(loader.batchesPerEpoch * 64);
  });
});

describe('TokenDataset.open errors name the file', () => {
  /** A fresh copy of the dataset directory to break. */
  function copy(name: string): string {
    const dir = join(root, name);
    mkdirSync(dir);
    for (const f of readdirSync(dataDir)) copyFileSync(join(dataDir, f), join(dir, f));
    return dir;
  }
  const openError = (dir: string): DatasetFormatError => {
    try {
      TokenDataset.open(dir);
    } catch (e) {
      expect(e).toBeInstanceOf(DatasetFormatError);
      return e as DatasetFormatError;
    }
    throw new Error('open succeeded');
  };

  it('corrupted index.json', () => {
    const dir = copy('bad-json');
    writeFileSync(join(dir, 'index.json'), '{"format": "farskip-token-dataset", ');
    const e = openError(dir);
    expect(e.file).toBe(join(dir, 'index.json'));
    expect(e.message).toMatch(/index\.json is not valid JSON.*rebuild/);
    const index = JSON.parse(readFileSync(join(dataDir, 'index.json'), 'utf8'));
    index.splits.train.tokens += 1;
    writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
    expect(openError(dir).message).toMatch(/index\.json: splits\.train lists shards holding \d+ tokens but "tokens" is/);
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ ...index, version: 7 }));
    expect(openError(dir).message).toMatch(/version 7 is not supported/);
  });

  it('truncated shard', () => {
    const dir = copy('truncated');
    truncateSync(join(dir, 'train-00002.bin'), 101);
    const e = openError(dir);
    expect(e.file).toBe(join(dir, 'train-00002.bin'));
    expect(e.message).toMatch(/train shard .*train-00002\.bin has 101 bytes but .*index\.json implies 194; the file is truncated/);
  });

  it('missing shard, missing offsets, missing index', () => {
    const dir = copy('missing');
    unlinkSync(join(dir, 'train-00001.bin'));
    expect(openError(dir).message).toMatch(/train shard .*train-00001\.bin listed in .*index\.json is missing/);
    copyFileSync(join(dataDir, 'train-00001.bin'), join(dir, 'train-00001.bin'));
    unlinkSync(join(dir, 'heldout-offsets.bin'));
    expect(openError(dir).file).toBe(join(dir, 'heldout-offsets.bin'));
    unlinkSync(join(dir, 'index.json'));
    expect(openError(dir).message).toMatch(/index\.json not found/);
  });
});
