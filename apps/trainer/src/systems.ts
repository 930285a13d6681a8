// Table 3 in miniature: a pretrained model at EP = 2 (threads backend: 2 ranks, one core each, experts split,
// every rank its own batch, tokens exchanged by all-to-all), the original connectivity with every collective
// waited where it is issued ("standard") against the FarSkip conversion on the overlapped schedule, for a training
// step (forward + backward) and a prefill, without link emulation and with an emulated link calibrated so that the
// standard training step spends ≈ 30 % of its time in all-to-alls; overlap fractions from the tracer.
// measureSystems() runs in the driver; the ranks run systemsRank() (entry systems-rank.ts).
import { fileURLToPath } from 'node:url';
import { launch } from '@farskip/collectives';

export interface SystemsRow {
  link: string | null;
  variant: 'standard' | 'farskip';
  trainStepMs: number;
  prefillMs: number;
  overlapForward: number;
  overlapBackward: number;
  /** share of the training step the rank spent blocked on communication */
  commShare: number;
  allToAllBytes: number;
}

export interface SystemsResult {
  ranks: number;
  tokensPerRank: number;
  link: string;
  rows: SystemsRow[];
}

const TARGET_COMM_SHARE = 0.3;

/** Measures the model in `modelDir` at EP = 2 with `batch` × `seq` tokens per rank. */
export async function measureSystems(modelDir: string, o: { batch: number; seq: number; reps?: number }): Promise<SystemsResult> {
  const script = fileURLToPath(new URL('./systems-rank.js', import.meta.url));
  const run = async (link: string | null): Promise<SystemsRow[]> => {
    const res = await launch({
      world: 2, backend: 'threads', script, captureOutput: true, prefixOutput: false,
      env: { FARSKIP_NUM_THREADS: '1', FARSKIP_EMULATE_LINK: link ?? '', FARSKIP_SYSTEMS_MODEL: modelDir, FARSKIP_SYSTEMS_SHAPE: `${o.batch}x${o.seq}`, FARSKIP_SYSTEMS_REPS: String(o.reps ?? 2) },
    });
    const bad = res.find((r) => r.exitCode !== 0);
    if (bad) throw new Error(`systems rank ${bad.rank} failed: ${bad.error?.message ?? ''}\n${bad.output ?? ''}`);
    const line = res[0]!.output!.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`systems rank 0 printed no result:\n${res[0]!.output}`);
    return (JSON.parse(line) as { rows: Omit<SystemsRow, 'link'>[] }).rows.map((r) => ({ link, ...r }));
  };
  const plain = await run(null);
  // calibration: the standard step's all-to-all bytes and the time it computes (wall minus blocked) give the
  // bandwidth at which its all-to-alls would take TARGET_COMM_SHARE of the step
  const std = plain.find((r) => r.variant === 'standard')!;
  const computeMs = std.trainStepMs * (1 - std.commShare);
  const commMs = (TARGET_COMM_SHARE / (1 - TARGET_COMM_SHARE)) * computeMs;
  const gbs = std.allToAllBytes / (commMs * 1e6);
  const link = `${gbs.toPrecision(3)}GB/s,20us`;
  return { ranks: 2, tokensPerRank: o.batch * o.seq, link, rows: [...plain, ...(await run(link))] };
}
