// Progress display: a cli-progress bar with tokens/s, loss and ETA on a TTY; one plain log line per 10 % (and the
// last step) otherwise (CI logs, pipes).
import cliProgress from 'cli-progress';
import type { StepMetrics } from '@farskip/distill';

export class Progress {
  private readonly bar: cliProgress.SingleBar | null;
  private tokens = 0;
  private ms = 0;
  private lastLogged = 0;

  constructor(readonly total: number, readonly tty = Boolean(process.stderr.isTTY)) {
    this.bar = tty ? new cliProgress.SingleBar({
      format: 'step {value}/{total} [{bar}] {percentage}% | loss {loss} | {tps} tok/s | ETA {eta_formatted}',
      stream: process.stderr, hideCursor: true,
    }, cliProgress.Presets.shades_classic) : null;
    this.bar?.start(total, 0, { loss: '-', tps: '-' });
  }

  update(m: StepMetrics): void {
    this.tokens += m.tokens;
    this.ms += m.ms;
    const tps = Math.round((1000 * this.tokens) / Math.max(1, this.ms));
    if (this.bar) { this.bar.update(m.step, { loss: m.loss.toFixed(4), tps }); return; }
    if (m.step === this.total || m.step - this.lastLogged >= Math.max(1, Math.round(this.total / 10))) {
      this.lastLogged = m.step;
      const eta = ((this.total - m.step) * this.ms) / m.step / 1000;
      console.log(`step ${m.step}/${this.total}  loss ${m.loss.toFixed(4)}${m.eval !== undefined ? `  eval ${m.eval.toFixed(4)}` : ''}  lr ${m.lr.toExponential(2)}  ${tps} tok/s  ETA ${eta.toFixed(0)} s`);
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
