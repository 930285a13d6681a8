// Plain-text helpers for building tasks from speeches: cleaning transcript markers, splitting sentences, words.

/** Abbreviations after which a period does not end a sentence (lower-cased, without the period). */
const ABBREVIATIONS = new Set(['mr', 'mrs', 'ms', 'dr', 'st', 'jr', 'sr', 'gen', 'sen', 'rep', 'gov', 'lt', 'col', 'capt', 'no', 'nos', 'vs', 'etc', 'co', 'inc', 'messrs', 'hon', 'prof', 'vol', 'art', 'sec', 'u.s', 'd.c', 'a.m', 'p.m']);

/** Removes audience markers such as "(Applause.)" and normalises whitespace. */
export function cleanTranscript(text: string): string {
  return text
    .replace(/\((?:applause|laughter|cheers|boos)[^)]*\)/giu, ' ')
    .replace(/—\s*—/gu, '—')
    .replace(/\s+/gu, ' ')
    .trim();
}

/** Sentences of cleaned text, split after . ! ? (optionally followed by a closing quote) before a capital. */
export function splitSentences(text: string): string[] {
  const out: string[] = [];
  const boundary = /([.!?])(["”’)]?)\s+(?=["“‘(]?[A-Z])/gu;
  let start = 0;
  for (let m = boundary.exec(text); m; m = boundary.exec(text)) {
    const end = m.index + m[1]!.length + m[2]!.length;
    if (m[1] === '.') {
      const word = /([A-Za-z.]+)$/u.exec(text.slice(start, m.index))?.[1] ?? '';
      // "Mr." "U.S." and single initials ("John F. Kennedy") do not end a sentence
      if (ABBREVIATIONS.has(word.toLowerCase()) || /^[A-Z]$/u.test(word) || /^(?:[A-Za-z]\.)+[A-Za-z]$/u.test(word)) continue;
    }
    out.push(text.slice(start, end).trim());
    start = boundary.lastIndex;
  }
  const tail = text.slice(start).trim();
  if (tail) out.push(tail);
  return out;
}

export function wordCount(sentence: string): number {
  return sentence.split(' ').filter(Boolean).length;
}

/** A sentence usable as a context or a choice: 8–40 words, ends in . ! or ?, no brackets or digits-only noise. */
export function isUsableSentence(s: string): boolean {
  const words = wordCount(s);
  return words >= 8 && words <= 40 && /[.!?]["”’]?$/u.test(s) && !/[()[\]{}]/u.test(s) && /^["“‘]?[A-Z]/u.test(s);
}

/** Lower-cased words of a text (letters only). */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z]+/gu) ?? [];
}

/** Function words that a cloze should not blank out. */
export const STOPWORDS = new Set(`about above after again against all also although among and another any are around because been before
being below between both but came can cannot come could did does doing done down during each either else ever every few
from further had has have having her here hers herself him himself his how however into its itself just last least less
made make many may more most much must myself neither never next none nor not now off once one only other others ought our
ours ourselves out over own per perhaps rather same shall she should since some such than that the their theirs them
themselves then there these they this those though through thus too toward towards under unless until upon very was were
what whatever when where whether which while who whom whose why will with within without would yet you your yours
yourself yourselves let like well even still already always often shall say said says tell told know knew thing things`.split(/\s+/u));
