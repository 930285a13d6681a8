// Exact-match helpers and generation JSONL (the generation loop itself runs on a real model in golden-model.test.ts).
import { describe, expect, it } from 'vitest';
import { exactMatch, normalizeAnswer, parseGenerationJsonl, truncateAtStop } from '../src/index.js';

describe('truncateAtStop', () => {
  it('cuts before the earliest stop string of any kind', () => {
    expect(truncateAtStop(' 42\nQ: next', ['\n'])).toBe(' 42');
    expect(truncateAtStop('abc.</s>def\n', ['\n', '</s>'])).toBe('abc.');
    expect(truncateAtStop('no stop here', ['\n'])).toBe('no stop here');
    expect(truncateAtStop('x', ['', 'y'])).toBe('x');
  });
});

describe('exact match', () => {
  it('always trims; by default case and inner whitespace count', () => {
    expect(exactMatch('  Paris \n', 'Paris')).toBe(true);
    expect(exactMatch('paris', 'Paris')).toBe(false);
    expect(exactMatch('New  York', 'New York')).toBe(false);
  });

  it('normalize: true ignores case and collapses whitespace, not punctuation', () => {
    expect(exactMatch('new \t york', ' New York', true)).toBe(true);
    expect(exactMatch('New York.', 'New York', true)).toBe(false);
    expect(normalizeAnswer('  A\n\nB  C ', true)).toBe('a b c');
  });

  it('options one by one', () => {
    expect(exactMatch('New York.', 'new york', { ignorePunctuation: true, ignoreCase: true })).toBe(true);
    expect(exactMatch('New York', 'new york', { collapseWhitespace: true })).toBe(false);
    expect(exactMatch('New   York', 'New York', { collapseWhitespace: true })).toBe(true);
    expect(normalizeAnswer('“Yes!”, she said', { ignorePunctuation: true })).toBe('Yes she said');
  });
});

describe('generation JSONL', () => {
  it('parses {prompt, answer} lines and names file:line on errors', () => {
    expect(parseGenerationJsonl('{"prompt":"2+2=","answer":"4","id":1}\n', 'g.jsonl')).toEqual([{ prompt: '2+2=', answer: '4', id: 1 }]);
    expect(() => parseGenerationJsonl('{"prompt":"a","answer":"b"}\n{"prompt":"a"}', 'g.jsonl')).toThrow('g.jsonl:2: "answer" must be a string, got nothing (missing)');
    expect(() => parseGenerationJsonl('oops', 'g.jsonl')).toThrow(/^g\.jsonl:1: invalid JSON/);
    expect(() => parseGenerationJsonl('"text"', 'g.jsonl')).toThrow('g.jsonl:1: expected an object {"prompt": string, "answer": string}, got string "text"');
  });
});
