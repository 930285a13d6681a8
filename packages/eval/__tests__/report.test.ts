// The report's Markdown for a fixed input, written out by hand, and the atomic writer.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { evaluationReport, writeReport } from '../src/index.js';
import type { ReportRow } from '../src/index.js';

const ROWS: ReportRow[] = [
  { name: 'original', perplexity: 12.3456, tasks: [{ task: 'sotu-cloze', acc: 0.5, acc_norm: 0.55 }, { task: 'sotu-next-sentence', acc: 0.7, acc_norm: 0.65 }] },
  { name: 'converted-untrained', perplexity: 40.5, kl: 1.23456, top1: 0.4, tasks: [{ task: 'sotu-cloze', acc: 0.3, acc_norm: 0.35 }, { task: 'sotu-next-sentence', acc: 0.4, acc_norm: 0.45 }] },
  { name: 'trained', perplexity: 13, kl: 0.05, top1: 0.9, tasks: [{ task: 'sotu-cloze', acc: 0.48, acc_norm: 0.5 }, { task: 'arith', exact_match: 0.25 }] },
];

const MARKDOWN = `# Evaluation report

| model | perplexity | KL(teacher‖model) | top-1 agreement | mean acc | Δ mean acc vs original |
| --- | ---: | ---: | ---: | ---: | ---: |
| original | 12.346 | – | – | 0.6000 | – |
| converted-untrained | 40.500 | 1.2346 | 0.4000 | 0.3500 | -0.2500 |
| trained | 13.000 | 0.0500 | 0.9000 | 0.3650 | -0.2350 |

## Tasks

acc / acc_norm for multiple-choice tasks, exact_match for generation tasks.

| task | original | converted-untrained | trained |
| --- | ---: | ---: | ---: |
| sotu-cloze | 0.5000 / 0.5500 | 0.3000 / 0.3500 | 0.4800 / 0.5000 |
| sotu-next-sentence | 0.7000 / 0.6500 | 0.4000 / 0.4500 | – |
| arith | – | – | 0.2500 |
`;

describe('evaluationReport', () => {
  it('renders the summary and task tables exactly', () => {
    const r = evaluationReport(ROWS);
    expect(r.markdown).toBe(MARKDOWN);
    expect(r.json.baseline).toBe('original');
    expect(r.json.tasks).toEqual(['sotu-cloze', 'sotu-next-sentence', 'arith']);
    expect(r.json.rows[0]).toEqual({ ...ROWS[0], meanAcc: 0.6 });
    expect(r.json.rows[2]!.meanAcc).toBeCloseTo(0.365, 14);
    expect(r.json.rows[2]!.deltaMeanAcc).toBeCloseTo(-0.235, 14);
  });

  it('leaves out columns no row has; a single row has no Δ column', () => {
    expect(evaluationReport([{ name: 'm', tasks: [] }]).markdown).toBe('# Evaluation report\n\n| model |\n| --- |\n| m |\n');
    expect(evaluationReport([{ name: 'm', bitsPerByte: 1.5, tasks: [{ task: 't', acc: 1 }] }]).markdown).toBe(
      '# Evaluation report\n\n| model | bits/byte | mean acc |\n| --- | ---: | ---: |\n| m | 1.5000 | 1.0000 |\n\n## Tasks\n\n'
      + 'acc / acc_norm for multiple-choice tasks, exact_match for generation tasks.\n\n| task | m |\n| --- | ---: |\n| t | 1.0000 |\n');
  });

  it('rejects rows it cannot tabulate', () => {
    expect(() => evaluationReport([])).toThrow(/no rows/);
    expect(() => evaluationReport([{ name: 'a', tasks: [] }, { name: 'a', tasks: [] }])).toThrow(/two rows are named "a"/);
    expect(() => evaluationReport([{ name: 'a', tasks: [{ task: 't' }] }])).toThrow(/row "a", task "t" has neither acc nor exact_match/);
  });
});

describe('writeReport', () => {
  let dir = '';
  afterEach(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('writes report.md and report.json and nothing else', () => {
    dir = mkdtempSync(join(tmpdir(), 'eval-report-'));
    const r = evaluationReport(ROWS);
    const paths = writeReport(join(dir, 'out'), r);
    expect(readdirSync(join(dir, 'out')).sort()).toEqual(['report.json', 'report.md']);
    expect(readFileSync(paths.markdown, 'utf8')).toBe(MARKDOWN);
    expect(JSON.parse(readFileSync(paths.json, 'utf8'))).toEqual(r.json);
  });

  it('a failed write names the path and leaves no temporary file', () => {
    dir = mkdtempSync(join(tmpdir(), 'eval-report-'));
    // report.md is a non-empty directory: the rename onto it fails
    mkdirSync(join(dir, 'report.md', 'inside'), { recursive: true });
    expect(() => writeReport(dir, evaluationReport(ROWS))).toThrow(`writeReport: cannot write ${join(dir, 'report.md')}`);
    expect(readdirSync(dir)).toEqual(['report.md']);
  });
});
