// The step plan rank 0 broadcasts to the other ranks before each forward, so that every rank runs the same
// forwards on the same tokens (lockstep). Encoded as i32: a header [kind, payload length] broadcast first, then
// the payload [nPrefill, (slot, allLogits, T, tokens × T) × nPrefill, nDecode, (slot, token) × nDecode].
import type { Communicator } from '@farskip/collectives';

export interface StepPlan {
  /** step: run the forwards; idle: nothing to do (keeps the followers' collective from timing out); shutdown */
  kind: 'step' | 'idle' | 'shutdown';
  prefills: { slot: number; tokens: number[]; allLogits: boolean }[];
  decodes: { slot: number; token: number }[];
}

const KINDS = ['step', 'idle', 'shutdown'] as const;

export function encodePlan(p: StepPlan): Int32Array {
  const out: number[] = [p.prefills.length];
  for (const f of p.prefills) out.push(f.slot, f.allLogits ? 1 : 0, f.tokens.length, ...f.tokens);
  out.push(p.decodes.length);
  for (const d of p.decodes) out.push(d.slot, d.token);
  return Int32Array.from(out);
}

export function decodePlan(kind: number, a: Int32Array): StepPlan {
  const k = KINDS[kind];
  if (!k) throw new Error(`plan: unknown kind ${kind} (the ranks run different versions?)`);
  let i = 0;
  const prefills: StepPlan['prefills'] = [];
  for (let n = a[i++]!; n > 0; n--) {
    const slot = a[i++]!, allLogits = a[i++] === 1, T = a[i++]!;
    prefills.push({ slot, allLogits, tokens: Array.from(a.subarray(i, i + T)) });
    i += T;
  }
  const decodes: StepPlan['decodes'] = [];
  for (let n = a[i++]!; n > 0; n--) decodes.push({ slot: a[i++]!, token: a[i++]! });
  if (i !== a.length) throw new Error(`plan: ${a.length - i} trailing values (corrupt plan)`);
  return { kind: k, prefills, decodes };
}

/** Broadcasts plans from world rank 0. */
export class PlanChannel {
  constructor(private readonly world: Communicator) {}

  async send(p: StepPlan): Promise<void> {
    const payload = encodePlan(p);
    await this.world.broadcast(Int32Array.of(KINDS.indexOf(p.kind), payload.length), 0).wait();
    if (payload.length) await this.world.broadcast(payload, 0).wait();
  }

  async receive(): Promise<StepPlan> {
    const header = new Int32Array(2);
    await this.world.broadcast(header, 0).wait();
    const payload = new Int32Array(header[1]!);
    if (payload.length) await this.world.broadcast(payload, 0).wait();
    return decodePlan(header[0]!, payload);
  }
}
