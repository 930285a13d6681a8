// Define-by-run autograd. Every differentiable op records one Node on its output; `backward()` walks the
// nodes reachable from the roots in dependency order (highest sequence number first among the ready ones,
// i.e. reverse creation order, as PyTorch does).
//
// Asynchronous nodes: a node's backward may return a Promise (e.g. it launched a collective). The engine does
// not wait for it: it keeps running every other ready node, and awaits pending ones only when nothing else can
// run. A consumer of that gradient becomes ready only when the promise resolves. This is how backward-pass
// communication overlaps the remaining backward computation.
//
// Memory: a node's backward closure holds the tensors it saved; the engine drops the closure right after the
// node ran (unless retainGraph), so intermediates are released as the walk proceeds.
import type { Tensor } from './tensor.js';
import { accumulateGrad, addGrads } from './registry.js';
import { formatShape, sameShape } from './shape.js';

export type GradList = (Tensor | null)[];
export type BackwardFn = (gradOutput: Tensor) => GradList | Promise<GradList>;

let nextSequence = 0;
let gradEnabled = true;

export interface RecordOptions {
  /** An asynchronous backward the engine awaits before running any other node (a collective that must not
   *  overlap, e.g. the reference schedule of @farskip/layers). Default false: other ready nodes run meanwhile. */
  blocking?: boolean;
  /**
   * Nodes that share this key run in reverse creation order, each only after every node created after it with
   * the same key has run. Backward nodes that issue collectives on one communicator pass it here: a
   * communicator needs the same call order on every rank, and without the key that order would depend on when
   * asynchronous nodes happened to finish on each rank.
   */
  orderKey?: unknown;
}

export class Node {
  readonly sequence = nextSequence++;
  private fn: BackwardFn | null;
  constructor(
    readonly name: string,
    /** The op's inputs that require grad (null where an input needs none); backward returns one grad each. */
    readonly inputs: (Tensor | null)[],
    fn: BackwardFn,
    readonly blocking = false,
    readonly orderKey: unknown = undefined,
  ) {
    this.fn = fn;
  }

  get released(): boolean { return this.fn === null; }

  run(grad: Tensor, retain: boolean): GradList | Promise<GradList> {
    const fn = this.fn;
    if (!fn) {
      throw new Error(`backward through '${this.name}' a second time: its saved tensors were already released; ` +
        'pass { retainGraph: true } to the first backward() to keep them');
    }
    if (!retain) this.fn = null;
    return fn(grad);
  }
}

export function isGradEnabled(): boolean { return gradEnabled; }

/** Sets whether ops record nodes; returns the previous setting. */
export function setGradEnabled(enabled: boolean): boolean {
  const prev = gradEnabled;
  gradEnabled = enabled;
  return prev;
}

/**
 * Runs `fn` without recording autograd nodes (torch.no_grad). For an async `fn` the setting is restored when
 * its promise settles, so do not interleave it with other grad-recording async work.
 */
export function noGrad<T>(fn: () => T): T {
  const prev = setGradEnabled(false);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    setGradEnabled(prev);
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => setGradEnabled(prev)) as T;
  }
  setGradEnabled(prev);
  return result;
}

/**
 * Records `name` on `output` when grad mode is on and any input requires grad. `backward` receives the
 * gradient of `output` and returns one gradient per entry of `inputs` (null for none); it may be async.
 */
export function recordOp<T extends Tensor>(output: T, name: string, inputs: readonly (Tensor | null | undefined)[], backward: BackwardFn,
  options: RecordOptions = {}): T {
  if (!gradEnabled) return output;
  let any = false;
  const edges = inputs.map((t) => {
    if (t && t.requiresGrad) { any = true; return t; }
    return null;
  });
  if (!any) return output;
  output.requiresGrad = true;
  output.gradFn = new Node(name, edges, backward, options.blocking ?? false, options.orderKey);
  return output;
}

export interface BackwardOptions {
  /** Keep saved tensors so the graph can be walked again. */
  retainGraph?: boolean;
  /** Called with (start, end) in ms (performance.timeOrigin + performance.now()) whenever the engine blocked
   *  with no node ready, waiting on asynchronous nodes: the backward's exposed communication time. */
  onIdle?: (start: number, end: number) => void;
}

const clock = (): number => performance.timeOrigin + performance.now();

