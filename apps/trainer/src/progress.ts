// Progress display: a cli-progress bar with tokens/s, loss and ETA on a TTY; one plain log line per 10 % (and the
// last step) otherwise (CI logs, pipes). `StageBars` shows several runs at once (the repro pipeline's concurrent
// stages): one bar each on a TTY, or log lines prefixed with the stage's name.
import cliProgress from 'cli-progress';
import type { StepMetrics } from '@farskip/distill';

/** What a progress display is told after each step (StepMetrics, or its part a child process forwards). */
export type StepReport = Pick<StepMetrics, 'step' | 'loss' | 'lr' | 'tokens' | 'ms' | 'eval'>;

const FORMAT = '{label}step {value}/{total} [{bar}] {percentage}% | loss {loss} | {tps} tok/s | ETA {eta_formatted}';

export class Progress {
  private readonly bar: cliProgress.SingleBar | null;
  private tokens = 0;
  private ms = 0;
  private lastLogged = 0;
  private readonly multi: cliProgress.MultiBar | null;

  /**
   * `multi`: draw as one bar of that MultiBar (concurrent stages) instead of a bar of its own; `label` prefixes the
   * bar or the log lines.
   */
  constructor(readonly total: number, readonly tty = Boolean(process.stderr.isTTY), private readonly label = '', multi?: cliProgress.MultiBar,
    private readonly log: (s: string) => void = console.log) {
    const payload = { loss: '-', tps: '-', label: label ? `${label}  ` : '' };
    if (!tty) this.bar = null;
    else if (multi) this.bar = multi.create(total, 0, payload);
    else {
      this.bar = new cliProgress.SingleBar({ format: FORMAT, stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
      this.bar.start(total, 0, payload);
    }
    this.multi = multi ?? null;
  }

  update(m: StepReport): void {
    this.tokens += m.tokens;
    this.ms += m.ms;
    const tps = Math.round((1000 * this.tokens) / Math.max(1, this.ms));
    if (this.bar) { this.bar.update(m.step, { loss: m.loss.toFixed(4), tps }); return; }
    if (m.step === this.total || m.step - this.lastLogged >= Math.max(1, Math.round(this.total / 10))) {
      this.lastLogged = m.step;
      const eta = ((this.total - m.step) * this.ms) / m.step / 1000;
      this.log(`${this.label ? `${this.label}: ` : ''}step ${m.step}/${this.total}  loss ${m.loss.toFixed(4)}${m.eval !== undefined ? `  eval ${m.eval.toFixed(4)}` : ''}  lr ${m.lr.toExponential(2)}  ${tps} tok/s  ETA ${eta.toFixed(0)} s`);
    }
  }

  stop(): void {
    if (this.bar && this.multi) this.multi.remove(this.bar);
    else this.bar?.stop();
  }
}

/** Bars for concurrently running stages, drawn together on a TTY; `log` prints above them. */
export class StageBars {
  private readonly multi: cliProgress.MultiBar | null;

  constructor(private readonly logLine: (s: string) => void = console.log, readonly tty = Boolean(process.stderr.isTTY)) {
    this.multi = tty ? new cliProgress.MultiBar({ format: FORMAT, stream: process.stderr, hideCursor: true, clearOnComplete: false }, cliProgress.Presets.shades_classic) : null;
  }

  /** A bar (or 10 % log lines) for a stage of `total` steps. */
  start(label: string, total: number): Progress {
    return new Progress(total, this.tty, label, this.multi ?? undefined, this.logLine);
  }

  /** A line printed above the bars (or plainly). */
  log(s: string): void {
    if (this.multi) this.multi.log(`${s}\n`);
    else this.logLine(s);
  }

  stop(): void {
    this.multi?.stop();
  }
}
