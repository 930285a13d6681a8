// The comparison report: one row per model (original, converted-untrained, trained, …), as Markdown tables and a
// JSON object, written atomically. The first row is the baseline that Δ columns refer to.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ReportTask {
  task: string;
  /** multiple-choice accuracy */
  acc?: number;
  acc_norm?: number;
  /** generation tasks */
  exact_match?: number;
}

export interface ReportRow {
  /** e.g. 'original', 'converted-untrained', 'trained' */
  name: string;
  perplexity?: number;
  bitsPerByte?: number;
  /** mean KL(teacher ‖ this model) */
  kl?: number;
  /** top-1 agreement with the teacher */
  top1?: number;
  tasks: ReportTask[];
}

export interface ReportJsonRow extends ReportRow {
  /** mean over this row's tasks of acc (exact_match for generation tasks) */
  meanAcc?: number;
  /** meanAcc − the baseline's meanAcc */
  deltaMeanAcc?: number;
}

export interface EvaluationReport {
  markdown: string;
  json: { baseline: string; tasks: string[]; rows: ReportJsonRow[] };
}

const DASH = '–';
const fmt = (v: number | undefined, digits: number): string => (v === undefined ? DASH : Number.isNaN(v) ? 'NaN' : v.toFixed(digits));
const signed = (v: number | undefined, digits: number): string => (v === undefined ? DASH : `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`);
const headline = (t: ReportTask): number | undefined => t.acc ?? t.exact_match;

function table(header: string[], align: ('l' | 'r')[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(align.map((a) => (a === 'r' ? '---:' : '---'))), ...rows.map(line)].join('\n');
}

function checkRows(rows: ReportRow[]): void {
  if (rows.length === 0) throw new Error('evaluationReport: no rows; give at least one model (e.g. { name: "original", tasks: [] })');
  const names = new Set<string>();
  for (const r of rows) {
    if (!r.name) throw new Error('evaluationReport: every row needs a name (e.g. "original", "converted-untrained", "trained")');
    if (names.has(r.name)) throw new Error(`evaluationReport: two rows are named "${r.name}"; row names must be unique`);
    names.add(r.name);
    const tasks = new Set<string>();
    for (const t of r.tasks) {
      if (headline(t) === undefined) throw new Error(`evaluationReport: row "${r.name}", task "${t.task}" has neither acc nor exact_match`);
      if (tasks.has(t.task)) throw new Error(`evaluationReport: row "${r.name}" lists task "${t.task}" twice`);
      tasks.add(t.task);
    }
  }
}

/** Markdown tables (summary; tasks × models) and the same numbers as JSON. */
export function evaluationReport(rows: ReportRow[]): EvaluationReport {
  checkRows(rows);
  const tasks: string[] = [];
  for (const r of rows) for (const t of r.tasks) if (!tasks.includes(t.task)) tasks.push(t.task);
  const meanAcc = (r: ReportRow): number | undefined => {
    const v = r.tasks.map(headline).filter((x): x is number => x !== undefined);
    return v.length === 0 ? undefined : v.reduce((a, b) => a + b, 0) / v.length;
  };
  const base = meanAcc(rows[0]!);
  const jsonRows: ReportJsonRow[] = rows.map((r, i) => {
    const m = meanAcc(r);
    const out: ReportJsonRow = { ...r, tasks: r.tasks.map((t) => ({ ...t })) };
    if (m !== undefined) out.meanAcc = m;
    if (m !== undefined && base !== undefined && i > 0) out.deltaMeanAcc = m - base;
    return out;
  });

  const columns: { title: string; cell: (r: ReportJsonRow) => string; show: boolean }[] = [
    { title: 'perplexity', cell: (r) => fmt(r.perplexity, 3), show: rows.some((r) => r.perplexity !== undefined) },
    { title: 'bits/byte', cell: (r) => fmt(r.bitsPerByte, 4), show: rows.some((r) => r.bitsPerByte !== undefined) },
    { title: 'KL(teacher‖model)', cell: (r) => fmt(r.kl, 4), show: rows.some((r) => r.kl !== undefined) },
    { title: 'top-1 agreement', cell: (r) => fmt(r.top1, 4), show: rows.some((r) => r.top1 !== undefined) },
    { title: 'mean acc', cell: (r) => fmt(r.meanAcc, 4), show: tasks.length > 0 },
    { title: `Δ mean acc vs ${rows[0]!.name}`, cell: (r) => signed(r.deltaMeanAcc, 4), show: tasks.length > 0 && rows.length > 1 },
  ];
  const cols = columns.filter((c) => c.show);
  const parts = ['# Evaluation report', ''];
  parts.push(table(['model', ...cols.map((c) => c.title)], ['l', ...cols.map(() => 'r' as const)], jsonRows.map((r) => [r.name, ...cols.map((c) => c.cell(r))])));
  if (tasks.length > 0) {
    parts.push('', '## Tasks', '', 'acc / acc_norm for multiple-choice tasks, exact_match for generation tasks.', '');
    const cell = (r: ReportRow, task: string): string => {
      const t = r.tasks.find((x) => x.task === task);
      if (!t) return DASH;
      if (t.acc === undefined) return fmt(t.exact_match, 4);
      return t.acc_norm === undefined ? fmt(t.acc, 4) : `${fmt(t.acc, 4)} / ${fmt(t.acc_norm, 4)}`;
    };
    parts.push(table(['task', ...rows.map((r) => r.name)], ['l', ...rows.map(() => 'r' as const)], tasks.map((task) => [task, ...rows.map((r) => cell(r, task))])));
  }
  return { markdown: parts.join('\n') + '\n', json: { baseline: rows[0]!.name, tasks, rows: jsonRows } };
}

/** Writes `<name>.md` and `<name>.json` into dir: both go to temporary files first, then each is renamed over its target. */
export function writeReport(dir: string, report: EvaluationReport, name = 'report'): { markdown: string; json: string } {
  mkdirSync(dir, { recursive: true });
  const paths = { markdown: join(dir, `${name}.md`), json: join(dir, `${name}.json`) };
  const files: [string, string][] = [[paths.markdown, report.markdown], [paths.json, JSON.stringify(report.json, null, 2) + '\n']];
  const tmp = (path: string): string => `${path}.${process.pid}.tmp`;
  let current = '';
  try {
    for (const [path, text] of files) { current = path; writeFileSync(tmp(path), text); }
    for (const [path] of files) { current = path; renameSync(tmp(path), path); }
  } catch (e) {
    for (const [path] of files) rmSync(tmp(path), { force: true });
    throw new Error(`writeReport: cannot write ${current} (${(e as Error).message})`, { cause: e });
  }
  return paths;
}
