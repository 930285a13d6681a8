// Child process of the repro pipeline (repro-jobs.ts: runInChild): receives one StageJob over IPC, runs it, sends
// its steps, log lines and result (or error) back, and exits.
import { runJob } from './repro-jobs.js';
import type { StageJob, StageMessage } from './repro-jobs.js';

const send = (msg: StageMessage): Promise<void> => new Promise((resolve) => process.send!(msg, () => resolve()));

if (!process.send) {
  console.error('repro-stage.js runs as a child of `farskip-train repro` (it needs an IPC channel)');
  process.exit(2);
}
process.once('message', (job: StageJob) => {
  runJob(job, (m) => void send({ type: 'step', m: { step: m.step, loss: m.loss, lr: m.lr, tokens: m.tokens, ms: m.ms, eval: m.eval } }),
    (line) => void send({ type: 'log', line }))
    .then((result) => send({ type: 'done', result }))
    .catch((e: Error) => send({ type: 'error', message: e.message, stack: e.stack }))
    .finally(() => process.exit(0));
});
