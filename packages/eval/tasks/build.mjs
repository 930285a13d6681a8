// Regenerates the shipped SOTU task files from the built package:
//   npm run build -w @farskip/eval && node packages/eval/tasks/build.mjs
// Output: sotu-next-sentence.jsonl, sotu-cloze.jsonl (200 examples each, seed 1234) and sotu-held-out.json (the
// addresses the tasks are built from, to exclude from training). A test checks the files equal buildSotuTasks().
import { renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildSotuTasks, toJsonl } from '../dist/index.js';

const SEED = 1234;
const N = 200;
const here = (name) => fileURLToPath(new URL(`./${name}`, import.meta.url));

function writeAtomic(name, text) {
  const tmp = here(`.${name}.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, here(name));
}

const tasks = buildSotuTasks({ seed: SEED, n: N });
writeAtomic('sotu-next-sentence.jsonl', toJsonl(tasks.nextSentence));
writeAtomic('sotu-cloze.jsonl', toJsonl(tasks.cloze));
writeAtomic('sotu-held-out.json', JSON.stringify({ seed: SEED, n: N, selection: 'last 5% of addresses by year', addresses: tasks.heldOut }, null, 2) + '\n');
console.log(`wrote ${tasks.nextSentence.length} next-sentence and ${tasks.cloze.length} cloze examples from ${tasks.heldOut.length} held-out addresses (${tasks.heldOut.map((a) => a.year).join(', ')})`);
