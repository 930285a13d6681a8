// Byte-level BPE training (GPT-2 style) producing a complete Hugging Face tokenizer.json object.
//
// Pipeline, as in GPT-2 / HF `tokenizers` ByteLevelBPETokenizer:
//   text -> split out special tokens -> GPT-2 regex pre-tokenization -> UTF-8 bytes -> GPT-2 byte-to-unicode
//   alphabet (every byte is one printable char, so a byte sequence is a string of chars) -> count words ->
//   repeatedly merge the most frequent adjacent symbol pair.
//
// Training keeps a word-frequency table (unique pre-tokenized words with counts), the pair counts and, per pair,
// the set of words containing it. A merge only rewrites the words that contain the pair and applies the resulting
// pair-count deltas; the best pair comes from a lazy max-heap (stale entries are re-checked on pop).
// Ties on frequency are broken by the pair's strings (left token, then right token, in code-unit order), so the
// result does not depend on the order of the input texts.

import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** GPT-2 pre-tokenization pattern (the ByteLevel pre-tokenizer with use_regex: true). */
export const GPT2_SPLIT_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2 byte order: printable bytes first ('!'..'~', '¡'..'¬', '®'..'ÿ'), then the rest in increasing order. */
function gpt2ByteOrder(): number[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const printable = new Set(bs);
  for (let b = 0; b < 256; b++) if (!printable.has(b)) bs.push(b);
  return bs;
}

const BYTE_ORDER: readonly number[] = gpt2ByteOrder();

/** GPT-2 bytes_to_unicode: BYTE_TO_UNICODE[byte] is the single character that stands for that byte. */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const table = new Array<string>(256);
  let n = 0;
  BYTE_ORDER.forEach((b, i) => {
    // the first 188 entries of BYTE_ORDER are the printable bytes, which map to themselves
    table[b] = i < 188 ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  });
  return table;
})();

/** The 256 byte characters in GPT-2 vocabulary order (ids 0..255 of GPT-2's vocab.json). */
export const BYTE_LEVEL_ALPHABET: readonly string[] = BYTE_ORDER.map((b) => BYTE_TO_UNICODE[b]!);

export interface TrainByteLevelBpeOptions {
  /** total vocabulary size: special tokens + 256 byte symbols + merges */
  vocabSize: number;
  /** a pair is merged only if it occurs at least this often (default 2) */
  minFrequency?: number;
  /** added first, with ids 0..n-1 (e.g. ['<|endoftext|>', '<|pad|>']); never split, never part of merges */
  specialTokens?: readonly string[];
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

interface ByteLevelComponent {
  type: 'ByteLevel';
  add_prefix_space: boolean;
  trim_offsets: boolean;
  use_regex: boolean;
}

/** The tokenizer.json object produced by `trainByteLevelBpe` (the layout HF `tokenizers` serializes). */
export interface ByteLevelBpeTokenizerJson {
  version: '1.0';
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJson[];
  normalizer: null;
  pre_tokenizer: ByteLevelComponent;
  post_processor: ByteLevelComponent;
  decoder: ByteLevelComponent;
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: boolean;
    byte_fallback: boolean;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    /** "left right" strings, highest priority first (byte-level tokens never contain a space) */
    merges: string[];
  };
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Binary max-heap of (count, pair key) with a caller-supplied tie-break for equal counts. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  constructor(private readonly tieBefore: (a: number, b: number) => boolean) {}

