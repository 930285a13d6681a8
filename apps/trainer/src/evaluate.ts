// `eval`: the comparison the paper's tables make, side by side —
//   original             --model with its original connectivity
//   converted-untrained  the same weights with the student's FarSkip options (no training)
//   trained              --student (e.g. the output of distill or sft), if given
// For each: held-out perplexity (rolling windows over held-out tokens, bits per byte), the shipped
// multiple-choice tasks built from held-out State of the Union addresses (acc, acc_norm), and KL(original ‖ row)
// with top-1 agreement. Writes report.md + report.json (atomic) under `out` and returns the Markdown.
import { TokenDataset } from '@farskip/distill';
import { agreement, evaluateMultipleChoice, evaluationReport, loadShippedTask, perplexity, SHIPPED_TASKS, tokenWindows, writeReport } from '@farskip/eval';
import type { ReportRow } from '@farskip/eval';
import type { FarSkipOptions } from '@farskip/layers';
import { loadModel } from '@farskip/models';
import type { CausalLM } from '@farskip/models';
import type { Tensor } from '@farskip/tensor';
import type { TrainerConfig } from './config.js';
import { prepareData } from './commands.js';

export interface EvalOptions {
  /** trained model directory (third row) */
  student?: string;
  /** examples per task (default 100) */
  taskLimit?: number;
  /** held-out tokens scored for perplexity and agreement (default 32 windows of seq) */
  maxTokens?: number;
}

export async function evaluateModel(cfg: TrainerConfig, options: EvalOptions = {}): Promise<string> {
  if (!cfg.model) throw new Error('eval needs --model <dir> (the original model; --student <dir> adds the trained one)');
  const original = loadModel(cfg.model);
  const trained = options.student ? loadModel(options.student) : null;
  const farskip: FarSkipOptions = (trained?.farskip as FarSkipOptions | null) ?? cfg.farskip;
  const entries: ScoredModel[] = [{ name: 'original', model: original, farskip: null }, { name: 'converted-untrained', model: original, farskip }];
  if (trained) entries.push({ name: 'trained', model: trained, farskip: trained.farskip });
  const report = evaluationReport(await scoreModels(cfg, original, entries, options));
  const paths = writeReport(cfg.out, report);
  return `${report.markdown}\n(report written to ${paths.markdown} and ${paths.json})`;
}

/** A model run with a given connectivity, named as its report row. */
export interface ScoredModel {
  name: string;
  model: CausalLM;
  farskip: FarSkipOptions | null;
}

/**
 * Report rows for `entries` on the held-out data of cfg's dataset: perplexity and bits per byte over rolling
 * windows, the shipped multiple-choice tasks, and KL / top-1 agreement against `teacher` (original connectivity).
 */
export async function scoreModels(cfg: TrainerConfig, teacherModel: CausalLM, entries: ScoredModel[], options: EvalOptions = {}): Promise<ReportRow[]> {
  const ds = TokenDataset.open(await prepareData(cfg, console.log));
  try {
    const tok = await ds.tokenizer();
    const held = ds.index.splits.heldout.tokens;
    const n = Math.min(held, options.maxTokens ?? 32 * cfg.seq + 1);
    const tokens = ds.split('heldout').read(0, n);
    const bytes = Buffer.byteLength(tok.decode(Array.from(tokens)), 'utf8');
    const windows = tokenWindows(tokens, cfg.seq);
    const limit = options.taskLimit ?? 100;
    const tasks = SHIPPED_TASKS.map((t) => ({ name: t, examples: loadShippedTask(t).slice(0, limit) }));
    // a model run with a given connectivity, as the scoring functions see it
    const scorer = (model: CausalLM, farskip: FarSkipOptions | null) => ({ forward: (ids: Tensor) => model.forward(ids, { farskip }) });
    const teacher = scorer(teacherModel, null);
    const rows: ReportRow[] = [];
    for (const e of entries) {
      const scored = scorer(e.model, e.farskip);
      const ppl = await perplexity(scored, tokens, { window: cfg.seq, bytes });
      const ag = await agreement(teacher, scored, windows);
      const taskRows = [];
      for (const t of tasks) {
        const r = await evaluateMultipleChoice(scored, tok, t.examples, { task: t.name });
        taskRows.push({ task: t.name, acc: r.acc, acc_norm: r.acc_norm });
      }
      rows.push({ name: e.name, perplexity: ppl.ppl, bitsPerByte: ppl.bitsPerByte, kl: ag.kl, top1: ag.top1, tasks: taskRows });
    }
    return rows;
  } finally {
    ds.close();
  }
}
