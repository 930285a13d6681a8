// The inference engine: continuous batching over a slot KV cache (vLLM's scheduling, on our CPU model).
// Every step admits waiting sequences into free slots and prefills each (one forward of its prompt), then runs
// one decode forward for every sequence that was already running: rows of different lengths share the batch,
// each attending to its own slot (KVCache.select / per-slot lengths). A finished or cancelled sequence frees
// its slot at the next step boundary, and the next waiting sequence takes it.
//
// Multi-rank (tensor parallel, experts split over the same ranks: the all-reduce inference form): every rank
// runs the same forwards in lockstep. World rank 0 schedules and samples; before each step it broadcasts the
// step's plan (plan.ts) and the other ranks (Engine.follow) execute it. Only rank 0 computes logits.
import type { Communicator } from '@farskip/collectives';
import type { KVCache } from '@farskip/kernels';
import type { FarSkipOptions, Schedule, Tracer } from '@farskip/layers';
import { attachKVCaches, sample, withoutGrad } from '@farskip/models';
import type { CausalLM } from '@farskip/models';
import { Random, Tensor } from '@farskip/tensor';
import { logprobsOf } from './logprobs.js';
import type { TokenLogprobs } from './logprobs.js';
import { PlanChannel } from './plan.js';
import type { StepPlan } from './plan.js';

export interface SequenceParams {
  /** prompt token ids (at least one) */
  prompt: number[];
  /** 0: only the prompt is scored (echo + logprobs) */
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** sampling seed (default: random) */
  seed?: number;
  /** token ids that end the sequence (the tokenizer's eos, generation_config's eos_token_id) */
  stopTokens?: number[];
  /** top alternatives reported per generated token (0: only the chosen token's logprob); null: none */
  logprobs?: number | null;
  /** also score the prompt tokens (echo): needs the logits of every prompt position */
  promptLogprobs?: boolean;
}

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export interface SequenceHooks {
  /** prompt logprobs (first token: null), when promptLogprobs was asked */
  onPrompt?(logprobs: (TokenLogprobs | null)[]): void;
  /** one generated token; `stop` marks a stop token (its text is not part of the completion) */
  onToken?(token: number, info: { logprobs: TokenLogprobs | null; stop: boolean }): void;
  onFinish?(reason: FinishReason, error?: Error): void;
}

export interface EngineOptions {
  /** sequences decoded together (KV cache slots) */
  maxBatch?: number;
  /** tokens per sequence, prompt and completion together (KV cache length per slot) */
  maxModelLen?: number;
  /** waiting sequences beyond the running batch; past it submit() throws QueueFullError */
  maxQueue?: number;
  /** FarSkip connectivity (default: the model's own) and schedule (default overlapped) */
  farskip?: FarSkipOptions | null;
  schedule?: Schedule;
  /** records compute and communication spans of every forward (benchmarks) */
  tracer?: Tracer;
  /** the world communicator when several ranks serve the model in lockstep (rank 0 runs the engine) */
  world?: Communicator;
}

/** The engine's defaults; Engine.follow must use the same slots and length as rank 0's engine. */
const DEFAULTS = { maxBatch: 8, maxModelLen: 2048, maxQueue: 64 };

export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`the server is at capacity: ${limit} requests are already waiting; retry later`);
    this.name = 'QueueFullError';
  }
}

let nextId = 1;

/** A submitted sequence: its tokens so far and how it ended; cancel() frees its slot at the next step. */
export class Sequence {
  readonly id = nextId++;
  readonly generated: number[] = [];
  slot = -1;
  finished: FinishReason | null = null;
  /** ms timestamps (performance.now): submitted, first token, finished */
  readonly times = { submitted: performance.now(), firstToken: 0, finished: 0 };
  readonly rng: Random;
  private cancelRequested: FinishReason | null = null;

  constructor(readonly params: SequenceParams, readonly hooks: SequenceHooks, private readonly engine: Engine) {
    this.rng = new Random(params.seed ?? Math.floor(Math.random() * 2 ** 31));
  }

