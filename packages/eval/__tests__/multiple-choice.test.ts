// lm-evaluation-harness multiple-choice scoring against a bigram stub (logits depend on the last token only), with
// every expected log-likelihood computed here in float64: acc vs acc_norm, token alignment of contexts and
// continuations, batching of equal-length inputs, truncation, and JSONL errors.
import { describe, expect, it } from 'vitest';
import { encodePair, evaluateMultipleChoice, loglikelihoods, meanStderr, parseMultipleChoiceJsonl, readMultipleChoiceTask } from '../src/index.js';
import { logSoftmaxAt, stubModel, wordCodec } from './stubs.js';

const VOCAB = ['Q', ' a', ' bbbb', 'The', ' cat', ' x', ' y', ' z', ' dog', '<s>'];
const V = VOCAB.length;
const id = (w: string): number => VOCAB.indexOf(w);
const codec = wordCodec(VOCAB);
/** bigram logits: a few hand-set entries per previous token, 0 elsewhere */
const TABLE: Record<string, Record<string, number>> = {
  'Q': { ' a': 2, ' bbbb': 1 },
  ' cat': { ' x': 1.5, ' z': 0.5 },
  ' x': { ' y': 3 },
  '<s>': { ' dog': 1 },
};
const bigram = (prev: string): number[] => VOCAB.map((w) => TABLE[prev]?.[w] ?? 0);
const model = (): ReturnType<typeof stubModel> => stubModel(V, (c) => bigram(VOCAB[c[c.length - 1]!]!));
/** log p(next | prev) */
const lp = (prev: string, next: string): number => logSoftmaxAt(bigram(prev), id(next));

const EX1 = { context: 'Q', choices: ['a', 'bbbb'], gold: 1 };
const EX2 = { context: 'The cat', choices: ['x y', 'z'], gold: 0 };
const EX3 = { context: '', choices: ['dog', 'cat'], gold: 0 };
const EX4 = { ...EX1, gold: 0 };

describe('encodePair (the harness _encode_pair)', () => {
  it('moves trailing context whitespace into the continuation and takes the whole encoding past the context', () => {
    expect(encodePair(codec, { context: 'The cat', continuation: ' x y' })).toEqual({ context: [id('The'), id(' cat')], continuation: [id(' x'), id(' y')] });
    expect(encodePair(codec, { context: 'Q ', continuation: 'a' })).toEqual({ context: [id('Q')], continuation: [id(' a')] });
    expect(encodePair(codec, { context: 'Q', continuation: ' a' }, { prefixTokens: [id('<s>')] })).toEqual({ context: [id('<s>'), id('Q')], continuation: [id(' a')] });
  });

  it('an empty context needs prefixTokens', () => {
    expect(() => encodePair(codec, { context: '', continuation: ' dog' })).toThrow(/context is empty; set prefixTokens/);
    expect(encodePair(codec, { context: '', continuation: ' dog' }, { prefixTokens: [id('<s>')] })).toEqual({ context: [id('<s>')], continuation: [id(' dog')] });
  });
});

describe('evaluateMultipleChoice', () => {
  it('acc takes the largest log-likelihood, acc_norm the largest per character (they differ on EX1)', async () => {
    const r = await evaluateMultipleChoice(model(), codec, [EX1, EX2, EX3, EX4], { prefixTokens: [id('<s>')], task: 'toy' });
    const want = [
      [lp('Q', ' a'), lp('Q', ' bbbb')],
      [lp(' cat', ' x') + lp(' x', ' y'), lp(' cat', ' z')],
      [lp('<s>', ' dog'), lp('<s>', ' cat')],
      [lp('Q', ' a'), lp('Q', ' bbbb')],
    ];
    r.examples.forEach((e, i) => e.logliks.forEach((l, k) => expect(l).toBeCloseTo(want[i]![k]!, 12)));
    // EX1: -0.896 (1 char) beats -1.896 (4 chars) on loglik; per character -0.896 < -0.474
    expect(want[0]![0]! > want[0]![1]!).toBe(true);
    expect(want[0]![0]! / 1 < want[0]![1]! / 4).toBe(true);
    expect(r.examples.map((e) => [e.pred, e.predNorm])).toEqual([[0, 1], [0, 0], [0, 0], [0, 1]]);
    expect(r.examples.map((e) => [e.acc, e.acc_norm])).toEqual([[0, 1], [1, 1], [1, 1], [1, 0]]);
    expect(r.examples[0]!.isGreedy).toEqual([true, false]);
    expect(r.examples[1]!.isGreedy).toEqual([true, false]);
    expect(r).toMatchObject({ task: 'toy', n: 4, acc: 0.75, acc_norm: 0.75 });
    // sample std (ddof 1) of [0,1,1,1] is 0.5, / sqrt(4)
    expect(r.stderr.acc).toBeCloseTo(0.25, 14);
    expect(r.stderr.acc_norm).toBeCloseTo(0.25, 14);
  });

  it('acc_norm divides by the choice length in code points (Python len), without the delimiter', async () => {
    const vocab = ['Q', ' 𝑥', ' ab'];
    const m = stubModel(3, () => [0, 1.0, 0.5]);
    // lse = log(1 + e + e^0.5) ≈ 1.680: 𝑥 -0.680 / 1 char < ab -1.180 / 2; per UTF-16 unit (2) 𝑥 would win
    const r = await evaluateMultipleChoice(m, wordCodec(vocab), [{ context: 'Q', choices: ['𝑥', 'ab'], gold: 0 }]);
    expect(r.examples[0]!.pred).toBe(0);
    expect(r.examples[0]!.predNorm).toBe(1);
    expect(Number.isNaN(r.stderr.acc)).toBe(true);
  });

  it('a custom target delimiter', async () => {
    const vocab = ['Q', ':', ':a', ':b'];
    const m = stubModel(4, () => [0, 0, 2, 1]);
    const r = await evaluateMultipleChoice(m, { encode: (t) => (t.match(/^Q|:[ab]?/g) ?? []).map((p) => vocab.indexOf(p)), decode: () => '' },
      [{ context: 'Q', choices: ['a', 'b'], gold: 0 }], { targetDelimiter: ':' });
    expect(r.examples[0]!.logliks[0]).toBeCloseTo(logSoftmaxAt([0, 0, 2, 1], 2), 12);
    expect(r.acc).toBe(1);
  });

  it('rejects examples it cannot score', async () => {
    await expect(evaluateMultipleChoice(model(), codec, [{ context: 'Q', choices: ['a'], gold: 0 }], { task: 't' })).rejects.toThrow(/t example 0: "choices" must hold at least 2 strings/);
    await expect(evaluateMultipleChoice(model(), codec, [{ ...EX1, gold: 2 }])).rejects.toThrow(/"gold" must be an integer index into the 2 choices, got number 2/);
  });
});

