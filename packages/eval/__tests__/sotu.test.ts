// The SOTU task builder: deterministic, well-formed examples whose answers really come from the held-out address
// (checked against its raw text), and the committed task files equal to what the builder produces.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildSotuTasks, loadShippedTask, loadSotu, parseMultipleChoiceJsonl, shippedTaskPath, sotuHeldOut, toJsonl } from '../src/index.js';
import type { SotuExample } from '../src/index.js';
import { cleanTranscript, splitSentences } from '../src/tasks/text.js';

const corpus = loadSotu();
const shipped = buildSotuTasks({ seed: 1234, n: 200 });

function wellFormed(examples: SotuExample[], heldOutIds: number[]): void {
  for (const e of examples) {
    expect(e.choices).toHaveLength(4);
    expect(new Set(e.choices).size).toBe(4);
    expect(Number.isInteger(e.gold) && e.gold >= 0 && e.gold < 4).toBe(true);
    expect(heldOutIds).toContain(e.doc.id);
    expect(e.doc.year).toBe(corpus[e.doc.id]!.year);
    expect(e.context.length).toBeGreaterThan(0);
  }
}

describe('sotu held-out selection', () => {
  it('the last 5 % by year: 12 addresses, 2010–2021, ids 221–232', () => {
    expect(corpus).toHaveLength(233);
    const h = sotuHeldOut();
    expect(h.map((a) => a.id)).toEqual([221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232]);
    expect(h.map((a) => a.year)).toEqual([2010, 2011, 2012, 2013, 2014, 2015, 2016, 2017, 2018, 2019, 2020, 2021]);
    expect(shipped.heldOut).toEqual(h);
  });
});

describe('buildSotuTasks', () => {
  it('is deterministic for a seed and changes with it', () => {
    const again = buildSotuTasks({ seed: 1234, n: 200 });
    expect(again).toEqual(shipped);
    const other = buildSotuTasks({ seed: 7, n: 20 });
    expect(other.cloze.map((e) => e.context)).not.toEqual(shipped.cloze.slice(0, 20).map((e) => e.context));
  });

  it('next-sentence: 200 examples; the context and the gold choice are consecutive text of the address, distractors are not from it', () => {
    const ids = shipped.heldOut.map((a) => a.id);
    expect(shipped.nextSentence).toHaveLength(200);
    wellFormed(shipped.nextSentence, ids);
    for (const e of shipped.nextSentence) {
      const text = cleanTranscript(corpus[e.doc.id]!.text);
      expect(text.includes(`${e.context} ${e.choices[e.gold]}`), e.id).toBe(true);
      e.choices.forEach((c, i) => { if (i !== e.gold) expect(text.includes(c), e.id).toBe(false); });
    }
    // gold positions are shuffled
    expect(new Set(shipped.nextSentence.map((e) => e.gold)).size).toBe(4);
  });

  it('cloze: 200 examples; context + " " + gold word is a prefix of a sentence of the address, distractors differ from it', () => {
    const ids = shipped.heldOut.map((a) => a.id);
    expect(shipped.cloze).toHaveLength(200);
    wellFormed(shipped.cloze, ids);
    for (const e of shipped.cloze) {
      const word = e.choices[e.gold]!;
      const text = cleanTranscript(corpus[e.doc.id]!.text);
      expect(new RegExp(`${e.context.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} ${word}[^a-z]`).test(text), e.id).toBe(true);
      for (const c of e.choices) expect(c).toMatch(/^[a-z]{4,}$/);
    }
  });

  it('heldOutYears picks the held-out addresses; bad selections are refused', () => {
    const t = buildSotuTasks({ heldOutYears: [1961, 1962], n: 10 });
    expect(t.heldOut.map((a) => a.id)).toEqual([171, 172, 173]);
    wellFormed([...t.nextSentence, ...t.cloze], [171, 172, 173]);
    expect(() => buildSotuTasks({ heldOutYears: [1700] })).toThrow(/no address in heldOutYears 1700; the corpus covers 1790–2021/);
    expect(() => buildSotuTasks({ heldOut: (_a, id) => id === 5 })).toThrow(/1 held-out address\(es\).*hold out at least 2/);
  });
});

describe('shipped task files', () => {
  it('equal buildSotuTasks({ seed: 1234, n: 200 }) (regenerate with tasks/build.mjs)', () => {
    expect(readFileSync(shippedTaskPath('sotu-next-sentence'), 'utf8')).toBe(toJsonl(shipped.nextSentence));
    expect(readFileSync(shippedTaskPath('sotu-cloze'), 'utf8')).toBe(toJsonl(shipped.cloze));
    const heldOut = JSON.parse(readFileSync(fileURLToPath(new URL('../tasks/sotu-held-out.json', import.meta.url)), 'utf8')) as { addresses: unknown };
    expect(heldOut.addresses).toEqual(shipped.heldOut);
    expect(loadShippedTask('sotu-cloze')).toEqual(parseMultipleChoiceJsonl(toJsonl(shipped.cloze)));
  });
});

describe('sentence splitting', () => {
  it('splits at . ! ? before a capital, not after abbreviations or initials; drops applause markers', () => {
    const text = cleanTranscript('Thank you. (Applause.) Mr. Speaker, the U.S. economy grew! Did John F. Kennedy say so? "Yes." We did—(applause)—it.');
    expect(text).toBe('Thank you. Mr. Speaker, the U.S. economy grew! Did John F. Kennedy say so? "Yes." We did—it.');
    expect(splitSentences(text)).toEqual(['Thank you.', 'Mr. Speaker, the U.S. economy grew!', 'Did John F. Kennedy say so?', '"Yes."', 'We did—it.']);
  });
});
