#!/usr/bin/env node
// farskip-train <pretrain|distill|sft|eval> [--config file.json|.yaml] [--key value ...]
import { loadConfig, parseFlags } from './config.js';
import { fileURLToPath } from 'node:url';
import { prepareData, runTraining } from './commands.js';

const USAGE = `usage: farskip-train <command> [--config file.json|file.yaml] [--key value ...]
commands:
  pretrain   train a new MoE model (or --model) on the corpus (default: the embedded State of the Union addresses)
  distill    FarSkip-Collective self-distillation: --model <dir> is the teacher; the student is its FarSkip conversion
  sft        the distillation baseline: --model converted to FarSkip (--farskip), trained on cross-entropy
  repro      the paper's tables in miniature on the embedded corpus (--quick: a minutes-long profile; --out dir;
             --docs dir: write results.md and the curves there; --lanes N: training stages run at once, default 2):
             two MoE families pretrained, converted, FCSD / SFT / last-50 % FCSD, evaluated (cached stages)
  eval       report: --model original / FarSkip-converted untrained / --student trained, side by side (held-out
             perplexity, bits per byte, SOTU multiple-choice acc and acc_norm, KL and top-1 vs the original)
multi-rank: --ranks N trains on N threads-backend ranks (one core each) through the launcher, as a mesh of
            --tp (tensor parallel) × --ep (expert parallel) × data parallel (the rest); the saved model is whole
every config key is a flag: --steps 100 --lr 3e-4 --farskip.mode full --arch.layers 4 --resume --out runs/x`;

async function main(argv: string[]): Promise<void> {
  const { positional, flags } = parseFlags(argv);
  const command = positional[0];
  if (!command || flags.help) { console.log(USAGE); return; }
  const file = typeof flags.config === 'string' ? flags.config : undefined;
  delete flags.config;
  // eval-only flags (not trainer settings)
  const evalStudent = typeof flags.student === 'string' ? flags.student : undefined;
  const evalLimit = typeof flags.taskLimit === 'number' ? flags.taskLimit : undefined;
  delete flags.student;
  delete flags.taskLimit;
  if (command === 'repro') {
    const { runRepro } = await import('./repro.js');
    if (flags.lanes !== undefined && (typeof flags.lanes !== 'number' || !Number.isInteger(flags.lanes) || flags.lanes < 1)) {
      throw new Error(`--lanes ${String(flags.lanes)}: expected a whole number ≥ 1 (training stages run at once; default 2 on 2+ cores)`);
    }
    const r = await runRepro({ quick: flags.quick === true, out: typeof flags.out === 'string' ? flags.out : undefined, docs: typeof flags.docs === 'string' ? flags.docs : undefined,
      lanes: flags.lanes as number | undefined });
    console.log(`repro done: ${r.resultsFile}`);
    return;
  }
  const cfg = loadConfig(file, flags);
  if ((command === 'pretrain' || command === 'distill' || command === 'sft') && cfg.ranks > 1 && !process.env.FARSKIP_TRAINER_RANK) {
    // the launcher starts `ranks` threads-backend ranks of this same command; the data is prepared once, here
    const data = await prepareData(cfg, console.log);
    const { launch } = await import('@farskip/collectives');
    const res = await launch({ world: cfg.ranks, backend: 'threads', script: fileURLToPath(import.meta.url), args: [...argv, '--data', data],
      env: { FARSKIP_TRAINER_RANK: '1' } });
    const bad = res.find((r) => r.exitCode !== 0);
    if (bad) throw new Error(`rank ${bad.rank} failed${bad.error ? `: ${bad.error.message}` : ` with exit code ${bad.exitCode}`}`);
    return;
  }
  if (command === 'pretrain' || command === 'distill' || command === 'sft') {
    let ctx;
    if (process.env.FARSKIP_TRAINER_RANK) {
      const { initCommunicator } = await import('@farskip/collectives');
      const { ParallelContext } = await import('@farskip/layers');
      ctx = ParallelContext.create(await initCommunicator(), { tp: cfg.tp, ep: cfg.ep });
    }
    const r = await runTraining(command, cfg, console.log, ctx);
    if (ctx && ctx.world.rank !== 0) return;
    const last = r.metrics[r.metrics.length - 1];
    console.log(`${command} done: ${r.metrics.length} steps${r.stoppedEarly ? ' (early stop)' : ''}, last loss ${last?.loss.toFixed(4) ?? '-'}; model in ${r.modelDir}; curves in ${cfg.out}/loss.png`);
    return;
  }
  if (command === 'eval') {
    const { evaluateModel } = await import('./evaluate.js');
    console.log(await evaluateModel(cfg, { student: evalStudent, taskLimit: evalLimit }));
    return;
  }
  throw new Error(`unknown command '${command}'\n${USAGE}`);
}

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(`farskip-train: ${e.message}`);
  process.exitCode = 1;
});