describe('loglikelihoods: batching and truncation', () => {
  it('requests of equal input length share forward passes (longest first), results independent of batch size', async () => {
    const requests = [
      { context: 'Q', continuation: ' a' }, { context: 'The cat', continuation: ' x y' },
      { context: 'Q', continuation: ' bbbb' }, { context: 'The cat', continuation: ' z' }, { context: 'Q', continuation: ' z' },
    ];
    const m1 = model(), m2 = model();
    const big = await loglikelihoods(m1, codec, requests);
    const small = await loglikelihoods(m2, codec, requests, { batchSize: 2 });
    // inputs: (context + continuation)[:-1] -> lengths 1, 3, 1, 2, 1
    expect(m1.calls.map((c) => [c.length, c[0]!.length])).toEqual([[1, 3], [1, 2], [3, 1]]);
    expect(m2.calls.map((c) => [c.length, c[0]!.length])).toEqual([[1, 3], [1, 2], [2, 1], [1, 1]]);
    expect(m1.calls[0]).toEqual([[id('The'), id(' cat'), id(' x')]]);
    expect(small).toEqual(big);
    expect(big.map((r) => r.tokens)).toEqual([1, 2, 1, 1, 1]);
    expect(big[4]!.loglik).toBeCloseTo(lp('Q', ' z'), 12);
  });

  it('maxLength keeps the last maxLength+1 tokens (left truncation) and refuses continuations longer than it', async () => {
    const m = model();
    const [r] = await loglikelihoods(m, codec, [{ context: 'The cat', continuation: ' x y' }], { maxLength: 2 });
    expect(m.calls).toEqual([[[id(' cat'), id(' x')]]]);
    expect(r!.loglik).toBeCloseTo(lp(' cat', ' x') + lp(' x', ' y'), 12);
    await expect(loglikelihoods(m, codec, [{ context: 'Q', continuation: ' x y' }], { maxLength: 1 })).rejects.toThrow(/2 continuation tokens, more than maxLength 1/);
    await expect(loglikelihoods(m, codec, [{ context: 'Q', continuation: '' }])).rejects.toThrow(/request 0 has no continuation tokens/);
  });
});

describe('multiple-choice JSONL', () => {
  it('parses lines (blank lines and CRLF allowed), keeping extra fields', () => {
    const text = '{"context":"Q","choices":["a","b"],"gold":1,"id":"x/0"}\r\n\n{"context":"","choices":["c","d"],"gold":0}\n';
    expect(parseMultipleChoiceJsonl(text, 'f.jsonl')).toEqual([{ context: 'Q', choices: ['a', 'b'], gold: 1, id: 'x/0' }, { context: '', choices: ['c', 'd'], gold: 0 }]);
  });

  it('names the file and line of every error', () => {
    const good = '{"context":"Q","choices":["a","b"],"gold":1}';
    const bad = (line: string): (() => unknown) => () => parseMultipleChoiceJsonl(`${good}\n${line}\n`, 'tasks.jsonl');
    expect(bad('{"context": "Q",')).toThrow(/^tasks\.jsonl:2: invalid JSON \(.*\); each line must be one JSON object$/);
    expect(bad('[1, 2]')).toThrow('tasks.jsonl:2: expected an object {"context": string, "choices": string[], "gold": integer}, got an array of 2');
    expect(bad('{"context": 5, "choices": ["a","b"], "gold": 0}')).toThrow('tasks.jsonl:2: "context" must be a string, got number 5');
    expect(bad('{"context": "Q", "choices": ["a"], "gold": 0}')).toThrow('tasks.jsonl:2: "choices" must hold at least 2 strings, got an array of 1');
    expect(bad('{"context": "Q", "choices": ["a", 3], "gold": 0}')).toThrow('tasks.jsonl:2: "choices"[1] must be a non-empty string, got number 3');
    expect(bad('{"context": "Q", "choices": ["a", "b"]}')).toThrow('tasks.jsonl:2: "gold" must be an integer index into the 2 choices, got nothing (missing)');
    expect(bad('{"context": "Q", "choices": ["a", "b"], "gold": 1.5}')).toThrow(/tasks\.jsonl:2: "gold" .* got number 1\.5/);
  });

  it('a missing file is named', () => {
    expect(() => readMultipleChoiceTask('/nonexistent/dir/t.jsonl')).toThrow(/^\/nonexistent\/dir\/t\.jsonl: cannot read the task file/);
  });

  it('meanStderr is the sample standard deviation over sqrt(n)', () => {
    // values 1,2,3,4: mean 2.5, sample variance 5/3
    expect(meanStderr([1, 2, 3, 4])).toBeCloseTo(Math.sqrt(5 / 3 / 4), 14);
  });
});
