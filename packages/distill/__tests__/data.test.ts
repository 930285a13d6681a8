// buildDataset: the token streams of both splits decode back to the documents (each followed by EOS), the
// document split is a seeded function of the id, shards and dtype do not change the stream, chat documents carry
// an assistant-only loss mask, rebuilds replace cleanly and a failed build leaves nothing that looks complete.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tokenizer, trainByteLevelBpe } from '@farskip/models';
import {
  INDEX_FILE,
  TokenDataset,
  buildDataset,
  chatJsonlDocuments,
  isHeldOut,
  jsonlDocuments,
  sotuAddresses,
  sotuDocuments,
  textFileDocuments,
  tokenDtypeFor,
} from '../src/data/index.js';
import type { Document, TextDocument, TokenizerFiles } from '../src/data/index.js';

const EOS = '<|endoftext|>';
const TEMPLATE =
  "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
const WORDS = ['the', 'union', 'state', 'of', 'congress', 'people', 'année', 'größe', '日本', 'naïve', '🙂', 'tax', 'war', 'peace', '1790', 'é'];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` distinct documents of random words and punctuation (some multi-line, some non-ASCII). */
function makeTexts(n: number, seed = 1, maxWords = 40): string[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const words = [`doc${i}`];
    const len = 1 + Math.floor(r() * maxWords);
    for (let w = 0; w < len; w++) words.push(WORDS[Math.floor(r() * WORDS.length)]! + (r() < 0.1 ? '.\n' : r() < 0.1 ? ',' : ''));
    return words.join(' ');
  });
}

const TOKENIZER: TokenizerFiles = {
  json: trainByteLevelBpe(makeTexts(200, 99), { vocabSize: 400, specialTokens: [EOS, '<|im_start|>', '<|im_end|>'] }),
  config: { eos_token: EOS, chat_template: TEMPLATE },
};
const tokenizer = Tokenizer.fromObjects(TOKENIZER.json, TOKENIZER.config);

const root = mkdtempSync(join(tmpdir(), 'farskip-data-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (): string => join(root, `d${dirCount++}`);

/** Every shard of a split, read straight from the files (independent of TokenDataset). */
function rawStream(dir: string, split: 'train' | 'heldout'): number[] {
  const index = JSON.parse(readFileSync(join(dir, INDEX_FILE), 'utf8'));
  const out: number[] = [];
  for (const s of index.splits[split].shards) {
    const b = readFileSync(join(dir, s.file));
    for (let i = 0; i < s.tokens; i++) out.push(index.dtype === 'uint16' ? b.readUInt16LE(2 * i) : b.readUInt32LE(4 * i));
  }
  return out;
}

/** The documents of a split's stream: decoded, cut at EOS (the stream ends with one). */
function splitTexts(dir: string, split: 'train' | 'heldout'): string[] {
  const parts = tokenizer.decode(rawStream(dir, split)).split(EOS);
  expect(parts.pop()).toBe('');
  return parts;
}

/** Whether `sub` appears in `all` in the same order. */
function isSubsequence(sub: string[], all: string[]): boolean {
  let i = 0;
  for (const x of all) if (i < sub.length && sub[i] === x) i++;
  return i === sub.length;
}

function expectPartition(dir: string, texts: string[]): { train: string[]; heldout: string[] } {
  const train = splitTexts(dir, 'train');
  const heldout = splitTexts(dir, 'heldout');
  expect(train.length + heldout.length).toBe(texts.length);
  expect([...train, ...heldout].sort()).toEqual([...texts].sort());
  expect(isSubsequence(train, texts)).toBe(true);
  expect(isSubsequence(heldout, texts)).toBe(true);
  return { train, heldout };
}

describe('buildDataset from text files and JSONL', () => {
  it('a directory of .txt files: the decoded splits are the documents + EOS, in source order', async () => {
    const src = join(root, 'txt');
    const texts = makeTexts(40, 2);
    mkdirSync(join(src, 'sub'), { recursive: true });
    texts.forEach((t, i) => writeFileSync(join(src, i % 3 === 0 ? 'sub' : '', `f${String(i).padStart(2, '0')}.txt`), t));
    writeFileSync(join(src, 'notes.md'), 'not a document');
    const out = freshDir();
    const built = await buildDataset({ documents: textFileDocuments(src), tokenizer: TOKENIZER, outDir: out, heldOutFraction: 0.3, seed: 7 });
    // source order: sorted by relative path, so the files of sub/ come after those of the top directory
    const order = [...texts.filter((_, i) => i % 3 !== 0), ...texts.filter((_, i) => i % 3 === 0)];
    const { train, heldout } = expectPartition(out, order);
    expect(train.length).toBeGreaterThan(0);
    expect(heldout.length).toBeGreaterThan(0);
    const { index } = built;
    expect(index.dtype).toBe('uint16');
    expect(index.vocabSize).toBe(tokenizer.vocabSize);
    expect(index.eosId).toBe(0);
    expect(index.splits.train.documents).toBe(train.length);
    expect(index.splits.train.tokens).toBe(rawStream(out, 'train').length);
    expect(index.source).toContain(src);
    expect(JSON.parse(readFileSync(join(out, INDEX_FILE), 'utf8'))).toEqual(index);
    // self-contained: the saved tokenizer (with its chat template) is the one the ids belong to
    const ds = TokenDataset.open(out);
    const saved = await ds.tokenizer();
    expect(saved.encode(texts[5]!)).toEqual(tokenizer.encode(texts[5]!));
    expect(saved.hasChatTemplate).toBe(true);
    // per-document boundaries: document d of a split is exactly its text + EOS
    const held = ds.split('heldout');
    for (let d = 0; d < held.documents; d++) expect(tokenizer.decode(held.document(d))).toBe(heldout[d] + EOS);
    ds.close();
  });

  it('forceHeldOut keeps chosen documents out of training whatever the hash says', async () => {
    const texts = makeTexts(30, 5);
    const docs = texts.map((text, i) => ({ id: `doc-${i}`, text }));
    const forced = new Set(['doc-3', 'doc-17', 'doc-29']);
    const out = freshDir();
    await buildDataset({ documents: docs, tokenizer: TOKENIZER, outDir: out, heldOutFraction: 0.01, seed: 3, forceHeldOut: (id) => forced.has(id) });
    const held = splitTexts(out, 'heldout');
    for (const id of forced) expect(held).toContain(texts[Number(id.slice(4))]);
    expect(splitTexts(out, 'train')).not.toContain(texts[17]);
  });

  it('splitOnBlankLines: one document per paragraph, ids <file>#k', async () => {
    const src = join(root, 'para');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'a.txt'), 'first para\nline two\n\n\nsecond para\r\n \r\nthird 🙂\n');
    const docs: TextDocument[] = [];
    for await (const d of textFileDocuments(src, { splitOnBlankLines: true })) docs.push(d as TextDocument);
    expect(docs).toEqual([
      { id: 'a.txt#0', text: 'first para\nline two' },
      { id: 'a.txt#1', text: 'second para' },
      { id: 'a.txt#2', text: 'third 🙂' },
    ]);
    const out = freshDir();
    await buildDataset({ documents: textFileDocuments(src, { splitOnBlankLines: true }), tokenizer: TOKENIZER, outDir: out, heldOutFraction: 0 });
    expect(splitTexts(out, 'train')).toEqual(docs.map((d) => d.text));
    expect(splitTexts(out, 'heldout')).toEqual([]);
  });

  it('JSONL with a chosen text field; a tokenizer given as a directory is copied', async () => {
    const texts = makeTexts(30, 3);
    const file = join(root, 'docs.jsonl');
    writeFileSync(file, texts.map((t, i) => JSON.stringify({ id: `j${i}`, body: t, other: 1 })).join('\n') + '\n\n');
    const tokDir = join(root, 'tok');
    mkdirSync(tokDir, { recursive: true });
    writeFileSync(join(tokDir, 'tokenizer.json'), JSON.stringify(TOKENIZER.json));
    writeFileSync(join(tokDir, 'tokenizer_config.json'), JSON.stringify(TOKENIZER.config));
    const out = freshDir();
    const { index } = await buildDataset({ documents: jsonlDocuments(file, { textField: 'body' }), tokenizer: tokDir, outDir: out, heldOutFraction: 0.5, seed: 3 });
    const { heldout } = expectPartition(out, texts);
    // the held-out documents are exactly those whose id hashes under the fraction
    expect(heldout).toEqual(texts.filter((_, i) => isHeldOut(`j${i}`, 3, 0.5)));
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe(JSON.stringify(TOKENIZER.json));
    expect(existsSync(join(out, 'tokenizer_config.json'))).toBe(true);
    expect(index.splits.heldout.lossMask).toBe(false);
  });
});

describe('chat JSONL', () => {
  const chats = [
    { id: 'c0', messages: [{ role: 'user', content: 'state of the union?' }, { role: 'assistant', content: 'peace and tax.' }] },
    {
      id: 'c1',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'war?' },
        { role: 'assistant', content: 'the people' },
        { role: 'user', content: 'année 日本' },
        { role: 'assistant', content: 'naïve 🙂 congress' },
      ],
    },
    { id: 'c2', messages: [{ role: 'user', content: 'no answer' }] },
  ];

  it('renders the template; the loss mask keeps exactly the assistant turns (and their end marker)', async () => {
    const file = join(root, 'chat.jsonl');
    writeFileSync(file, chats.map((c) => JSON.stringify(c)).join('\n'));
    const out = freshDir();
    const plain = makeTexts(3, 4).map((text, i): TextDocument => ({ id: `p${i}`, text }));
    const documents = async function* (): AsyncGenerator<Document> {
      yield plain[0]!; // before the first chat document: its shard gets an all-ones mask later
      yield* chatJsonlDocuments(file);
      yield* plain.slice(1);
    };
    const { index } = await buildDataset({ documents: documents(), tokenizer: TOKENIZER, outDir: out, heldOutFraction: 0, shardTokens: 16 });
    expect(index.splits.train.lossMask).toBe(true);
    expect(index.splits.train.shards.every((s) => s.mask !== undefined)).toBe(true);
    const split = TokenDataset.open(out).split('train');
    const offsets = split.documentOffsets();
    expect(split.documents).toBe(6);
    const render = (c: (typeof chats)[number]): string => c.messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('');
    const kept = (c: (typeof chats)[number]): string =>
      c.messages.filter((m) => m.role === 'assistant').map((m) => `${m.content}<|im_end|>\n`).join('') + (c.messages.at(-1)!.role === 'assistant' ? EOS : '');
    for (let d = 0; d < 6; d++) {
      const ids = split.document(d);
      const mask = split.readMask(offsets[d]!, ids.length);
      const chat = d >= 1 && d <= 3 ? chats[d - 1]! : null;
      expect(tokenizer.decode(ids)).toBe(chat ? render(chat) + EOS : plain[d === 0 ? 0 : d - 3]!.text + EOS);
      expect(tokenizer.decode(ids.filter((_, i) => mask[i] === 1))).toBe(chat ? kept(chat) : tokenizer.decode(ids));
    }
  });
});

describe('split, shards, dtype', () => {
  const docs = makeTexts(400, 5, 6).map((text, i): TextDocument => ({ id: `doc-${i}`, text }));

  it('the split is a seeded function of the id and respects the fraction', async () => {
    const ids = Array.from({ length: 20000 }, (_, i) => `id-${i}`);
    for (const [fraction, seed] of [[0.05, 0], [0.1, 1], [0.5, 2]] as const) {
      const held = ids.filter((id) => isHeldOut(id, seed, fraction)).length;
      const sigma = Math.sqrt(ids.length * fraction * (1 - fraction));
      expect(Math.abs(held - ids.length * fraction)).toBeLessThan(4 * sigma);
    }
    const a = freshDir();
    const b = freshDir();
    const c = freshDir();
    await buildDataset({ documents: docs, tokenizer: TOKENIZER, outDir: a, heldOutFraction: 0.25, seed: 11 });
    await buildDataset({ documents: [...docs].reverse(), tokenizer: TOKENIZER, outDir: b, heldOutFraction: 0.25, seed: 11 });
    await buildDataset({ documents: docs, tokenizer: TOKENIZER, outDir: c, heldOutFraction: 0.25, seed: 12 });
    const heldA = expectPartition(a, docs.map((d) => d.text)).heldout;
    expect(Math.abs(heldA.length - 100)).toBeLessThan(4 * Math.sqrt(400 * 0.25 * 0.75));
    // the same documents are held out whatever their order; another seed holds out others
    expect([...splitTexts(b, 'heldout')].sort()).toEqual([...heldA].sort());
    expect(splitTexts(c, 'heldout')).not.toEqual(heldA);
    // a rebuild with the same inputs writes identical shards
    const again = freshDir();
    await buildDataset({ documents: docs, tokenizer: TOKENIZER, outDir: again, heldOutFraction: 0.25, seed: 11 });
    for (const f of readdirSync(a).filter((n) => n.endsWith('.bin'))) expect(readFileSync(join(again, f)).equals(readFileSync(join(a, f)))).toBe(true);
  });

  it('tiny shards do not change the token stream', async () => {
    const one = freshDir();
    const many = freshDir();
    const some = docs.slice(0, 120);
    await buildDataset({ documents: some, tokenizer: TOKENIZER, outDir: one, heldOutFraction: 0.1 });
    const { index } = await buildDataset({ documents: some, tokenizer: TOKENIZER, outDir: many, heldOutFraction: 0.1, shardTokens: 7 });
    for (const split of ['train', 'heldout'] as const) {
      expect(rawStream(many, split)).toEqual(rawStream(one, split));
      const shards = index.splits[split].shards;
      expect(shards.length).toBe(Math.ceil(index.splits[split].tokens / 7));
      expect(shards.slice(0, -1).every((s) => s.tokens === 7)).toBe(true);
      const ds = TokenDataset.open(many).split(split);
      expect(Array.from(ds.read(0, ds.tokens))).toEqual(rawStream(one, split));
    }
  });

  it('uint16 up to a 65536 vocabulary, uint32 above', async () => {
    expect(tokenDtypeFor(400)).toBe('uint16');
    expect(tokenDtypeFor(65536)).toBe('uint16');
    expect(tokenDtypeFor(65537)).toBe('uint32');
    const json = structuredClone(TOKENIZER.json) as { added_tokens: object[]; model: { vocab: Record<string, number> } };
    json.added_tokens.push({ id: 70000, content: '<|big|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    json.model.vocab['<|big|>'] = 70000;
    const big = Tokenizer.fromObjects(json, { eos_token: '<|big|>' });
    const small = freshDir();
    const wide = freshDir();
    await buildDataset({ documents: docs.slice(0, 50), tokenizer: TOKENIZER, outDir: small, heldOutFraction: 0 });
    const { index } = await buildDataset({ documents: docs.slice(0, 50), tokenizer: { json, config: { eos_token: '<|big|>' } }, outDir: wide, heldOutFraction: 0 });
    expect(index.dtype).toBe('uint32');
    expect(index.vocabSize).toBe(70001);
    const stream = rawStream(wide, 'train');
    expect(readFileSync(join(wide, index.splits.train.shards[0]!.file)).length).toBe(4 * stream.length);
    expect(stream.filter((id) => id === 70000).length).toBe(50);
    expect(big.decode(stream).split('<|big|>')).toEqual([...docs.slice(0, 50).map((d) => d.text), '']);
    expect(stream.map((id) => (id === 70000 ? 0 : id))).toEqual(rawStream(small, 'train'));
  });
});

describe('crash safety and rebuilds', () => {
  const docs = makeTexts(60, 6).map((text, i): TextDocument => ({ id: `r${i}`, text }));

  it('a rebuild replaces the old shards and keeps files it does not own', async () => {
    const out = freshDir();
    await buildDataset({ documents: docs, tokenizer: TOKENIZER, outDir: out, shardTokens: 50 });
    writeFileSync(join(out, 'README.txt'), 'mine');
    const { index } = await buildDataset({ documents: docs.slice(0, 10), tokenizer: out, outDir: out });
    const expected = ['README.txt', 'heldout-offsets.bin', 'index.json', 'tokenizer.json', 'tokenizer_config.json', 'train-00000.bin', 'train-offsets.bin'];
    if (index.splits.heldout.shards.length) expected.push('heldout-00000.bin');
    expect(readdirSync(out).sort()).toEqual(expected.sort());
    expect(TokenDataset.open(out).split('train').documents + index.splits.heldout.documents).toBe(10);
  });

  it('a source that throws midway leaves no index.json and no shards', async () => {
    const failing = async function* (): AsyncGenerator<Document> {
      for (const [i, d] of docs.entries()) {
        if (i === 40) throw new Error('source broke');
        yield d;
      }
    };
    const fresh = freshDir();
    await expect(buildDataset({ documents: failing(), tokenizer: TOKENIZER, outDir: fresh, shardTokens: 64 })).rejects.toThrow('source broke');
    expect(existsSync(fresh)).toBe(false);
    // over an existing dataset: the old one stops looking complete, nothing of the new one stays
    const existing = freshDir();
    await buildDataset({ documents: docs, tokenizer: TOKENIZER, outDir: existing });
    writeFileSync(join(existing, 'keep.txt'), 'x');
    await expect(buildDataset({ documents: failing(), tokenizer: TOKENIZER, outDir: existing, shardTokens: 64 })).rejects.toThrow('source broke');
    expect(readdirSync(existing)).toEqual(['keep.txt']);
    expect(() => TokenDataset.open(existing)).toThrow(/index\.json not found.*did not finish/);
  });

  it('bad options and documents are named', async () => {
    await expect(buildDataset({ documents: docs, tokenizer: TOKENIZER, outDir: freshDir(), heldOutFraction: 1.5 })).rejects.toThrow(/heldOutFraction is 1.5/);
    const noEos = { json: TOKENIZER.json, config: {} };
    await expect(buildDataset({ documents: docs, tokenizer: noEos, outDir: freshDir() })).rejects.toThrow(/no eos_token.*appendEos: false/);
    const bad = [docs[0]!, { id: 3, body: 'x' } as unknown as Document];
    await expect(buildDataset({ documents: bad, tokenizer: TOKENIZER, outDir: freshDir(), source: 'list' })).rejects.toThrow(/document #1 of list/);
  });
});

describe('SOTU corpus', () => {
  it('has 233 addresses by year; a build of the first 10 decodes back', async () => {
    const all = sotuAddresses();
    expect(all.length).toBe(233);
    expect(all.every((a, i) => i === 0 || all[i - 1]!.year <= a.year)).toBe(true);
    const first = [];
    for await (const d of sotuDocuments({ limit: 10 })) first.push(d);
    expect(first.map((d) => d.id).slice(0, 2)).toEqual(['1790-George Washington', '1791-George Washington']);
    const texts = first.map((d) => (d as TextDocument).text);
    const files: TokenizerFiles = { json: trainByteLevelBpe(texts, { vocabSize: 1024, specialTokens: [EOS] }), config: { eos_token: EOS } };
    const out = freshDir();
    const built = await buildDataset({ documents: sotuDocuments({ limit: 10 }), tokenizer: files, outDir: out, heldOutFraction: 0.2 });
    const tok = built.tokenizer;
    const stream = (s: 'train' | 'heldout'): string => tok.decode(rawStream(out, s));
    const decoded = [...stream('train').split(EOS), ...stream('heldout').split(EOS)].filter((t) => t !== '').sort();
    expect(decoded).toEqual([...texts].sort());
    expect(built.index.source).toMatch(/^sotu/);
    console.log(`SOTU first 10: ${built.index.splits.train.tokens + built.index.splits.heldout.tokens} tokens in ${built.elapsedMs.toFixed(0)} ms (${(built.tokensPerSecond / 1e3).toFixed(0)} k tokens/s)`);
  });
});
