// One error type for every collective failure, naming the operation, the communicator and the rank, so a
// failed step on rank 3 of 'world/split(color=1)' says so on every surviving rank.
import { envVar } from './env.js';

export type FailureKind = 'mismatch' | 'peer-failed' | 'timeout' | 'destroyed' | 'invalid-argument' | 'backend';

export class CollectiveError extends Error {
  override readonly name = 'CollectiveError';
  constructor(
    readonly kind: FailureKind,
    /** e.g. 'allReduce' */
    readonly op: string,
    /** communicator name */
    readonly communicator: string,
    /** the rank reporting it */
    readonly rank: number,
    detail: string,
    /** the rank at fault, when known */
    readonly culprit?: number,
  ) {
    super(`${op} on communicator '${communicator}' (rank ${rank}): ${detail}`);
  }
}

export function defaultTimeoutMs(): number {
  const env = envVar('FARSKIP_COMM_TIMEOUT_MS');
  const v = env ? Number(env) : NaN;
  return Number.isFinite(v) && v > 0 ? v : 300_000;
}
