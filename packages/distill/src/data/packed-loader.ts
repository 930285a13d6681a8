// Sequence packing: a split's stream (documents joined by EOS, no padding) is cut into windows of T + 1 tokens
// that overlap by one token: window w is tokens [w·T, w·T + T + 1), its inputs the first T and its targets the
// last T, so every token after the first is a target exactly once per epoch. Windows = floor((tokens − 1) / T).
//
// Each epoch visits the windows in a seeded permutation (a fresh one per epoch). With data parallelism rank r of
// n takes positions r, r + n, r + 2n, … of that permutation, so ranks never share a window, and every rank gets
// the same number of batches (the last n·B-incomplete remainder of an epoch is dropped). The cursor {epoch,
// position, seed} identifies the next batch, so restore(state) continues with the identical batches.
import { Random } from '@farskip/tensor';
import { epochSeed } from './format.js';
import type { TokenSplit } from './loader.js';

/** Target id of a position that must not count (sftLoss's ignoreIndex). */
export const IGNORE_INDEX = -100;

export interface PackedLoaderOptions {
  /** B: sequences per batch (per rank) */
  batchSize: number;
  /** T: tokens per sequence */
  seqLen: number;
  /** shuffle seed; default 0 */
  seed?: number;
  /** visit windows in a seeded random order per epoch (default true); false: in stream order */
  shuffle?: boolean;
  /** this data-parallel rank (default 0) of `worldSize` (default 1) */
  rank?: number;
  worldSize?: number;
  /**
   * Only tokens the split's loss mask keeps (assistant turns of chat data) are targets: others get IGNORE_INDEX
   * and batch.mask is 0 there. Needs a split built from chat documents. Default false (every token counts).
   */
  lossMask?: boolean;
}

export interface PackedBatch {
  /** [B·T] token ids, row-major [B, T] */
  inputs: Int32Array;
  /** [B·T] the next token of each input position; IGNORE_INDEX where the loss mask drops it */
  targets: Int32Array;
  /** [B·T] 1 = the target counts, 0 = masked; only with the lossMask option */
  mask?: Float32Array;
  /** the epoch and batch position this batch came from */
  epoch: number;
  position: number;
}

/** The resumable cursor: the next batch is batch `position` of epoch `epoch` of the loader seeded `seed`. */
export interface LoaderState {
  epoch: number;
  position: number;
  seed: number;
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`PackedLoader: ${name} is ${value}; expected an integer ≥ ${min}`);
}

export class PackedLoader {
  readonly batchSize: number;
  readonly seqLen: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly shuffle: boolean;
  readonly lossMask: boolean;
  /** windows of T + 1 tokens in the split */
  readonly windows: number;
  /** batches each rank gets per epoch */
  readonly batchesPerEpoch: number;
  private seed: number;
  private epoch = 0;
  private position = 0;
  private order: Uint32Array | null = null;
  private orderEpoch = -1;
  private readonly tokenBuf: Int32Array;
  private readonly maskBuf: Uint8Array;

  constructor(
    readonly split: TokenSplit,
    options: PackedLoaderOptions,
  ) {
    this.batchSize = options.batchSize;
    this.seqLen = options.seqLen;
    this.rank = options.rank ?? 0;
    this.worldSize = options.worldSize ?? 1;
    this.seed = options.seed ?? 0;
    this.shuffle = options.shuffle ?? true;
    this.lossMask = options.lossMask ?? false;
    checkCount('batchSize', this.batchSize, 1);
    checkCount('seqLen', this.seqLen, 1);
    checkCount('worldSize', this.worldSize, 1);
    checkCount('seed', this.seed, 0);
    if (!Number.isSafeInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize) {
      throw new RangeError(`PackedLoader: rank is ${this.rank}; expected an integer in [0, worldSize = ${this.worldSize})`);
    }
    if (this.lossMask && !split.hasLossMask) {
      throw new Error(`PackedLoader: lossMask needs a split built from chat documents; split '${split.name}' has no loss mask — drop the lossMask option or rebuild from chat JSONL`);
    }
    this.windows = split.tokens > this.seqLen ? Math.floor((split.tokens - 1) / this.seqLen) : 0;
    this.batchesPerEpoch = Math.floor(Math.floor(this.windows / this.worldSize) / this.batchSize);
    if (this.batchesPerEpoch === 0) {
      const need = this.worldSize * this.batchSize;
      throw new RangeError(
        `PackedLoader: split '${split.name}' has ${split.tokens} tokens = ${this.windows} windows of seqLen + 1 = ${this.seqLen + 1}; ` +
          `one batch on each of ${this.worldSize} rank(s) needs ${need} windows (${need * this.seqLen + 1} tokens) — use a smaller batchSize / seqLen or more data`,
      );
    }
    this.tokenBuf = new Int32Array(this.seqLen + 1);
    this.maskBuf = new Uint8Array(this.seqLen + 1);
  }

