// Byte-level BPE trainer: vocabulary layout, determinism, round trips, special tokens, and agreement of
// @huggingface/tokenizers (through Tokenizer) with a plain reference encoder written here from the GPT-2 rules.
import { existsSync, readdirSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tokenizer, saveTokenizer, trainByteLevelBpe } from '../src/tokenizer/index.js';
import type { ByteLevelBpeTokenizerJson } from '../src/tokenizer/index.js';
import { makeDocuments, mulberry32 } from './fixtures/tokenizer/corpus.js';

const SPECIALS = ['<|endoftext|>', '<|pad|>'];
const DOCS = makeDocuments(7, 400); // ~100 KB
const CORPUS = DOCS.join('<|endoftext|>');

// ---- reference encoder (independent of the library and of the trainer) ----
// GPT-2 encoder.py bytes_to_unicode
const REF_BYTE_CHARS: string[] = (() => {
  const bs: number[] = [];
  for (let b = '!'.charCodeAt(0); b <= '~'.charCodeAt(0); b++) bs.push(b);
  for (let b = '¡'.charCodeAt(0); b <= '¬'.charCodeAt(0); b++) bs.push(b);
  for (let b = '®'.charCodeAt(0); b <= 'ÿ'.charCodeAt(0); b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table: string[] = [];
  bs.forEach((b, i) => (table[b] = String.fromCharCode(cs[i]!)));
  return table;
})();
const REF_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

function referenceEncoder(json: ByteLevelBpeTokenizerJson): (text: string) => number[] {
  const ranks = new Map(json.model.merges.map((m, i) => [m, i]));
  const vocab = json.model.vocab;
  const specials = json.added_tokens.map((t) => t.content);
  const bpe = (piece: string): string[] => {
    let word = Array.from(new TextEncoder().encode(piece), (b) => REF_BYTE_CHARS[b]!);
    for (;;) {
      // the adjacent pair with the lowest merge rank; merge all its occurrences left to right (GPT-2 encoder.py)
      let best: string | null = null;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) [best, bestRank] = [`${word[i]} ${word[i + 1]}`, r];
      }
      if (best === null) return word;
      const [a, b] = best.split(' ') as [string, string];
      const out: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
          out.push(a + b);
          i += 2;
        } else out.push(word[i++]!);
      }
      word = out;
    }
  };
  return (text) => {
    const ids: number[] = [];
    let rest = text;
    while (rest.length > 0) {
      // earliest special token (longest first at the same position)
      let at = rest.length;
      let found = '';
      for (const s of specials) {
        const i = rest.indexOf(s);
        if (i >= 0 && (i < at || (i === at && s.length > found.length))) [at, found] = [i, s];
      }
      for (const m of rest.slice(0, at).matchAll(REF_PATTERN)) for (const t of bpe(m[0])) ids.push(vocab[t]!);
      if (found) ids.push(vocab[found]!);
      rest = rest.slice(at + found.length);
    }
    return ids;
  };
}

/** Naive trainer: recount every pair after every merge; same rule (most frequent, then smallest left, right strings). */
function naiveMerges(texts: string[], numMerges: number): string[] {
  const words = new Map<string, number>();
  for (const t of texts) for (const m of t.matchAll(REF_PATTERN)) words.set(m[0], (words.get(m[0]) ?? 0) + 1);
  const table = [...words].map(([w, f]) => ({ sym: Array.from(new TextEncoder().encode(w), (b) => REF_BYTE_CHARS[b]!), f }));
  const merges: string[] = [];
  while (merges.length < numMerges) {
    const counts = new Map<string, number>();
    for (const { sym, f } of table) for (let i = 0; i + 1 < sym.length; i++) counts.set(`${sym[i]}\u0000${sym[i + 1]}`, (counts.get(`${sym[i]}\u0000${sym[i + 1]}`) ?? 0) + f);
    let best: [string, string] | null = null;
    let bestCount = 0;
    for (const [k, c] of counts) {
      const [a, b] = k.split('\u0000') as [string, string];
      if (c > bestCount || (c === bestCount && best !== null && (a < best[0] || (a === best[0] && b < best[1])))) [best, bestCount] = [[a, b], c];
    }
    if (best === null || bestCount < 2) break;
    const [a, b] = best;
    merges.push(`${a} ${b}`);
    for (const w of table) {
      const out: string[] = [];
      for (let i = 0; i < w.sym.length; ) {
        if (i + 1 < w.sym.length && w.sym[i] === a && w.sym[i + 1] === b) {
          out.push(a + b);
          i += 2;
        } else out.push(w.sym[i++]!);
      }
      w.sym = out;
    }
  }
  return merges;
}

