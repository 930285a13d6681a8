// Per-rank instrumentation: a span for every compute phase and every collective (issue, start of wait,
// completion), the paper's overlap fraction (communication time hidden behind computation / total
// communication time) for forward and backward separately, and Chrome/Perfetto trace JSON.
//
// A collective's time runs from issue to completion. Completion comes from the backend's Work.completedAt when
// it knows it (threads: stamped by the comm worker; mpi: when MPI_Test/MPI_Wait returned), else from the moment
// the wait returned. Its exposed part is its intersection with the rank's idle intervals: time blocked in a
// forward wait(), or time the autograd engine sat with no node to run (BackwardOptions.onIdle); the rest was
// hidden behind computation.
import type { Work } from '@farskip/collectives';

export type TracePhase = 'forward' | 'backward';

export interface ComputeSpan {
  kind: 'compute';
  name: string;
  phase: TracePhase;
  /** ms on the clock performance.timeOrigin + performance.now() */
  start: number;
  end: number;
}

export interface CommSpan {
  kind: 'comm';
  name: string;
  phase: TracePhase;
  bytes: number;
  issued: number;
  /** when the rank started waiting for it (undefined: never waited, e.g. completed and collected lazily) */
  waitStart?: number;
  /** when it completed (backend stamp, else when the wait returned) */
  completed?: number;
}

export type Span = ComputeSpan | CommSpan;

/** The rank blocked with nothing to compute. */
export interface IdleSpan { phase: TracePhase; start: number; end: number }

export interface OverlapStats {
  /** collectives counted */
  count: number;
  /** Σ (completion − issue), ms */
  commMs: number;
  /** Σ time blocked in wait() before completion, ms */
  exposedMs: number;
  /** (commMs − exposedMs) / commMs; 1 when there was no communication */
  overlap: number;
  /** Σ compute spans, ms */
  computeMs: number;
}

export const now = (): number => performance.timeOrigin + performance.now();

export class Tracer {
  readonly spans: Span[] = [];
  readonly idle: IdleSpan[] = [];
  /** which pass new spans belong to; the autograd-driven backward sets 'backward' */
  phase: TracePhase = 'forward';

  constructor(readonly rank = 0, readonly enabled = true) {}

  /** Runs `fn` as a compute span named `name`. */
  compute<T>(name: string, fn: () => T): T {
    if (!this.enabled) return fn();
    const start = now();
    try {
      return fn();
    } finally {
      this.spans.push({ kind: 'compute', name, phase: this.phase, start, end: now() });
    }
  }

  /** Records a collective issued just now; call the returned `waited` around its wait. */
  comm(name: string, work: Work, bytes: number): CommHandle {
    const span: CommSpan = { kind: 'comm', name, phase: this.phase, bytes, issued: now() };
    if (this.enabled) this.spans.push(span);
    return new CommHandle(this, span, work);
  }

  /** Records that the rank was blocked from `start` to `end` (the autograd engine's onIdle callback). */
  markIdle(start: number, end: number): void {
    if (this.enabled && end > start) this.idle.push({ phase: this.phase, start, end });
  }

  /** The BackwardOptions that report the engine's idle time to this tracer. */
  backwardOptions(): { onIdle: (start: number, end: number) => void } {
    return { onIdle: (start, end) => this.markIdle(start, end) };
  }

  clear(): void {
    this.spans.length = 0;
    this.idle.length = 0;
  }

  /** ms a completed collective was in flight while this rank was idle (waiting on it or on anything else). */
  exposedMs(s: CommSpan & { completed: number }): number {
    let exposed = 0;
    for (const i of this.idle) {
      if (i.phase === s.phase) exposed += Math.max(0, Math.min(i.end, s.completed) - Math.max(i.start, s.issued));
    }
    return Math.min(Math.max(0, s.completed - s.issued), exposed);
  }

