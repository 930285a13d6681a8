// Table 3 in miniature: a pretrained model on 2 ranks (threads backend, one core each), the original connectivity
// with every collective waited where it is issued ("standard") against the FarSkip conversion on the overlapped
// schedule, for
//   - a training step at EP = 2 (all-to-all form: experts split, every rank its own batch), and
//   - a prefill (last layer for the last position, as farskip-infer serves) at TP = EP = 2 (all-reduce form, tokens
//     replicated), or for MLA models at EP = 2 (all-to-all form, data-parallel attention),
// without link emulation and with an emulated link calibrated, separately for each, so that the standard run spends
// ≈ 30 % of its time in collectives; overlap fractions from the tracer. measureSystems() runs in the driver; the
// ranks run systems-rank.ts.
import { fileURLToPath } from 'node:url';
import { launch, linkForCommShare } from '@farskip/collectives';

export type SystemsMeasure = 'train' | 'prefill';
/** ep: EP = 2, all-to-all form, every rank its own tokens; tp: TP = EP = 2, all-reduce form, tokens replicated */
export type SystemsMesh = 'ep' | 'tp';

export interface SystemsRow {
  measure: SystemsMeasure;
  mesh: SystemsMesh;
  link: string | null;
  variant: 'standard' | 'farskip';
  /** training step (forward + backward) or prefill, ms: the best of the repetitions */
  ms: number;
  overlapForward: number;
  /** null for the prefill */
  overlapBackward: number | null;
  /** share of the run the rank spent blocked on communication */
  commShare: number;
  /** bytes this rank's collectives carried */
  commBytes: number;
  /** Σ (completion − issue) of the forward's collectives, ms */
  forwardCommMs: number;
  /** forward attention and shared-expert compute of the layers that communicate: what a schedule can hide them behind */
  besideCommMs: number;
}

export interface SystemsResult {
  ranks: number;
  tokensPerRank: number;
  reps: number;
  /** the calibrated links, `<GB/s>GB/s,<latency>us` */
  links: Record<SystemsMeasure, string>;
  rows: SystemsRow[];
}

const TARGET_COMM_SHARE = 0.3;

/** Measures the model in `modelDir` on 2 ranks with `batch` × `seq` tokens per rank. */
export async function measureSystems(modelDir: string, o: { batch: number; seq: number; reps?: number }): Promise<SystemsResult> {
  const script = fileURLToPath(new URL('./systems-rank.js', import.meta.url));
  const reps = o.reps ?? 5;
  const run = async (link: string | null, parts: SystemsMeasure[]): Promise<SystemsRow[]> => {
    const res = await launch({
      world: 2, backend: 'threads', script, captureOutput: true, prefixOutput: false,
      env: { FARSKIP_NUM_THREADS: '1', FARSKIP_EMULATE_LINK: link ?? '', FARSKIP_SYSTEMS_MODEL: modelDir, FARSKIP_SYSTEMS_SHAPE: `${o.batch}x${o.seq}`,
        FARSKIP_SYSTEMS_REPS: String(reps), FARSKIP_SYSTEMS_PARTS: parts.join(',') },
    });
    const bad = res.find((r) => r.exitCode !== 0);
    if (bad) throw new Error(`systems rank ${bad.rank} failed: ${bad.error?.message ?? ''}\n${bad.output ?? ''}`);
    const line = res[0]!.output!.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`systems rank 0 printed no result:\n${res[0]!.output}`);
    return (JSON.parse(line) as { rows: SystemsRow[] }).rows;
  };
  const plain = await run(null, ['train', 'prefill']);
  const links = { train: calibratedLink(plain, 'train'), prefill: calibratedLink(plain, 'prefill') };
  const rows = [...plain, ...(await run(links.train, ['train'])), ...(await run(links.prefill, ['prefill']))];
  return { ranks: 2, tokensPerRank: o.batch * o.seq, reps, links, rows };
}

/** The link at which the standard run's collectives (its bytes beside the time it computed) take TARGET_COMM_SHARE of it. */
function calibratedLink(rows: SystemsRow[], measure: SystemsMeasure): string {
  const std = rows.find((r) => r.measure === measure && r.variant === 'standard')!;
  return linkForCommShare(std.commBytes, std.ms * (1 - std.commShare), TARGET_COMM_SHARE);
}
