// Tracer (src/trace.ts): overlap statistics of synthetic spans and idle intervals against hand-computed values,
// the live recording API (compute spans, comm handles over fake Work), Chrome/Perfetto trace JSON, and an
// end-to-end traced training step on ep = 2.
import { describe, expect, it } from 'vitest';
import type { Work } from '@farskip/collectives';
import { Tracer, perfettoTrace } from '../src/index.js';
import type { CommSpan, ComputeSpan, TraceEvent, TracePhase } from '../src/index.js';
import { problem, runRank, withMesh } from './harness.js';

const comm = (issued: number, completed: number | undefined, phase: TracePhase = 'forward', name = 'c'): CommSpan =>
  ({ kind: 'comm', name, phase, bytes: 64, issued, completed });
const compute = (start: number, end: number, phase: TracePhase = 'forward', name = 'k'): ComputeSpan =>
  ({ kind: 'compute', name, phase, start, end });
const tracerWith = (spans: (CommSpan | ComputeSpan)[], idle: [number, number, TracePhase?][] = []): Tracer => {
  const t = new Tracer(0);
  t.spans.push(...spans);
  for (const [start, end, phase] of idle) t.idle.push({ start, end, phase: phase ?? 'forward' });
  return t;
};

describe('Tracer.stats on synthetic spans', () => {
  it('a comm fully hidden behind computation: overlap 1', () => {
    // comm [0, 10]; the rank idled only later, [20, 30]
    const s = tracerWith([comm(0, 10), compute(0, 10)], [[20, 30]]).stats();
    expect(s).toEqual({ count: 1, commMs: 10, exposedMs: 0, overlap: 1, computeMs: 10 });
  });

  it('a comm partly exposed: idle [6, 12] exposes 4 of its 10 ms', () => {
    const s = tracerWith([comm(0, 10)], [[6, 12]]).stats();
    expect(s).toEqual({ count: 1, commMs: 10, exposedMs: 4, overlap: 0.6, computeMs: 0 });
  });

  it('two comms overlapping one idle interval: each is charged its own intersection', () => {
    // A [0, 10], B [5, 15], idle [8, 14]: A exposed 2, B exposed 6 -> 8 of 20
    const s = tracerWith([comm(0, 10), comm(5, 15)], [[8, 14]]).stats();
    expect(s).toEqual({ count: 2, commMs: 20, exposedMs: 8, overlap: 0.6, computeMs: 0 });
  });

  it('exposure is capped at the comm time (idle intervals longer than, or overlapping, the comm)', () => {
    expect(tracerWith([comm(0, 10)], [[-5, 20]]).stats().exposedMs).toBe(10);
    expect(tracerWith([comm(0, 10)], [[0, 8], [2, 9]]).stats()).toMatchObject({ exposedMs: 10, overlap: 0 });
  });

  it('forward and backward are separate: idle of one phase never exposes a comm of the other', () => {
    const t = tracerWith(
      [comm(0, 10, 'forward'), comm(20, 30, 'backward'), compute(0, 3), compute(10, 14), compute(15, 16, 'backward')],
      [[0, 10, 'forward'], [25, 27, 'backward'], [22, 28, 'forward']],
    );
    expect(t.stats('forward')).toEqual({ count: 1, commMs: 10, exposedMs: 10, overlap: 0, computeMs: 7 });
    expect(t.stats('backward')).toEqual({ count: 1, commMs: 10, exposedMs: 2, overlap: 0.8, computeMs: 1 });
    expect(t.stats()).toEqual({ count: 2, commMs: 20, exposedMs: 12, overlap: 0.4, computeMs: 8 });
  });

  it('comms never completed are not counted; no communication means overlap 1', () => {
    expect(tracerWith([comm(0, undefined), compute(1, 2)]).stats()).toEqual({ count: 0, commMs: 0, exposedMs: 0, overlap: 1, computeMs: 1 });
    expect(new Tracer().stats('backward')).toEqual({ count: 0, commMs: 0, exposedMs: 0, overlap: 1, computeMs: 0 });
  });
});