  /** Overlap statistics of one pass (or both). */
  stats(phase?: TracePhase): OverlapStats {
    let commMs = 0, exposedMs = 0, computeMs = 0, count = 0;
    for (const s of this.spans) {
      if (phase && s.phase !== phase) continue;
      if (s.kind === 'compute') { computeMs += s.end - s.start; continue; }
      if (s.completed === undefined) continue;
      commMs += Math.max(0, s.completed - s.issued);
      exposedMs += this.exposedMs(s as CommSpan & { completed: number });
      count++;
    }
    return { count, commMs, exposedMs, overlap: commMs > 0 ? (commMs - exposedMs) / commMs : 1, computeMs };
  }

  /**
   * Chrome trace events (open in ui.perfetto.dev or chrome://tracing): pid = rank, one track for compute and
   * one for communication; a collective is an 'X' event from issue to completion with its exposed wait as a
   * nested event. Times are µs relative to `origin` (default: the first span).
   */
  toTraceEvents(origin = this.origin()): TraceEvent[] {
    const pid = this.rank;
    const us = (t: number): number => Math.round((t - origin) * 1000 * 1000) / 1000;
    const ev: TraceEvent[] = [
      { name: 'process_name', ph: 'M', pid, tid: 0, args: { name: `rank ${this.rank}` } },
      { name: 'thread_name', ph: 'M', pid, tid: 0, args: { name: 'compute' } },
      { name: 'thread_name', ph: 'M', pid, tid: 1, args: { name: 'communication' } },
    ];
    for (const s of this.spans) {
      if (s.kind === 'compute') {
        ev.push({ name: s.name, cat: `compute,${s.phase}`, ph: 'X', pid, tid: 0, ts: us(s.start), dur: us(s.end) - us(s.start) });
        continue;
      }
      const end = s.completed ?? s.waitStart ?? s.issued;
      ev.push({ name: s.name, cat: `comm,${s.phase}`, ph: 'X', pid, tid: 1, ts: us(s.issued), dur: Math.max(0, us(end) - us(s.issued)), args: { bytes: s.bytes } });
    }
    for (const i of this.idle) ev.push({ name: 'wait', cat: `wait,${i.phase}`, ph: 'X', pid, tid: 0, ts: us(i.start), dur: us(i.end) - us(i.start) });
    return ev;
  }

  origin(): number {
    let o = Infinity;
    for (const s of this.spans) o = Math.min(o, s.kind === 'compute' ? s.start : s.issued);
    return Number.isFinite(o) ? o : now();
  }
}

export interface TraceEvent {
  name: string;
  ph: 'X' | 'M';
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  args?: Record<string, unknown>;
}

/** One trace JSON object for several ranks' tracers (a shared origin keeps their timelines aligned). */
export function perfettoTrace(tracers: readonly Tracer[] | readonly TraceEvent[][], meta: Record<string, unknown> = {}): { traceEvents: TraceEvent[]; displayTimeUnit: 'ms'; metadata: Record<string, unknown> } {
  if (tracers.length > 0 && tracers[0] instanceof Tracer) {
    const ts = tracers as readonly Tracer[];
    const origin = Math.min(...ts.map((t) => t.origin()));
    return { traceEvents: ts.flatMap((t) => t.toTraceEvents(origin)), displayTimeUnit: 'ms', metadata: meta };
  }
  return { traceEvents: (tracers as readonly TraceEvent[][]).flat(), displayTimeUnit: 'ms', metadata: meta };
}

export class CommHandle {
  constructor(private readonly tracer: Tracer, readonly span: CommSpan, readonly work: Work) {}

  /** Blocks on the collective (forward): the wait is an idle interval of the rank. */
  async wait(): Promise<void> {
    const s = this.span;
    const already = this.work.completed;
    const t0 = now();
    s.waitStart ??= t0;
    await this.work.wait();
    const t1 = now();
    // the backend's stamp comes from another thread's clock: never before the issue
    s.completed ??= Math.max(s.issued, this.work.completedAt ?? (already ? t0 : t1));
    if (!already) this.tracer.markIdle(t0, t1);
  }

  /** Completion without blocking (backward nodes: the engine reports its idle time itself). */
  async done(): Promise<void> {
    await this.work.wait();
    this.span.completed ??= Math.max(this.span.issued, this.work.completedAt ?? now());
  }
}
