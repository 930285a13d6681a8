// Data-parallel gradient averaging in buckets launched during backward (as torch DDP): parameters are grouped
// into buckets of ~bucketBytes in reverse order (the order backward produces their gradients); when every
// parameter of a bucket has its gradient (post-accumulate hook), the bucket is flattened and its all-reduce
// (avg) is issued at once, overlapping the rest of the backward. finish() launches what is left, waits, and
// writes the averaged gradients back into .grad.
//
// Like DDP without find_unused_parameters, each parameter is expected to receive its gradient once per
// backward; a parameter that received none by finish() contributes zeros (and gets a zero .grad).
import type { Communicator, Work } from '@farskip/collectives';
import { Tensor } from '@farskip/tensor';
import type { CommHandle, Tracer } from './trace.js';

export interface GradientBucketsOptions {
  /** bucket capacity (default 4 MiB of f32 gradients) */
  bucketBytes?: number;
  /** a name for trace spans and errors */
  name?: string;
  tracer?: Tracer;
  /**
   * multiplies the averaged gradients (default 1). Expert parameters take 1/ep: the all-to-all backward has
   * already summed the gradients of every ep rank's tokens, so averaging over dp alone would leave them ep times
   * the gradient of the global mean loss that the dense parameters get.
   */
  postScale?: number;
}

interface Bucket {
  params: Tensor[];
  offsets: number[];
  flat: Float32Array;
  ready: number;
  work: Work | null;
  handle: CommHandle | null;
}

export class GradientBuckets {
  private readonly buckets: Bucket[] = [];
  private readonly bucketOf = new Map<Tensor, Bucket>();
  private readonly seen = new Set<Tensor>();
  private readonly hooks: { remove(): void }[] = [];
  /** buckets launch strictly in index order (every rank of the group must issue their all-reduces alike) */
  private nextLaunch = 0;
  readonly name: string;

  constructor(params: readonly Tensor[], readonly group: Communicator, private readonly options: GradientBucketsOptions = {}) {
    this.name = options.name ?? 'dp';
    const cap = Math.max(1, Math.floor((options.bucketBytes ?? 4 << 20) / 4));
    let cur: Tensor[] = [];
    let size = 0;
    const close = (): void => {
      if (!cur.length) return;
      const offsets: number[] = [];
      let off = 0;
      for (const p of cur) { offsets.push(off); off += p.numel; }
      const b: Bucket = { params: cur, offsets, flat: new Float32Array(off), ready: 0, work: null, handle: null };
      for (const p of cur) this.bucketOf.set(p, b);
      this.buckets.push(b);
      cur = [];
      size = 0;
    };
    for (const p of [...params].reverse()) {
      if (!p.requiresGrad || !p.isLeaf) throw new Error(`${this.name}: every parameter must be a leaf that requires grad (got shape [${p.shape.join(', ')}])`);
      if (p.dtype !== 'f32' && p.dtype !== 'bf16') throw new Error(`${this.name}: gradient buckets average f32 or bf16 gradients, got a ${p.dtype} parameter`);
      if (this.bucketOf.has(p)) throw new Error(`${this.name}: a parameter is listed twice`);
      cur.push(p);
      this.bucketOf.set(p, null as never);
      size += p.numel;
      if (size >= cap) close();
    }
    close();
    if (group.size > 1) {
      for (const p of params) this.hooks.push(p.registerPostAccumulateGradHook((t) => this.onGrad(t)));
    }
  }

  get bucketCount(): number {
    return this.buckets.length;
  }

  private onGrad(p: Tensor): void {
    if (this.seen.has(p)) {
      throw new Error(`${this.name}: a parameter of shape [${p.shape.join(', ')}] received a second gradient in one backward ` +
        '(used twice in the forward?); its bucket may already be in flight');
    }
    this.seen.add(p);
    const b = this.bucketOf.get(p)!;
    b.ready++;
    while (this.nextLaunch < this.buckets.length) {
      const next = this.buckets[this.nextLaunch]!;
      if (next.ready < next.params.length) break;
      this.launch(next);
      this.nextLaunch++;
    }
  }

  private launch(b: Bucket): void {
    b.params.forEach((p, i) => {
      // bf16 gradients (bf16 training) are averaged in f32 and rounded once, after the reduction
      if (p.grad) b.flat.set((p.grad.dtype === 'f32' ? p.grad.data : p.grad.detach().to('f32').data) as Float32Array, b.offsets[i]);
      else b.flat.fill(0, b.offsets[i], b.offsets[i]! + p.numel);
    });
    b.work = this.group.allReduce(b.flat, 'avg');
    b.handle = this.options.tracer ? this.options.tracer.comm(`${this.name}.bucket${this.buckets.indexOf(b)}`, b.work, b.flat.byteLength) : null;
  }

  /** Launches the buckets not yet launched, waits for all, writes the averages into .grad; resets for the next step. */
  async finish(): Promise<void> {
    if (this.group.size === 1) {
      const c = this.options.postScale ?? 1;
      if (c !== 1) for (const b of this.buckets) for (const p of b.params) if (p.grad) p.grad = scaleGrad(p.grad, c);
      return this.reset();
    }
    // what happens here belongs to the backward pass (buckets of parameters that got no gradient, the waits)
    const tracer = this.options.tracer;
    const phase = tracer?.phase;
    if (tracer) tracer.phase = 'backward';
    try {
      await this.finishBuckets();
    } finally {
      if (tracer) tracer.phase = phase!;
    }
  }

  private async finishBuckets(): Promise<void> {
    for (const b of this.buckets) if (!b.work) this.launch(b);
    for (const b of this.buckets) {
      if (b.handle) await b.handle.wait();
      else await b.work!.wait();
      const c = this.options.postScale ?? 1;
      if (c !== 1) for (let k = 0; k < b.flat.length; k++) b.flat[k]! *= c;
      b.params.forEach((p, i) => {
        const avg = new Tensor(b.flat.slice(b.offsets[i], b.offsets[i]! + p.numel), p.shape.slice());
        p.grad = p.dtype === 'bf16' ? avg.to('bf16').detach() : avg;
      });
    }
    this.reset();
  }

  private reset(): void {
    this.seen.clear();
    this.nextLaunch = 0;
    for (const b of this.buckets) { b.ready = 0; b.work = null; b.handle = null; }
  }

  /** Removes the hooks. */
  remove(): void {
    for (const h of this.hooks) h.remove();
    this.hooks.length = 0;
  }
}

/** g · c as a new gradient of g's dtype */
function scaleGrad(g: Tensor, c: number): Tensor {
  const f = (g.dtype === 'f32' ? g.detach().clone() : g.detach().to('f32')).data as Float32Array;
  for (let k = 0; k < f.length; k++) f[k]! *= c;
  const t = new Tensor(f, g.shape.slice());
  return g.dtype === 'f32' ? t : t.to(g.dtype).detach();
}
