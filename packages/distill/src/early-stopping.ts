// Early stopping on an evaluation metric: stop after `patience` evaluations without an improvement of at least
// minDelta over the best value so far (mode 'min' for losses/perplexity, 'max' for accuracies).
export interface EarlyStoppingOptions {
  patience: number;
  minDelta?: number;
  mode?: 'min' | 'max';
}

export class EarlyStopping {
  best: number | null = null;
  bad = 0;
  constructor(readonly options: EarlyStoppingOptions) {
    if (!Number.isInteger(options.patience) || options.patience < 1) throw new Error(`EarlyStopping: patience ${options.patience} must be a positive integer`);
  }

  /** Records one evaluation; returns whether it improved and whether training should stop. */
  update(value: number): { improved: boolean; stop: boolean } {
    const d = this.options.minDelta ?? 0;
    const better = this.best === null || ((this.options.mode ?? 'min') === 'min' ? value < this.best - d : value > this.best + d);
    if (better) { this.best = value; this.bad = 0; } else this.bad++;
    return { improved: better, stop: this.bad >= this.options.patience };
  }

  state(): { best: number | null; bad: number } { return { best: this.best, bad: this.bad }; }
  restore(s: { best: number | null; bad: number }): void { this.best = s.best; this.bad = s.bad; }
}