  get size(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.tieBefore(this.keys[i]!, this.keys[j]!));
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** removes the top entry and returns it as [count, key] (undefined when empty) */
  pop(): [number, number] | undefined {
    const n = this.counts.length;
    if (n === 0) return undefined;
    const top: [number, number] = [this.counts[0]!, this.keys[0]!];
    const lastC = this.counts.pop()!;
    const lastK = this.keys.pop()!;
    if (n > 1) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      const m = n - 1;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < m && this.above(l, best)) best = l;
        if (r < m && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/** Counts GPT-2 pre-tokenized words (raw strings, before the byte mapping), special tokens removed. */
function countWords(texts: Iterable<string>, specialTokens: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  const specials =
    specialTokens.length > 0
      ? new RegExp([...specialTokens].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|'), 'u')
      : null;
  const pattern = new RegExp(GPT2_SPLIT_PATTERN.source, 'gu');
  for (const text of texts) {
    if (typeof text !== 'string') throw new TypeError(`trainByteLevelBpe: texts must be strings, got ${typeof text}`);
    const segments = specials ? text.split(specials) : [text];
    for (const segment of segments) {
      if (segment.length === 0) continue;
      pattern.lastIndex = 0;
      for (const m of segment.matchAll(pattern)) {
        const w = m[0];
        counts.set(w, (counts.get(w) ?? 0) + 1);
      }
    }
  }
  return counts;
}

/**
 * Trains a byte-level BPE tokenizer (GPT-2 style) and returns a complete tokenizer.json object: special tokens get
 * ids 0..n-1, the 256 byte symbols follow in GPT-2 order, then one id per merge. Training stops at `vocabSize` or
 * when no pair occurs `minFrequency` times (then the vocabulary is smaller than requested).
 */
export function trainByteLevelBpe(texts: Iterable<string>, options: TrainByteLevelBpeOptions): ByteLevelBpeTokenizerJson {
  const { vocabSize, minFrequency = 2 } = options;
  const specialTokens = [...(options.specialTokens ?? [])];
  if (new Set(specialTokens).size !== specialTokens.length) throw new Error('trainByteLevelBpe: duplicate special tokens');
  if (specialTokens.some((t) => t.length === 0)) throw new Error('trainByteLevelBpe: empty special token');
  const base = specialTokens.length + 256;
  if (!Number.isInteger(vocabSize) || vocabSize < base) {
    throw new RangeError(
      `trainByteLevelBpe: vocabSize must be an integer >= ${base} (${specialTokens.length} special tokens + 256 bytes), got ${vocabSize}`,
    );
  }
  if (!(minFrequency >= 1)) throw new RangeError(`trainByteLevelBpe: minFrequency must be >= 1, got ${minFrequency}`);

  // vocabulary: id -> string, string -> id
  const tokens: string[] = [];
  const tokenIds = new Map<string, number>();
  const addToken = (t: string): number => {
    const id = tokens.length;
    tokens.push(t);
    tokenIds.set(t, id);
    return id;
  };
  for (const t of specialTokens) addToken(t);
  for (const ch of BYTE_LEVEL_ALPHABET) {
    if (tokenIds.has(ch)) throw new Error(`trainByteLevelBpe: special token ${JSON.stringify(ch)} collides with a byte symbol`);
    addToken(ch);
  }
  const byteId = new Int32Array(256);
  for (let b = 0; b < 256; b++) byteId[b] = tokenIds.get(BYTE_TO_UNICODE[b]!)!;

  // word-frequency table as symbol-id sequences
  const wordCounts = countWords(texts, specialTokens);
  const encoder = new TextEncoder();
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [w, f] of wordCounts) {
    const bytes = encoder.encode(w);
    if (bytes.length < 2) continue; // a single symbol never takes part in a pair
    const sym = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) sym[i] = byteId[bytes[i]!]!;
    words.push(sym);
    freqs.push(f);
  }

  // pair key = left * V + right (ids < vocabSize = V)
  const V = vocabSize;
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const notePair = (key: number, w: number): void => {
    let s = pairWords.get(key);
    if (s === undefined) pairWords.set(key, (s = new Set()));
    s.add(w);
  };
  for (let w = 0; w < words.length; w++) {
    const sym = words[w]!;
    const f = freqs[w]!;
    for (let i = 0; i + 1 < sym.length; i++) {
      const key = sym[i]! * V + sym[i + 1]!;
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + f);
      notePair(key, w);
    }
  }

  const tieBefore = (ka: number, kb: number): boolean => {
    if (ka === kb) return false;
    const la = tokens[Math.floor(ka / V)]!;
    const lb = tokens[Math.floor(kb / V)]!;
    if (la !== lb) return la < lb;
    return tokens[ka % V]! < tokens[kb % V]!;
  };
  const heap = new PairHeap(tieBefore);
  for (const [key, count] of pairCounts) heap.push(count, key);