/** A Work that completes after `ms` (completedAt stamped), or at once. */
function fakeWork(ms: number): Work & { completedAt?: number } {
  const w: { completed: boolean; completedAt?: number; wait(): Promise<void> } = { completed: ms === 0, wait: () => p };
  const stamp = (): void => { w.completed = true; w.completedAt = performance.timeOrigin + performance.now(); };
  if (ms === 0) stamp();
  const p: Promise<void> = ms === 0 ? Promise.resolve() : new Promise((r) => setTimeout(() => { stamp(); r(); }, ms));
  return w;
}

describe('Tracer recording', () => {
  it('compute spans carry the current phase; a forward wait on pending work is idle, done() and completed work are not', async () => {
    const t = new Tracer(3);
    expect(t.compute('matmul', () => 42)).toBe(42);
    const pending = t.comm('ar', fakeWork(20), 128);
    await pending.wait();
    const early = t.comm('early', fakeWork(0), 8);
    await early.wait();
    t.phase = 'backward';
    const bwd = t.comm('bwd', fakeWork(5), 16);
    await bwd.done();
    expect(t.spans.map((s) => `${s.kind}:${s.name}:${s.phase}`)).toEqual(['compute:matmul:forward', 'comm:ar:forward', 'comm:early:forward', 'comm:bwd:backward']);
    expect(t.idle).toHaveLength(1); // only the blocking forward wait on the pending work
    const ar = pending.span;
    expect(ar.waitStart).toBeGreaterThanOrEqual(ar.issued);
    expect(ar.completed).toBeGreaterThan(ar.issued + 10);
    expect(t.idle[0]!.phase).toBe('forward');
    expect(t.stats('forward').exposedMs).toBeGreaterThan(0.5 * (ar.completed! - ar.issued));
    expect(early.span.completed).toBeLessThanOrEqual(early.span.waitStart!);
    expect(bwd.span.waitStart).toBeUndefined();
    expect(t.stats('backward')).toMatchObject({ count: 1, exposedMs: 0, overlap: 1 });
  });

  it('markIdle ignores empty intervals; a disabled tracer records nothing; clear() empties it', async () => {
    const t = new Tracer(0);
    t.markIdle(5, 5);
    t.markIdle(6, 4);
    expect(t.idle).toHaveLength(0);
    const off = new Tracer(0, false);
    off.compute('x', () => 1);
    await off.comm('c', fakeWork(1), 4).wait();
    off.markIdle(0, 1);
    expect([off.spans.length, off.idle.length]).toEqual([0, 0]);
    t.compute('x', () => 1);
    t.markIdle(0, 1);
    t.clear();
    expect([t.spans.length, t.idle.length]).toEqual([0, 0]);
  });
});

function checkTraceJson(events: TraceEvent[], ranks: number[]): void {
  expect(JSON.parse(JSON.stringify(events))).toEqual(events);
  for (const e of events) {
    expect(['X', 'M']).toContain(e.ph);
    expect(Number.isInteger(e.pid) && Number.isInteger(e.tid)).toBe(true);
    if (e.ph === 'X') {
      expect(typeof e.name).toBe('string');
      expect(Number.isFinite(e.ts) && e.ts! >= 0).toBe(true);
      expect(Number.isFinite(e.dur) && e.dur! >= 0).toBe(true);
    }
  }
  for (const r of ranks) {
    const meta = events.filter((e) => e.ph === 'M' && e.pid === r);
    expect(meta).toEqual(expect.arrayContaining([
      expect.objectContaining({ name: 'process_name', args: { name: `rank ${r}` } }),
      expect.objectContaining({ name: 'thread_name', tid: 0, args: { name: 'compute' } }),
      expect.objectContaining({ name: 'thread_name', tid: 1, args: { name: 'communication' } }),
    ]));
  }
}