function randomString(rand: () => number, length: number): string {
  const pools = [
    'abcdefghijklmnopqrstuvwxyz',
    'ABCXYZ0123456789',
    ' \n\t\r  ',
    ".,;:!?'\"()[]{}<>|-_=+*/\\",
    'éèüößñçøåæ',
    '日本語テキスト中文한국어',
    'αβγδεжзий',
    '🙂🚀👍🏽🇫🇷𝔘𝔫𝔦',
  ];
  let s = '';
  while (s.length < length) {
    const pool = Array.from(pools[Math.floor(rand() * pools.length)]!);
    s += pool[Math.floor(rand() * pool.length)]!;
  }
  return s;
}

const ROUND_TRIP = [
  '',
  'the model',
  'Hello, World! 🙂 naïve café — 日本語テキスト\n\ttabs  and   spaces\r\n',
  'zzqx unseen wörds ∮ E⋅da = Q, n → ∞ 👍🏽 🇫🇷',
  '   leading and trailing   ',
  '\n\n\n',
  "It's what they've said; we'd go, I'll see.",
  '<|endoftext|>between<|pad|><|pad|> specials<|endoftext|>',
  '\u0000\u0001\u007f\u00ad\ufeff control bytes',
];

describe('trainByteLevelBpe', () => {
  const json = trainByteLevelBpe(DOCS, { vocabSize: 700, specialTokens: SPECIALS });
  const tok = Tokenizer.fromObjects(json, { eos_token: '<|endoftext|>', pad_token: '<|pad|>' });

  it('lays out specials, the 256 GPT-2 byte symbols, then merges; vocab size as requested', () => {
    const vocab = json.model.vocab;
    expect(Object.keys(vocab)).toHaveLength(700);
    expect(new Set(Object.values(vocab))).toEqual(new Set(Array.from({ length: 700 }, (_, i) => i)));
    expect([vocab['<|endoftext|>'], vocab['<|pad|>']]).toEqual([0, 1]);
    expect(vocab['!']).toBe(2); // GPT-2 id 0
    expect(vocab['Ġ']).toBe(2 + 220); // GPT-2 id 220
    expect(vocab['Ċ']).toBe(2 + 198);
    expect(json.model.merges.length).toBeGreaterThanOrEqual(700 - 258);
    for (const m of json.model.merges) {
      const [a, b] = m.split(' ');
      expect(vocab[a!]).toBeDefined();
      expect(vocab[b!]).toBeDefined();
      expect(vocab[a! + b!]).toBeDefined();
    }
    expect(tok.vocabSize).toBe(700);
    expect([tok.eosId, tok.padId]).toEqual([0, 1]);
    expect(json.added_tokens.map((t) => [t.id, t.content, t.special])).toEqual([
      [0, '<|endoftext|>', true],
      [1, '<|pad|>', true],
    ]);
    expect(json.pre_tokenizer).toMatchObject({ type: 'ByteLevel', add_prefix_space: false, use_regex: true });
    expect(json.decoder.type).toBe('ByteLevel');
    expect(json.model.type).toBe('BPE');
  });

  it('is deterministic across runs and independent of the order of the texts', () => {
    const again = trainByteLevelBpe(DOCS, { vocabSize: 700, specialTokens: SPECIALS });
    expect(again).toEqual(json);
    // any iterable, e.g. a generator streaming the documents
    const streamed = trainByteLevelBpe((function* () { yield* DOCS; })(), { vocabSize: 700, specialTokens: SPECIALS });
    expect(streamed.model.merges).toEqual(json.model.merges);
    const rand = mulberry32(99);
    const shuffled = DOCS.map((d) => [rand(), d] as const)
      .sort((x, y) => x[0] - y[0])
      .map(([, d]) => d);
    expect(trainByteLevelBpe(shuffled, { vocabSize: 700, specialTokens: SPECIALS }).model.merges).toEqual(json.model.merges);
    // one string with the documents joined by the special token: the special token is cut out, same words
    expect(trainByteLevelBpe([CORPUS], { vocabSize: 700, specialTokens: SPECIALS }).model.merges).toEqual(json.model.merges);
  });

  it('round-trips arbitrary text exactly, including text absent from the corpus', () => {
    const rand = mulberry32(3);
    const texts = [...ROUND_TRIP, ...Array.from({ length: 200 }, () => randomString(rand, 1 + Math.floor(rand() * 80)))];
    for (const text of texts) {
      expect(tok.decode(tok.encode(text))).toBe(text);
      expect(tok.decode(tok.encode(text, { addSpecialTokens: false }))).toBe(text);
    }
    expect(tok.decode(tok.encode(DOCS[0]!))).toBe(DOCS[0]);
  });

  it('learns exactly the merges of a naive recount-everything trainer', () => {
    const docs = DOCS.slice(0, 60);
    const fast = trainByteLevelBpe(docs, { vocabSize: 256 + 400 });
    expect(fast.model.merges).toHaveLength(400);
    expect(fast.model.merges).toEqual(naiveMerges(docs, 400));
  });

  it('makes frequent words single tokens', () => {
    for (const w of [' the', ' of', ' and', ' model', ' expert']) expect(tok.tokenize(w)).toEqual([w.replace(' ', 'Ġ')]);
    // the first merge is the most frequent pair of the corpus
    const pairs = new Map<string, number>();
    for (const doc of DOCS) {
      for (const m of doc.matchAll(REF_PATTERN)) {
        const chars = Array.from(new TextEncoder().encode(m[0]), (b) => REF_BYTE_CHARS[b]!);
        for (let i = 0; i + 1 < chars.length; i++) pairs.set(`${chars[i]} ${chars[i + 1]}`, (pairs.get(`${chars[i]} ${chars[i + 1]}`) ?? 0) + 1);
      }
    }
    const top = Math.max(...pairs.values());
    const tied = [...pairs].filter(([, c]) => c === top).map(([p]) => p);
    expect(tied).toContain(json.model.merges[0]);
  });

  it('loads in @huggingface/tokenizers and encodes exactly like the reference encoder', () => {
    const ref = referenceEncoder(json);
    const rand = mulberry32(11);
    const texts = [...ROUND_TRIP, ...DOCS.slice(0, 50), ...makeDocuments(1234, 20), ...Array.from({ length: 200 }, () => randomString(rand, 60))];
    for (const text of texts) expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ref(text));
    // encodes the corpus documents with far fewer tokens than bytes
    const doc = DOCS.slice(0, 20).join('');
    expect(tok.encode(doc).length).toBeLessThan(new TextEncoder().encode(doc).length / 2.5);
  });

  it('keeps special tokens whole and out of the merges', () => {
    expect(tok.encode('<|endoftext|>the<|pad|>')).toEqual([0, ...tok.encode('the'), 1]);
    expect(tok.decode(tok.encode('a<|pad|>b<|endoftext|>'), { skipSpecialTokens: true })).toBe('ab');
    const trainedOnSpecials = trainByteLevelBpe([CORPUS], { vocabSize: 700, specialTokens: SPECIALS });
    // (Object.keys order is not id order: integer-like keys such as "42" enumerate first)
    for (const [t, id] of Object.entries(trainedOnSpecials.model.vocab)) if (id >= 2) expect(t).not.toMatch(/<\||\|>|endoftext/);
    // without declaring it special, the separator is ordinary frequent text and gets merged
    const plain = trainByteLevelBpe([CORPUS], { vocabSize: 700 });
    expect(Object.keys(plain.model.vocab).some((t) => t.includes('endoftext'))).toBe(true);
  });

  it('minFrequency stops early; too small a vocabSize and bad specials are errors', () => {
    const none = trainByteLevelBpe(DOCS, { vocabSize: 5000, minFrequency: 1e9, specialTokens: SPECIALS });
    expect(none.model.merges).toEqual([]);
    expect(Object.keys(none.model.vocab)).toHaveLength(258);
    const some = trainByteLevelBpe(DOCS, { vocabSize: 5000, minFrequency: 200 });
    expect(Object.keys(some.model.vocab).length).toBeGreaterThan(256);
    expect(Object.keys(some.model.vocab).length).toBeLessThan(5000);
    // merges of a run with minFrequency are a prefix of the unconstrained run's
    const full = trainByteLevelBpe(DOCS, { vocabSize: 5000, minFrequency: 1 });
    expect(full.model.merges.slice(0, some.model.merges.length)).toEqual(some.model.merges);
    expect(() => trainByteLevelBpe(DOCS, { vocabSize: 257, specialTokens: SPECIALS })).toThrow(RangeError);
    expect(() => trainByteLevelBpe(DOCS, { vocabSize: 300, specialTokens: ['<a>', '<a>'] })).toThrow(/duplicate/);
    // an empty corpus still gives a complete byte-level tokenizer
    const empty = Tokenizer.fromObjects(trainByteLevelBpe([], { vocabSize: 300 }));
    expect(empty.decode(empty.encode('anything 🙂'))).toBe('anything 🙂');
  });

  it('tokens named like Object.prototype members ("constructor", "toString") are ordinary tokens', () => {
    const j = trainByteLevelBpe(Array.from({ length: 50 }, (_, i) => `a.__proto__ = b.constructor; o.toString(${i});\n`), { vocabSize: 400 });
    expect(Object.keys(j.model.vocab)).toEqual(expect.arrayContaining(['constructor', 'toString', 'proto']));
    const reloaded = JSON.parse(JSON.stringify(j)) as ByteLevelBpeTokenizerJson;
    expect(Object.keys(reloaded.model.vocab)).toHaveLength(Object.keys(j.model.vocab).length);
    const t = Tokenizer.fromObjects(reloaded);
    const text = 'x.__proto__.constructor.toString()';
    expect(t.tokenize(text)).toEqual(expect.arrayContaining(['proto', 'constructor', 'toString']));
    expect(t.encode(text)).toEqual(referenceEncoder(reloaded)(text));
    expect(t.decode(t.encode(text))).toBe(text);
  });

  it('repeated symbols merge left to right, as the encoders apply them', () => {
    // words: aaaaaaa, Ġaaaaaaa x2, Ġaaa x2; 'a a' (count 3+6+2) -> aa aa aa a; then 'aa aa' (2+4 > 'aa a' 1+2+2)
    const j = trainByteLevelBpe(['aaaaaaa aaaaaaa aaaaaaa aaa aaa'], { vocabSize: 258 });
    expect(j.model.merges).toEqual(['a a', 'aa aa']);
    const t = Tokenizer.fromObjects(j);
    expect(t.tokenize('aaaaaaa')).toEqual(['aaaa', 'aa', 'a']);
    expect(t.encode('aaaaaaa')).toEqual(referenceEncoder(j)('aaaaaaa'));
  });
});