  /** Ends the sequence (client gone: 'cancelled'; a stop string found by the caller: 'stop'). */
  cancel(reason: FinishReason = 'cancelled'): void {
    if (this.finished || this.cancelRequested) return;
    this.cancelRequested = reason;
    this.engine.wake();
  }

  get cancelReason(): FinishReason | null {
    return this.cancelRequested;
  }

  /** the token the next decode step feeds (the last generated one) */
  get lastToken(): number {
    return this.generated[this.generated.length - 1]!;
  }
}

export class Engine {
  readonly maxBatch: number;
  readonly maxModelLen: number;
  readonly maxQueue: number;
  private readonly waiting: Sequence[] = [];
  private readonly running = new Map<number, Sequence>(); // by slot
  private readonly caches: KVCache[];
  private readonly channel: PlanChannel | null;
  private wakeUp: (() => void) | null = null;
  private stopping = false;
  private loop: Promise<void> | null = null;
  /** set when the engine failed (a forward threw, a peer died): every later submit fails with it */
  failure: Error | null = null;
  /** steps, tokens and batch shapes (tests and diagnostics) */
  readonly counters = { prefillTokens: 0, decodeTokens: 0, steps: 0, maxDecodeBatch: 0, raggedDecodeSteps: 0 };

  constructor(readonly model: CausalLM, readonly options: EngineOptions = {}) {
    this.maxBatch = options.maxBatch ?? DEFAULTS.maxBatch;
    this.maxModelLen = options.maxModelLen ?? DEFAULTS.maxModelLen;
    this.maxQueue = options.maxQueue ?? DEFAULTS.maxQueue;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new Error(`Engine: maxBatch ${this.maxBatch} must be a positive integer`);
    if (!Number.isInteger(this.maxModelLen) || this.maxModelLen < 2) throw new Error(`Engine: maxModelLen ${this.maxModelLen} must be an integer >= 2`);
    if (options.world && options.world.rank !== 0) throw new Error('Engine: only world rank 0 runs the engine; the other ranks call Engine.follow');
    this.caches = attachKVCaches(model, this.maxBatch, this.maxModelLen);
    this.channel = options.world && options.world.size > 1 ? new PlanChannel(options.world) : null;
  }

  /** Bytes the KV caches hold (every slot at full length). */
  get kvCacheBytes(): number {
    return this.caches.reduce((s, c) => s + (c.keys.numel + c.values.numel) * 4, 0);
  }

  get waitingCount(): number { return this.waiting.length; }
  get runningCount(): number { return this.running.size; }