describe('Chrome / Perfetto trace JSON', () => {
  it('toTraceEvents: µs relative to the first span; compute and waits on tid 0, comms on tid 1 with bytes', () => {
    const t = new Tracer(2);
    t.spans.push(compute(1000, 1002.5, 'forward', 'attn'), comm(1001, 1004, 'backward', 'ar'), comm(1003, undefined, 'forward', 'lost'));
    t.idle.push({ phase: 'forward', start: 1002.5, end: 1003.25 });
    const ev = t.toTraceEvents();
    checkTraceJson(ev, [2]);
    const x = ev.filter((e) => e.ph === 'X');
    expect(x).toEqual([
      { name: 'attn', cat: 'compute,forward', ph: 'X', pid: 2, tid: 0, ts: 0, dur: 2500 },
      { name: 'ar', cat: 'comm,backward', ph: 'X', pid: 2, tid: 1, ts: 1000, dur: 3000, args: { bytes: 64 } },
      { name: 'lost', cat: 'comm,forward', ph: 'X', pid: 2, tid: 1, ts: 3000, dur: 0, args: { bytes: 64 } },
      { name: 'wait', cat: 'wait,forward', ph: 'X', pid: 2, tid: 0, ts: 2500, dur: 750 },
    ]);
  });

  it('perfettoTrace: several ranks on one shared origin; event lists are concatenated', () => {
    const a = new Tracer(0), b = new Tracer(1);
    a.spans.push(compute(500, 501));
    b.spans.push(comm(499.5, 502));
    const trace = perfettoTrace([a, b], { mesh: 'ep=2' });
    expect(trace.displayTimeUnit).toBe('ms');
    expect(trace.metadata).toEqual({ mesh: 'ep=2' });
    checkTraceJson(trace.traceEvents, [0, 1]);
    const byPid = (pid: number): TraceEvent => trace.traceEvents.find((e) => e.ph === 'X' && e.pid === pid)!;
    expect([byPid(0).ts, byPid(1).ts]).toEqual([500, 0]); // the earliest span of either rank is the origin
    const merged = perfettoTrace([a.toTraceEvents(), b.toTraceEvents()]);
    expect(merged.traceEvents).toHaveLength(a.toTraceEvents().length + b.toTraceEvents().length);
    expect(JSON.parse(JSON.stringify(trace))).toEqual(trace);
  });
});

describe('end to end: a traced training step on ep=2', () => {
  it('reports forward and backward overlap with count > 0 and overlap in [0, 1]; its trace is valid', async () => {
    const res = await withMesh({ ep: 2 }, (ctx) => runRank(problem(), ctx, { tracer: true }));
    for (const r of res) {
      const t = r.tracer!;
      expect(t.rank).toBe(r.rank);
      for (const phase of ['forward', 'backward'] as const) {
        const s = t.stats(phase);
        expect(s.count).toBeGreaterThan(0);
        expect(s.overlap).toBeGreaterThanOrEqual(0);
        expect(s.overlap).toBeLessThanOrEqual(1);
        expect(s.commMs).toBeGreaterThanOrEqual(s.exposedMs);
        expect(s.exposedMs).toBeGreaterThanOrEqual(0);
      }
      expect(t.stats('forward').computeMs).toBeGreaterThan(0);
      const both = t.stats();
      expect(both.count).toBe(t.stats('forward').count + t.stats('backward').count);
      const names = t.spans.map((s) => s.name);
      for (const re of [/moe\.dispatch$/, /moe\.combine$/, /moe\.(dispatch|combine)\.backward$/, /^dp\.dense\.bucket\d+$/, /attn\.A$/]) {
        expect(names.some((n) => re.test(n)), String(re)).toBe(true);
      }
      // every collective of a finished step completed
      expect(t.spans.every((s) => s.kind === 'compute' || s.completed !== undefined)).toBe(true);
    }
    const trace = perfettoTrace(res.map((r) => r.tracer!));
    checkTraceJson(trace.traceEvents, [0, 1]);
    expect(trace.traceEvents.filter((e) => e.ph === 'X' && e.tid === 1).length).toBeGreaterThan(10);
  });
});