  /** The window order of `epoch` (all ranks share it): a seeded Fisher–Yates permutation, or 0..W−1 unshuffled. */
  windowOrder(epoch: number): Uint32Array {
    if (this.order !== null && this.orderEpoch === epoch) return this.order;
    const order = new Uint32Array(this.windows);
    for (let i = 0; i < order.length; i++) order[i] = i;
    if (this.shuffle) {
      const random = new Random(epochSeed(this.seed, epoch));
      for (let i = order.length - 1; i > 0; i--) {
        const j = random.int(i + 1);
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
    }
    this.order = order;
    this.orderEpoch = epoch;
    return order;
  }

  /** The windows of this rank's batch `position` in `epoch`: positions (position·B + j)·n + r of the order. */
  batchWindows(epoch: number, position: number): number[] {
    const order = this.windowOrder(epoch);
    const out: number[] = [];
    for (let j = 0; j < this.batchSize; j++) out.push(order[(position * this.batchSize + j) * this.worldSize + this.rank]!);
    return out;
  }

  /** The next batch; after the last batch of an epoch the next epoch (a new order) begins. */
  next(): PackedBatch {
    const { batchSize: B, seqLen: T } = this;
    const epoch = this.epoch;
    const position = this.position;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    const mask = this.lossMask ? new Float32Array(B * T) : undefined;
    this.batchWindows(epoch, position).forEach((w, b) => {
      const tokens = this.split.read(w * T, T + 1, this.tokenBuf);
      inputs.set(tokens.subarray(0, T), b * T);
      targets.set(tokens.subarray(1), b * T);
      if (mask !== undefined) {
        const keep = this.split.readMask(w * T, T + 1, this.maskBuf);
        for (let t = 0; t < T; t++) {
          mask[b * T + t] = keep[t + 1]!;
          if (keep[t + 1] === 0) targets[b * T + t] = IGNORE_INDEX;
        }
      }
    });
    if (++this.position === this.batchesPerEpoch) {
      this.epoch++;
      this.position = 0;
    }
    return mask === undefined ? { inputs, targets, epoch, position } : { inputs, targets, mask, epoch, position };
  }

  /** The cursor of the next batch (plain JSON). */
  state(): LoaderState {
    return { epoch: this.epoch, position: this.position, seed: this.seed };
  }

  /** Continues from a state() taken by a loader with the same split, batchSize, seqLen and ranks. */
  restore(state: unknown): void {
    const s = state as Partial<LoaderState> | null;
    const ok = s !== null && typeof s === 'object' && [s.epoch, s.position, s.seed].every((v) => Number.isSafeInteger(v) && (v as number) >= 0);
    if (!ok) throw new TypeError(`PackedLoader.restore: expected { epoch, position, seed } (non-negative integers) from state(), got ${JSON.stringify(state)}`);
    if (s.position! >= this.batchesPerEpoch) {
      throw new RangeError(`PackedLoader.restore: position ${s.position} is past this loader's ${this.batchesPerEpoch} batches per epoch; the batch size, sequence length, ranks or dataset differ from the saved run's`);
    }
    this.epoch = s.epoch!;
    this.position = s.position!;
    this.seed = s.seed!;
    this.order = null;
  }
}
