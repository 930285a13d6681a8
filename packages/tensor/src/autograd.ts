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

export class Node {
  readonly sequence = nextSequence++;
  private fn: BackwardFn | null;
  constructor(
    readonly name: string,
    /** The op's inputs that require grad (null where an input needs none); backward returns one grad each. */
    readonly inputs: (Tensor | null)[],
    fn: BackwardFn,
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
export function recordOp<T extends Tensor>(output: T, name: string, inputs: readonly (Tensor | null | undefined)[], backward: BackwardFn): T {
  if (!gradEnabled) return output;
  let any = false;
  const edges = inputs.map((t) => {
    if (t && t.requiresGrad) { any = true; return t; }
    return null;
  });
  if (!any) return output;
  output.requiresGrad = true;
  output.gradFn = new Node(name, edges, backward);
  return output;
}

export interface BackwardOptions {
  /** Keep saved tensors so the graph can be walked again. */
  retainGraph?: boolean;
}

/** Runs backward from `roots` seeded with `seeds` (same shapes). Resolves when every gradient is in place. */
export async function runBackward(roots: Tensor[], seeds: Tensor[], options: BackwardOptions = {}): Promise<void> {
  const retain = options.retainGraph ?? false;
  // Count, for every reachable node, how many edges from reachable nodes lead into it.
  const deps = new Map<Node, number>();
  const stack: Node[] = [];
  for (const r of roots) if (r.gradFn && !deps.has(r.gradFn)) { deps.set(r.gradFn, 0); stack.push(r.gradFn); }
  while (stack.length) {
    const node = stack.pop()!;
    for (const t of node.inputs) {
      const g = t?.gradFn;
      if (!g) continue;
      const seen = deps.has(g);
      deps.set(g, (deps.get(g) ?? 0) + 1);
      if (!seen) stack.push(g);
    }
  }

  const buffers = new Map<Node, Tensor>();
  const owners = new Map<Node, Tensor>(); // the tensor each node produced (for retainGrad)
  const ready: Node[] = [];
  const pushReady = (n: Node): void => {
    // keep `ready` sorted by sequence ascending; pop() takes the most recent node
    let i = ready.length;
    while (i > 0 && ready[i - 1]!.sequence > n.sequence) i--;
    ready.splice(i, 0, n);
  };

  const deliverTo = (t: Tensor, g: Tensor | null, from: string): void => {
    if (g && !sameShape(g.shape, t.shape)) {
      throw new Error(`backward of '${from}' returned a gradient of shape ${formatShape(g.shape)} for an input of shape ${formatShape(t.shape)}`);
    }
    const node = t.gradFn;
    if (node) {
      if (g) {
        const prev = buffers.get(node);
        buffers.set(node, prev ? addGrads(prev, g) : g);
        owners.set(node, t);
      }
      const left = deps.get(node)! - 1;
      deps.set(node, left);
      if (left === 0) pushReady(node);
    } else if (g && t.requiresGrad) {
      accumulateGrad(t, g);
    }
  };

  roots.forEach((r, i) => {
    const seed = seeds[i]!;
    if (!r.requiresGrad) {
      throw new Error(`backward() on a tensor of shape ${formatShape(r.shape)} that does not require grad: ` +
        'no input of the computation had requiresGrad=true, or it ran under noGrad()');
    }
    if (r.gradFn) {
      const prev = buffers.get(r.gradFn);
      buffers.set(r.gradFn, prev ? addGrads(prev, seed) : seed);
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
    node.inputs.forEach((t, i) => { if (t) deliverTo(t, grads[i] ?? null, node.name); });
  };

  while (ready.length || pending.size) {
    if (asyncError) break;
    if (!ready.length) {
      await Promise.race(pending);
      continue;
    }
    const node = ready.pop()!;
    const grad = buffers.get(node);
    buffers.delete(node);
    const owner = owners.get(node);
    owners.delete(node);
    if (!grad) { // nothing flowed into this node: its inputs get nothing either
      deliverAll(node, node.inputs.map(() => null));
      continue;
    }
    if (owner?.retainsGrad) accumulateGrad(owner, grad);
    const result = node.run(grad, retain);
    if (result instanceof Promise) {
      const p: Promise<void> = result.then(
        (grads) => { pending.delete(p); deliverAll(node, grads); },
        (err) => { pending.delete(p); asyncError ??= err; },
      ).catch((err) => { asyncError ??= err; });
      pending.add(p);
    } else {
      deliverAll(node, result);
      // let settled async nodes deliver before picking the next node, so their consumers compete fairly
      if (pending.size) await undefined;
    }
  }
  if (asyncError) {
    await Promise.allSettled(pending);
    throw asyncError;
  }
}