  const merges: string[] = [];
  const deltas = new Map<number, number>();
  while (tokens.length < vocabSize) {
    const top = heap.pop();
    if (top === undefined) break;
    const [stored, key] = top;
    const count = pairCounts.get(key) ?? 0;
    if (count !== stored) {
      // stale entry: counts only drop between pushes (every increase pushes a fresh entry)
      if (count > 0 && count < stored) heap.push(count, key);
      continue;
    }
    if (count < minFrequency) break;

    const a = Math.floor(key / V);
    const b = key % V;
    const merged = tokens[a]! + tokens[b]!;
    const newId = tokenIds.get(merged) ?? addToken(merged);
    merges.push(`${tokens[a]} ${tokens[b]}`);

    deltas.clear();
    const bump = (k: number, d: number): void => {
      deltas.set(k, (deltas.get(k) ?? 0) + d);
    };
    for (const w of pairWords.get(key) ?? []) {
      const sym = words[w]!;
      const f = freqs[w]!;
      const n = sym.length;
      let r = 0;
      let wr = 0;
      let changed = false;
      while (r < n) {
        if (r + 1 < n && sym[r] === a && sym[r + 1] === b) {
          changed = true;
          if (wr > 0) {
            const prev = sym[wr - 1]!;
            bump(prev * V + a, -f);
            const k = prev * V + newId;
            bump(k, f);
            notePair(k, w);
          }
          if (r + 2 < n) {
            const next = sym[r + 2]!;
            bump(b * V + next, -f);
            const k = newId * V + next;
            bump(k, f);
            notePair(k, w);
          }
          sym[wr++] = newId;
          r += 2;
        } else {
          sym[wr++] = sym[r++]!;
        }
      }
      if (changed) sym.length = wr;
    }
    // every occurrence of (a, b) is gone now
    pairCounts.delete(key);
    pairWords.delete(key);
    for (const [k, d] of deltas) {
      if (k === key || d === 0) continue;
      const c = (pairCounts.get(k) ?? 0) + d;
      if (c <= 0) {
        pairCounts.delete(k);
        pairWords.delete(k);
      } else {
        pairCounts.set(k, c);
        if (d > 0) heap.push(c, k);
      }
    }
  }

  // null prototype: a learned token may well be "__proto__" (e.g. from JavaScript text)
  const vocab = Object.create(null) as Record<string, number>;
  tokens.forEach((t, id) => {
    vocab[t] = id;
  });
  const byteLevel = (add_prefix_space: boolean, trim_offsets: boolean): ByteLevelComponent => ({
    type: 'ByteLevel',
    add_prefix_space,
    trim_offsets,
    use_regex: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specialTokens.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel(false, true),
    post_processor: byteLevel(true, false),
    decoder: byteLevel(true, true),
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/** Writes `path` atomically: a temporary file in the same directory, flushed to disk, then renamed over `path`. */
async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const fh = await open(tmp, 'w');
  try {
    try {
      await fh.writeFile(data, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

export interface SavedTokenizerPaths {
  tokenizerJson: string;
  tokenizerConfig: string | null;
}

/**
 * Writes `tokenizer.json` (and `tokenizer_config.json` when a config is given) into `dir` (created if needed), each
 * atomically (temp file + rename), so a reader never sees a partial file.
 */
export async function saveTokenizer(
  dir: string,
  tokenizerJson: object,
  tokenizerConfig?: Record<string, unknown> | null,
): Promise<SavedTokenizerPaths> {
  await mkdir(dir, { recursive: true });
  const tokenizerPath = join(dir, 'tokenizer.json');
  await writeFileAtomic(tokenizerPath, JSON.stringify(tokenizerJson, null, 2) + '\n');
  let configPath: string | null = null;
  if (tokenizerConfig) {
    configPath = join(dir, 'tokenizer_config.json');
    await writeFileAtomic(configPath, JSON.stringify(tokenizerConfig, null, 2) + '\n');
  }
  return { tokenizerJson: tokenizerPath, tokenizerConfig: configPath };
}