describe('saveTokenizer', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('writes tokenizer.json (+ tokenizer_config.json) atomically; Tokenizer.fromDir reads them back', async () => {
    const root = mkdtempSync(join(tmpdir(), 'farskip-bpe-'));
    dirs.push(root);
    const dir = join(root, 'nested', 'tok');
    const json = trainByteLevelBpe(DOCS, { vocabSize: 400, specialTokens: SPECIALS });
    const config = { eos_token: '<|endoftext|>', pad_token: '<|pad|>', chat_template: '{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}' };
    const paths = await saveTokenizer(dir, json);
    expect(paths).toEqual({ tokenizerJson: join(dir, 'tokenizer.json'), tokenizerConfig: null });
    expect(existsSync(join(dir, 'tokenizer_config.json'))).toBe(false);
    await saveTokenizer(dir, json, config); // overwrite, now with a config
    expect(readdirSync(dir).sort()).toEqual(['tokenizer.json', 'tokenizer_config.json']); // no temp files left
    expect(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'))).toEqual(json);
    const tok = await Tokenizer.fromDir(dir);
    const inMemory = Tokenizer.fromObjects(json, config);
    expect(tok.encode(DOCS[1]!)).toEqual(inMemory.encode(DOCS[1]!));
    expect([tok.eosId, tok.padId, tok.vocabSize]).toEqual([0, 1, 400]);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('hi<|endoftext|>');
  });
});

describe('training speed', () => {
  it('~1 MB of text to vocab 4096 in seconds', () => {
    const docs = makeDocuments(2024, 2800, 80).map((d, i) => (i % 3 === 0 ? d.toUpperCase() : d) + String(i * 7919));
    const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d), 0);
    const t0 = performance.now();
    const json = trainByteLevelBpe(docs, { vocabSize: 4096, minFrequency: 1, specialTokens: SPECIALS });
    const seconds = (performance.now() - t0) / 1000;
    console.log(`trainByteLevelBpe: ${(bytes / 1e6).toFixed(2)} MB -> ${Object.keys(json.model.vocab).length} tokens in ${seconds.toFixed(2)} s (${(bytes / 1e6 / seconds).toFixed(1)} MB/s)`);
    expect(bytes).toBeGreaterThan(600_000);
    expect(seconds).toBeLessThan(30);
  });
});