  /** Queues a sequence; its hooks report tokens and the end. Throws QueueFullError past maxQueue waiting. */
  submit(params: SequenceParams, hooks: SequenceHooks = {}): Sequence {
    if (this.failure) throw this.failure;
    if (this.stopping) throw new Error('the engine is shutting down');
    const n = params.prompt.length;
    if (n < 1) throw new Error('the prompt is empty: give at least one token');
    if (n + params.maxNewTokens > this.maxModelLen) {
      throw new Error(`the prompt (${n} tokens) and max_tokens (${params.maxNewTokens}) exceed the model length ${this.maxModelLen}`);
    }
    const V = this.model.spec.vocabSize;
    for (const t of params.prompt) if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`prompt token ${t} is outside the vocabulary [0, ${V})`);
    // free slots take waiting sequences at the next step; beyond them at most maxQueue wait
    if (this.waiting.length >= this.maxQueue + (this.maxBatch - this.running.size)) throw new QueueFullError(this.maxQueue);
    const seq = new Sequence(params, hooks, this);
    this.waiting.push(seq);
    this.wake();
    return seq;
  }

  /** Submits and resolves when the sequence ends (generate, tests). */
  complete(params: SequenceParams, hooks: SequenceHooks = {}): Promise<Sequence> {
    return new Promise((resolve) => {
      const seq = this.submit(params, { ...hooks, onFinish: (r, e) => { hooks.onFinish?.(r, e); resolve(seq); } });
    });
  }

  /** Starts the scheduling loop (rank 0); resolves once stop() finished it. */
  start(): Promise<void> {
    this.loop ??= this.run().catch((e: Error) => this.fail(e));
    return this.loop;
  }

  /** Finishes the running sequences as cancelled, tells follower ranks to return, and removes the caches. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loop;
    attachKVCaches(this.model, 0, 0);
  }

  wake(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  private fail(e: Error): void {
    this.failure = e;
    this.endAll('error', e);
  }

  /** Ends every waiting and running sequence. */
  private endAll(reason: FinishReason, error?: Error): void {
    for (const s of [...this.waiting, ...this.running.values()]) this.finish(s, reason, error);
    this.waiting.length = 0;
    this.running.clear();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.dropCancelled();
      if (this.waiting.length === 0 && this.running.size === 0) {
        // idle: wait for work; multi-rank, tell the followers we are alive before their collective times out
        const idle = new Promise<boolean>((res) => {
          this.wakeUp = () => res(true);
          if (this.channel) setTimeout(() => res(false), 20_000).unref();
        });
        if (!(await idle) && this.channel && !this.stopping && !this.waiting.length) await this.channel.send({ kind: 'idle', prefills: [], decodes: [] });
        continue;
      }
      await this.step();
      // let the event loop run (new requests, disconnects) between steps
      await new Promise((res) => setImmediate(res));
    }
    this.endAll('cancelled');
    if (this.channel) await this.channel.send({ kind: 'shutdown', prefills: [], decodes: [] });
  }

  private dropCancelled(): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const s = this.waiting[i]!;
      if (s.cancelReason) { this.waiting.splice(i, 1); this.finish(s, s.cancelReason); }
    }
    for (const [slot, s] of this.running) if (s.cancelReason) { this.running.delete(slot); this.finish(s, s.cancelReason); }
  }

  /** One scheduling step: admit and prefill, then decode the sequences that were running. */
  private async step(): Promise<void> {
    const decoding = [...this.running.values()];
    const admitted: Sequence[] = [];
    for (let slot = 0; slot < this.maxBatch && this.waiting.length; slot++) {
      if (this.running.has(slot)) continue;
      const s = this.waiting.shift()!;
      s.slot = slot;
      this.running.set(slot, s);
      admitted.push(s);
    }
    const plan: StepPlan = {
      kind: 'step',
      prefills: admitted.map((s) => ({ slot: s.slot, tokens: s.params.prompt, allLogits: !!s.params.promptLogprobs })),
      decodes: decoding.map((s) => ({ slot: s.slot, token: s.lastToken })),
    };
    if (this.channel) await this.channel.send(plan);
    this.counters.steps++;
    this.counters.maxDecodeBatch = Math.max(this.counters.maxDecodeBatch, decoding.length);
    const lengths = new Set(decoding.map((s) => s.params.prompt.length + s.generated.length));
    if (lengths.size > 1) this.counters.raggedDecodeSteps++; // rows of different lengths shared this decode forward
    const out = await executePlan(this.model, this.caches, plan, this.options, true);
    admitted.forEach((s, i) => {
      const logits = out.prefill[i]!;
      const V = this.model.spec.vocabSize;
      if (s.params.promptLogprobs) {
        const n = s.params.prompt.length;
        const lp: (TokenLogprobs | null)[] = [null];
        for (let t = 1; t < n; t++) lp.push(logprobsOf(logits.subarray((t - 1) * V, t * V), s.params.prompt[t]!, s.params.logprobs ?? 0));
        s.hooks.onPrompt?.(lp);
      }
      this.counters.prefillTokens += s.params.prompt.length;
      this.emit(s, logits.subarray(logits.length - V));
    });
    decoding.forEach((s, i) => {
      this.counters.decodeTokens++;
      this.emit(s, out.decode![i]!);
    });
  }

  /** Samples the next token of `s` from its last logits row and ends it on a stop token or at its length. */
  private emit(s: Sequence, row: Float32Array): void {
    if (s.cancelReason || s.finished) return; // cancelled while the step ran: dropped at the next step
    const p = s.params;
    if (p.maxNewTokens === 0) { this.release(s, 'length'); return; }
    const token = sample(row, p, s.rng);
    const stop = p.stopTokens?.includes(token) ?? false;
    s.generated.push(token);
    if (s.generated.length === 1) s.times.firstToken = performance.now();
    const lp = p.logprobs === undefined || p.logprobs === null ? null : logprobsOf(row, token, p.logprobs);
    s.hooks.onToken?.(token, { logprobs: lp, stop });
    if (s.cancelReason) return; // the hook found a stop string: cancel() asked for 'stop'
    if (stop) this.release(s, 'stop');
    else if (s.generated.length >= p.maxNewTokens) this.release(s, 'length'); // submit() kept prompt + maxNewTokens within the model length
  }

  private release(s: Sequence, reason: FinishReason): void {
    if (this.running.get(s.slot) === s) this.running.delete(s.slot);
    this.finish(s, reason);
  }

  private finish(s: Sequence, reason: FinishReason, error?: Error): void {
    if (s.finished) return;
    s.finished = reason;
    s.times.finished = performance.now();
    s.hooks.onFinish?.(reason, error);
  }

  /**
   * A follower rank: attaches the same caches and executes every plan rank 0 broadcasts until it says shutdown.
   * A dead rank 0 surfaces as the collective's error (peer failed or timeout), never a hang.
   */
  static async follow(model: CausalLM, world: Communicator, options: Omit<EngineOptions, 'world'> = {}): Promise<void> {
    const caches = attachKVCaches(model, options.maxBatch ?? DEFAULTS.maxBatch, options.maxModelLen ?? DEFAULTS.maxModelLen);
    const channel = new PlanChannel(world);
    try {
      for (;;) {
        const plan = await channel.receive();
        if (plan.kind === 'shutdown') return;
        if (plan.kind === 'step') await executePlan(model, caches, plan, options, false);
      }
    } finally {
      attachKVCaches(model, 0, 0);
    }
  }
}