const yieldToEventLoop: () => Promise<void> = typeof (globalThis as { setImmediate?: unknown }).setImmediate === 'function'
  ? () => new Promise((r) => (globalThis as unknown as { setImmediate(f: () => void): void }).setImmediate(r))
  : () => new Promise((r) => setTimeout(r, 0));

/** Σ of the contributions, latest producer first (the order of a purely synchronous walk). */
function sumInOrder(list: { seq: number; g: Tensor }[]): Tensor {
  list.sort((a, b) => b.seq - a.seq);
  let grad = list[0]!.g;
  for (let j = 1; j < list.length; j++) grad = addGrads(grad, list[j]!.g);
  return grad;
}

/** Runs backward from `roots` seeded with `seeds` (same shapes). Resolves when every gradient is in place. */
export async function runBackward(roots: Tensor[], seeds: Tensor[], options: BackwardOptions = {}): Promise<void> {
  const retain = options.retainGraph ?? false;
  // Count, for every reachable node, how many edges from reachable nodes lead into it.
  const deps = new Map<Node, number>();
  // Leaves: edges into each, so its contributions are summed (in the same deterministic order as a node's) and
  // accumulated into .grad once, after the last one arrived — post-accumulate hooks then see the whole gradient.
  const leafDeps = new Map<Tensor, number>();
  const leafBuffers = new Map<Tensor, { seq: number; g: Tensor }[]>();
  const stack: Node[] = [];
  for (const r of roots) if (r.gradFn && !deps.has(r.gradFn)) { deps.set(r.gradFn, 0); stack.push(r.gradFn); }
  while (stack.length) {
    const node = stack.pop()!;
    for (const t of node.inputs) {
      const g = t?.gradFn;
      if (!g) {
        if (t) leafDeps.set(t, (leafDeps.get(t) ?? 0) + 1);
        continue;
      }
      const seen = deps.has(g);
      deps.set(g, (deps.get(g) ?? 0) + 1);
      if (!seen) stack.push(g);
    }
  }

  // Gradient contributions per node, summed when the node runs in the order of their producers' sequence
  // numbers (latest first, the order a purely synchronous walk delivers them), so the result does not depend on
  // when asynchronous nodes happened to finish: overlapped and blocking schedules give bit-identical gradients.
  const buffers = new Map<Node, { seq: number; g: Tensor }[]>();
  // Ordered nodes: per orderKey, the reachable nodes latest first; a ready node runs only when it heads its list.
  const orderLists = new Map<unknown, Node[]>();
  for (const n of deps.keys()) {
    if (n.orderKey === undefined) continue;
    const l = orderLists.get(n.orderKey);
    if (l) l.push(n); else orderLists.set(n.orderKey, [n]);
  }
  for (const l of orderLists.values()) l.sort((a, b) => b.sequence - a.sequence);
  const deferred = new Set<Node>();
  const mayRun = (n: Node): boolean => n.orderKey === undefined || orderLists.get(n.orderKey)![0] === n;
  const ran = (n: Node): void => {
    if (n.orderKey === undefined) return;
    const l = orderLists.get(n.orderKey)!;
    l.shift();
    const head = l[0];
    if (head && deferred.delete(head)) pushReady(head);
  };
  const owners = new Map<Node, Tensor>(); // the tensor each node produced (for retainGrad)
  // Priority among ready nodes: the one closest to an ordered (collective-issuing) node first, so collectives
  // are issued as early as their inputs allow and the work that leads to none fills the time they are in
  // flight; then the most recently created (reverse creation order, as PyTorch). Without ordered nodes in the
  // graph every distance is infinite and the order is plain reverse creation order.
  const toCollective = new Map<Node, number>();
  if (orderLists.size) {
    for (const n of [...deps.keys()].sort((a, b) => a.sequence - b.sequence)) {
      let d = Infinity;
      if (n.orderKey !== undefined) d = 0;
      else for (const t of n.inputs) { const g = t?.gradFn; if (g && toCollective.has(g)) d = Math.min(d, toCollective.get(g)! + 1); }
      toCollective.set(n, d);
    }
  }
  const dist = (n: Node): number => toCollective.get(n) ?? Infinity;
  const runsBefore = (a: Node, b: Node): boolean => dist(a) < dist(b) || (dist(a) === dist(b) && a.sequence > b.sequence);
  const ready: Node[] = [];
  const pushReady = (n: Node): void => {
    // keep `ready` sorted so that pop() takes the node that runs first
    let i = ready.length;
    while (i > 0 && runsBefore(ready[i - 1]!, n)) i--;
    ready.splice(i, 0, n);
  };

  const deliverTo = (t: Tensor, g: Tensor | null, from: string, seq: number): void => {
    if (g && !sameShape(g.shape, t.shape)) {
      throw new Error(`backward of '${from}' returned a gradient of shape ${formatShape(g.shape)} for an input of shape ${formatShape(t.shape)}`);
    }
    const node = t.gradFn;
    if (node) {
      if (g) {
        const list = buffers.get(node);
        if (list) list.push({ seq, g }); else buffers.set(node, [{ seq, g }]);
        owners.set(node, t);
      }
      const left = deps.get(node)! - 1;
      deps.set(node, left);
      if (left === 0) pushReady(node);
    } else if (t.requiresGrad) {
      if (g) {
        const list = leafBuffers.get(t);
        if (list) list.push({ seq, g }); else leafBuffers.set(t, [{ seq, g }]);
      }
      const left = leafDeps.get(t)! - 1;
      leafDeps.set(t, left);
      if (left === 0) {
        const list = leafBuffers.get(t);
        leafBuffers.delete(t);
        if (list) accumulateGrad(t, sumInOrder(list));
      }
    }
  };

  roots.forEach((r, i) => {
    const seed = seeds[i]!;
    if (!r.requiresGrad) {
      throw new Error(`backward() on a tensor of shape ${formatShape(r.shape)} that does not require grad: ` +
        'no input of the computation had requiresGrad=true, or it ran under noGrad()');
    }
    if (r.gradFn) {
      const list = buffers.get(r.gradFn);
      const entry = { seq: Number.MAX_SAFE_INTEGER - i, g: seed };
      if (list) list.push(entry); else buffers.set(r.gradFn, [entry]);
      owners.set(r.gradFn, r);
    } else {
      accumulateGrad(r, seed);
    }
  });
  for (const [n, d] of deps) if (d === 0) pushReady(n);

  const pending = new Set<Promise<void>>();
  let asyncError: unknown = null;
  const deliverAll = (node: Node, grads: GradList): void => {
    if (grads.length !== node.inputs.length) {
      throw new Error(`backward of '${node.name}' returned ${grads.length} gradients for ${node.inputs.length} inputs`);
    }
    node.inputs.forEach((t, i) => { if (t) deliverTo(t, grads[i] ?? null, node.name, node.sequence); });
  };

  while (ready.length || pending.size) {
    if (asyncError) break;
    if (!ready.length) {
      if (!pending.size) break;
      const t0 = options.onIdle ? clock() : 0;
      await Promise.race(pending);
      options.onIdle?.(t0, clock());
      continue;
    }
    const node = ready.pop()!;
    if (!mayRun(node)) { deferred.add(node); continue; }
    ran(node);
    const contributions = buffers.get(node);
    buffers.delete(node);
    const grad = contributions ? sumInOrder(contributions) : undefined;
    const owner = owners.get(node);
    owners.delete(node);
    if (!grad) { // nothing flowed into this node: its inputs get nothing either
      deliverAll(node, node.inputs.map(() => null));
      continue;
    }
    if (owner?.retainsGrad) accumulateGrad(owner, grad);
    const result = node.run(grad, retain);
    if (result instanceof Promise && node.blocking) {
      const t0 = options.onIdle ? clock() : 0;
      try {
        deliverAll(node, await result);
      } catch (err) {
        asyncError ??= err;
      }
      options.onIdle?.(t0, clock());
    } else if (result instanceof Promise) {
      const p: Promise<void> = result.then(
        (grads) => { pending.delete(p); deliverAll(node, grads); },
        (err) => { pending.delete(p); asyncError ??= err; },
      ).catch((err) => { asyncError ??= err; });
      pending.add(p);
    } else {
      deliverAll(node, result);
      // Let async nodes that finished deliver before the next pick, so their consumers compete fairly. A
      // collective completes through a message event (a macrotask), so yield to the event loop, not just to
      // microtasks: otherwise its result is seen only once every other ready node has run, and the next
      // collective is issued with nothing left to overlap it.
      if (pending.size) await yieldToEventLoop();
    }
  }
  if (!asyncError && deferred.size) {
    asyncError = new Error(`autograd: ${deferred.size} ordered node(s) could not run (${[...deferred].map((n) => n.name).join(', ')}): ` +
      'a node with the same orderKey and a later creation never became ready');
  }
  if (asyncError) {
    await Promise.allSettled(pending);
    throw asyncError;
  }
}
