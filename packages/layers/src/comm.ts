// Differentiable collectives on tensors. Each returns a Pending at once (the collective is in flight); wait()
// gives the result. Their backward nodes launch the adjoint collective asynchronously, so the autograd engine
// keeps running the rest of the backward while it is in flight (DESIGN §3 tensor) — unless the schedule is
// 'reference', where the node is blocking: the engine waits for it before doing anything else.
//
//   allToAllTensor : forward all-to-all with per-peer row counts; backward the reverse all-to-all
//   allReduceTensor: forward sum all-reduce; backward identity (Megatron's "reduce from model-parallel region":
//                    the loss downstream is replicated on every rank)
//   copyToGroup    : forward identity; backward sum all-reduce (Megatron's "copy to model-parallel region")
import type { Communicator, HostBuffer } from '@farskip/collectives';
import { Tensor, recordOp } from '@farskip/tensor';
import type { CommHandle, Tracer } from './trace.js';

export type Schedule = 'reference' | 'overlapped';

/** How collectives are issued and recorded: the schedule decides whether anything may run while they fly. */
export interface CommEnv {
  schedule: Schedule;
  tracer?: Tracer;
  /** prefix of trace span names, e.g. 'layer3' */
  scope?: string;
}

/** A result that is still being communicated. */
export interface Pending<T> {
  wait(): Promise<T>;
}

export function resolved<T>(value: T): Pending<T> {
  return { wait: () => Promise.resolve(value) };
}

/** The issue point of a collective in a schedule: 'reference' waits for it right here (so nothing overlaps it),
 *  'overlapped' returns it still in flight. */
export async function issued<T>(env: CommEnv, p: Pending<T>): Promise<Pending<T>> {
  if (env.schedule === 'overlapped') return p;
  return resolved(await p.wait());
}

function buffer(t: Tensor, what: string): HostBuffer {
  if (t.dtype === 'i32') throw new Error(`${what}: collectives move float tensors here, got i32`);
  return t.data as HostBuffer;
}

function track(env: CommEnv, name: string, work: import('@farskip/collectives').Work, bytes: number): CommHandle | null {
  return env.tracer ? env.tracer.comm(env.scope && !name.startsWith(env.scope) ? `${env.scope}.${name}` : name, work, bytes) : null;
}

async function waitForward(h: CommHandle | null, work: import('@farskip/collectives').Work): Promise<void> {
  if (h) await h.wait();
  else await work.wait();
}

async function waitBackward(h: CommHandle | null, work: import('@farskip/collectives').Work): Promise<void> {
  if (h) await h.done();
  else await work.wait();
}

/**
 * x [rows, ...rest] holds sendRows[p] rows for peer p, back to back; the result [Σ recvRows, ...rest] holds
 * recvRows[p] rows from peer p. Gradient: the reverse exchange.
 */
export function allToAllTensor(x: Tensor, comm: Communicator, sendRows: readonly number[], recvRows: readonly number[], env: CommEnv, name = 'allToAll'): Pending<Tensor> {
  if (comm.size === 1) return resolved(x);
  const rest = x.shape.slice(1);
  const inner = rest.reduce((a, b) => a * b, 1);
  const totalIn = sendRows.reduce((a, b) => a + b, 0);
  if (totalIn !== x.shape[0]) {
    throw new Error(`${name}: sendRows sum to ${totalIn} but the input has ${x.shape[0]} rows: counts must cover the tensor exactly`);
  }
  const rowsOut = recvRows.reduce((a, b) => a + b, 0);
  const out = Tensor.empty([rowsOut, ...rest], { dtype: x.dtype });
  const sc = sendRows.map((r) => r * inner), rc = recvRows.map((r) => r * inner);
  const bytesPer = x.data.BYTES_PER_ELEMENT;
  const work = comm.allToAll(buffer(x, name), buffer(out, name), sc, rc);
  const h = track(env, name, work, (x.numel + out.numel) * bytesPer / 2);
  recordOp(out, name, [x], (g) => {
    const gx = Tensor.empty(x.shape, { dtype: g.dtype });
    const w = comm.allToAll(buffer(g.detach(), name), buffer(gx, name), rc, sc);
    const hb = track(env, `${name}.backward`, w, (g.numel + gx.numel) * bytesPer / 2);
    return waitBackward(hb, w).then(() => [gx]);
  }, { blocking: env.schedule === 'reference', orderKey: comm });
  return lazy(() => waitForward(h, work).then(() => out));
}

/** Sum over the group, in place on a copy of x. Gradient: identity. */
export function allReduceTensor(x: Tensor, comm: Communicator, env: CommEnv, name = 'allReduce'): Pending<Tensor> {
  if (comm.size === 1) return resolved(x);
  const out = x.detach().clone();
  const work = comm.size > 1 ? comm.allReduce(buffer(out, name), 'sum') : null;
  const h = work ? track(env, name, work, out.numel * out.data.BYTES_PER_ELEMENT) : null;
  recordOp(out, name, [x], (g) => [g]);
  if (!work) return resolved(out);
  return lazy(() => waitForward(h, work).then(() => out));
}

/** Identity forward; the gradient is summed over the group (the input feeds sharded computations). */
export function copyToGroup(x: Tensor, comm: Communicator, env: CommEnv, name = 'copyToGroup'): Tensor {
  if (comm.size === 1) return x;
  const out = x.detach();
  return recordOp(new Tensor(out.data, out.shape, { dtype: out.dtype }), name, [x], (g) => {
    const gx = g.detach().clone();
    const w = comm.allReduce(buffer(gx, name), 'sum');
    const h = track(env, `${name}.backward`, w, gx.numel * gx.data.BYTES_PER_ELEMENT);
    return waitBackward(h, w).then(() => [gx]);
  }, { blocking: env.schedule === 'reference', orderKey: comm });
}

/** The wait starts when the caller first asks for the result (so the tracer sees when the rank blocked). */
function lazy<T>(start: () => Promise<T>): Pending<T> {
  let p: Promise<T> | null = null;
  return { wait: () => (p ??= start()) };
}