/**
 * Runs a plan's forwards (the same on every rank): each prefill alone on its slot, then one decode forward of
 * every decoding row. With `logits`, returns each prefill's logits (all positions when asked, else the last)
 * and each decode row's.
 */
async function executePlan(model: CausalLM, caches: KVCache[], plan: StepPlan, o: EngineOptions, logits: boolean):
  Promise<{ prefill: Float32Array[]; decode: Float32Array[] | null }> {
  const fwd = { farskip: o.farskip, schedule: o.schedule, tracer: o.tracer };
  return withoutGrad(async () => {
    const prefill: Float32Array[] = [];
    for (const p of plan.prefills) {
      for (const c of caches) { c.reset(p.slot); c.select([p.slot]); }
      const T = p.tokens.length;
      const ids = new Tensor(Int32Array.from(p.tokens), [1, T], { dtype: 'i32' });
      const positions = new Tensor(Int32Array.from({ length: T }, (_, i) => i), [1, T], { dtype: 'i32' });
      // only the last position's logits are sampled: the last layer runs for that position alone
      const h = await model.hidden(ids, { ...fwd, positions, outputs: p.allLogits ? 'all' : 'last' });
      if (logits) prefill.push(model.logitsOf(h).data as Float32Array);
    }
    let decode: Float32Array[] | null = null;
    if (plan.decodes.length) {
      const B = plan.decodes.length;
      const slots = plan.decodes.map((d) => d.slot);
      for (const c of caches) c.select(slots);
      const lengths = caches[0] ? slots.map((s) => caches[0]!.lengths[s]!) : slots.map(() => 0);
      const ids = new Tensor(Int32Array.from(plan.decodes, (d) => d.token), [B, 1], { dtype: 'i32' });
      const positions = new Tensor(Int32Array.from(lengths), [B, 1], { dtype: 'i32' });
      const h = await model.hidden(ids, { ...fwd, positions });
      if (logits) {
        const all = model.logitsOf(h).data as Float32Array;
        const V = model.spec.vocabSize;
        decode = slots.map((_, b) => all.subarray(b * V, (b + 1) * V));
      }
    }
    return { prefill, decode };
  });
}
