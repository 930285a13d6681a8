// Type-level contract of the FarSkip block as a downstream package sees it (@farskip/layers' built
// dist/index.d.ts through its `exports`): the AttentionLike / MoELike / MlpLike modules a user plugs into a block
// (BlockModules), the phased MoE handles the schedule drives, the stack that runs the blocks, FarSkip
// connectivity, and the collectives helpers a custom tensor-parallel module calls. Checked by `tsc` through
// vitest's typecheck mode (vitest project 'types'); nothing here runs. Every `@ts-expect-error` marks a line that
// must stay an error: if the public types loosen so that it compiles, the check fails.
import { assertType, describe, expectTypeOf, test } from 'vitest';
import type { Communicator, HostBuffer, Work } from '@farskip/collectives';
import { Attention, FarSkipStack, MoE, ParallelContext, SwiGluMlp, allReduceTensor, buildStack, copyToGroup, isMoE, layerPlan, solo, standardForward } from '@farskip/layers';
import type {
  AttentionLike, AttentionState, BlockModules, CombinedTokens, CommEnv, DispatchedTokens, FarSkipMode, FarSkipOptions, LayerConnectivity, MlpLike,
  MoEForm, MoELike, Pending, RoutedTokens, Schedule, StackRunOptions, Tracer,
} from '@farskip/layers';
import type { Tensor } from '@farskip/tensor';

declare const t: Tensor;
declare const env: CommEnv;
declare const group: Communicator;

/** A user's own attention: no tensor parallelism, state carried through partA -> partB. */
class MyAttention implements AttentionLike {
  readonly reduceGroup: Communicator = solo();
  constructor(private readonly w: Tensor) {}
  partA(xNorm: Tensor, _positions: Tensor, _env: CommEnv): AttentionState { return { q: xNorm, k: xNorm, v: xNorm }; }
  partB(state: AttentionState): Tensor { return state.q; }
  parameters(): [string, Tensor][] { return [['w', this.w]]; }
}

/** A user's own MoE: every phase a plain async step, no shared experts. */
class MyMoE implements MoELike {
  readonly shared = null;
  begin(u: Tensor, _env: CommEnv): RoutedTokens {
    return { dispatch: async () => ({ experts: async () => ({ finish: async () => u }) }) };
  }
  parameters(): [string, Tensor][] { return []; }
  expertParameters(): [string, Tensor][] { return []; }
}

/** A user's own dense MLP. */
const myMlp: MlpLike = { reduceGroup: solo(), forward: (x) => x, parameters: () => [] };

describe('AttentionLike: the attention a block calls', () => {
  test('partA / partB / reduceGroup / lastQueries / parameters signatures', () => {
    expectTypeOf<AttentionLike['partA']>().toEqualTypeOf<(xNorm: Tensor, positions: Tensor, env: CommEnv) => AttentionState>();
    expectTypeOf<AttentionLike['partB']>().toEqualTypeOf<(state: AttentionState) => Tensor>();
    expectTypeOf<AttentionLike['reduceGroup']>().toEqualTypeOf<Communicator>();
    expectTypeOf<AttentionLike['lastQueries']>().toEqualTypeOf<((state: AttentionState) => AttentionState) | undefined>();
    expectTypeOf<AttentionLike['parameters']>().returns.toEqualTypeOf<[string, Tensor][]>();
    expectTypeOf<AttentionState>().toEqualTypeOf<{ q: Tensor; k: Tensor; v: Tensor }>();
    const a = {} as AttentionLike;
    // @ts-expect-error lastQueries is optional: check it before calling
    a.lastQueries(a.partA(t, t, env));
    // @ts-expect-error reduceGroup is readonly
    a.reduceGroup = group;
  });

  test('user-written attention (class and object literal) satisfies AttentionLike; the shipped Attention does', () => {
    expectTypeOf<MyAttention>().toExtend<AttentionLike>();
    expectTypeOf<Attention>().toExtend<AttentionLike>();
    assertType<AttentionLike>({
      reduceGroup: group,
      partA: (x: Tensor) => ({ q: x, k: x, v: x }), // may ignore positions and env
      partB: (s: AttentionState) => s.q,
      lastQueries: (s: AttentionState) => s,
      parameters: () => [],
    });
    // returning a narrower tensor type is fine
    assertType<AttentionLike>({ reduceGroup: group, partA: () => ({ q: t, k: t, v: t }), partB: () => t as Tensor<'f32'>, parameters: () => [] });
  });

  test('wrongly shaped attention objects are rejected', () => {
    const ok = new MyAttention(t);
    // @ts-expect-error partA returns the state (q, k, v), not a tensor
    assertType<AttentionLike>({ ...pick(ok), partA: (x: Tensor) => x });
    // @ts-expect-error the state needs q, k and v
    assertType<AttentionLike>({ ...pick(ok), partA: (x: Tensor) => ({ q: x, k: x }) });
    // @ts-expect-error partB returns the [B, T, hidden] tensor, not a state
    assertType<AttentionLike>({ ...pick(ok), partB: (s: AttentionState) => s });
    // @ts-expect-error partA and partB are synchronous (the schedule interleaves them with in-flight collectives)
    assertType<AttentionLike>({ ...pick(ok), partB: async (s: AttentionState) => s.q });
    // @ts-expect-error partA's first argument is a Tensor
    assertType<AttentionLike>({ ...pick(ok), partA: (x: string) => ({ q: t, k: t, v: t, x }) });
    // @ts-expect-error reduceGroup is required (solo() when the output is complete)
    assertType<AttentionLike>({ partA: ok.partA, partB: ok.partB, parameters: ok.parameters });
    // @ts-expect-error reduceGroup is a Communicator, not a size
    assertType<AttentionLike>({ ...pick(ok), reduceGroup: 1 });
    // @ts-expect-error parameters are [name, tensor] pairs
    assertType<AttentionLike>({ ...pick(ok), parameters: () => [t] });
    // @ts-expect-error lastQueries maps a state to a state
    assertType<AttentionLike>({ ...pick(ok), lastQueries: (s: AttentionState) => s.q });
    // @ts-expect-error partB is missing
    class NoPartB implements AttentionLike {
      readonly reduceGroup = solo();
      partA(x: Tensor): AttentionState { return { q: x, k: x, v: x }; }
      parameters(): [string, Tensor][] { return []; }
    }
    void NoPartB;
  });
});

describe('MoELike: the phased MoE a block drives', () => {
  test('begin -> dispatch -> experts -> finish: one synchronous step, then awaited phases ending in the routed output', () => {
    expectTypeOf<MoELike['begin']>().toEqualTypeOf<(u: Tensor, env: CommEnv) => RoutedTokens>();
    expectTypeOf<RoutedTokens['dispatch']>().toEqualTypeOf<() => Promise<DispatchedTokens>>();
    expectTypeOf<DispatchedTokens['experts']>().toEqualTypeOf<() => Promise<CombinedTokens>>();
    expectTypeOf<CombinedTokens['finish']>().toEqualTypeOf<() => Promise<Tensor>>();
    expectTypeOf<MoELike['parameters']>().returns.toEqualTypeOf<[string, Tensor][]>();
    expectTypeOf<MoELike['expertParameters']>().returns.toEqualTypeOf<[string, Tensor][]>();
    // shared experts are any dense MLP (the shipped SwiGluMlp or the user's own), or none
    expectTypeOf<MoELike['shared']>().toEqualTypeOf<MlpLike | null>();
  });

  test('the phases chain as the stack calls them', async () => {
    const moe = new MyMoE() as MoELike;
    const routed = moe.begin(t, env);
    const dispatched = await routed.dispatch();
    const combined = await dispatched.experts();
    expectTypeOf(await combined.finish()).toEqualTypeOf<Tensor>();
    // @ts-expect-error begin is synchronous: its result is not a promise
    await moe.begin(t, env).then(() => {});
    // @ts-expect-error dispatch() must be awaited before experts()
    moe.begin(t, env).dispatch().experts();
  });

  test('user-written MoE (class and object literal) satisfies MoELike; the shipped MoE does', () => {
    expectTypeOf<MyMoE>().toExtend<MoELike>();
    expectTypeOf<MoE>().toExtend<MoELike>();
    expectTypeOf(new MoE({} as never, {} as never).forward).returns.toEqualTypeOf<Promise<Tensor>>();
    const combined: CombinedTokens = { finish: () => Promise.resolve(t) };
    assertType<MoELike>({
      shared: null,
      begin: () => ({ dispatch: async () => ({ experts: async () => combined }) }),
      parameters: () => [],
      expertParameters: () => [],
    });
    assertType<MoELike>({ ...pickMoE(new MyMoE()), shared: new SwiGluMlp(4, {} as never) });
    // a user's own shared expert: any MlpLike
    assertType<MoELike>({ ...pickMoE(new MyMoE()), shared: myMlp });
    // @ts-expect-error the shared expert must be an MlpLike (forward, reduceGroup, parameters)
    assertType<MoELike>({ ...pickMoE(new MyMoE()), shared: { forward: (x: Tensor) => x } });
  });

  test('wrongly shaped MoE objects are rejected', () => {
    const ok = pickMoE(new MyMoE());
    const routed: RoutedTokens = ok.begin(t, env);
    // @ts-expect-error begin returns the RoutedTokens handle at once, not a promise of it
    assertType<MoELike>({ ...ok, begin: async () => routed });
    // @ts-expect-error begin does not return the routed output directly
    assertType<MoELike>({ ...ok, begin: (u: Tensor) => u });
    // @ts-expect-error dispatch() is asynchronous
    assertType<MoELike>({ ...ok, begin: () => ({ dispatch: () => ({ experts: async () => ({ finish: async () => t }) }) }) });
    // @ts-expect-error finish() resolves to the routed output; a bare tensor is not a promise
    assertType<MoELike>({ ...ok, begin: () => ({ dispatch: async () => ({ experts: async () => ({ finish: () => t }) }) }) });
    // @ts-expect-error expertParameters is required (the stack averages their gradients over dp only)
    assertType<MoELike>({ shared: null, begin: ok.begin, parameters: ok.parameters });
    // @ts-expect-error shared is required (null when the MoE has no shared experts)
    assertType<MoELike>({ begin: ok.begin, parameters: ok.parameters, expertParameters: ok.expertParameters });
    // @ts-expect-error begin's first argument is the [tokens, hidden] Tensor
    assertType<MoELike>({ ...ok, begin: (u: number[]) => ({ dispatch: async () => ({ experts: async () => ({ finish: async () => t, u }) }) }) });
  });
});

describe('MlpLike and BlockModules', () => {
  test('MlpLike: forward is synchronous, partial over reduceGroup', () => {
    expectTypeOf<MlpLike['forward']>().toEqualTypeOf<(x: Tensor, env: CommEnv) => Tensor>();
    expectTypeOf<MlpLike['reduceGroup']>().toEqualTypeOf<Communicator>();
    expectTypeOf<SwiGluMlp>().toExtend<MlpLike>();
    // @ts-expect-error forward returns a Tensor, not a promise
    assertType<MlpLike>({ reduceGroup: group, forward: async (x: Tensor) => x, parameters: () => [] });
  });

  test('a block takes user modules: attention plus an MoE or a dense MLP', () => {
    expectTypeOf<BlockModules>().toEqualTypeOf<{
      inputNorm: Tensor;
      postAttentionNorm: Tensor;
      attention: AttentionLike;
      mlp: MoELike | MlpLike;
      eps?: number;
    }>();
    const moeBlock: BlockModules = { inputNorm: t, postAttentionNorm: t, attention: new MyAttention(t), mlp: new MyMoE() };
    const denseBlock: BlockModules = { inputNorm: t, postAttentionNorm: t, attention: new MyAttention(t), mlp: myMlp, eps: 1e-5 };
    assertType<BlockModules[]>([moeBlock, denseBlock]);
    // @ts-expect-error the norms are required
    assertType<BlockModules>({ attention: new MyAttention(t), mlp: myMlp });
    // @ts-expect-error mlp must be an MoELike or an MlpLike
    assertType<BlockModules>({ inputNorm: t, postAttentionNorm: t, attention: new MyAttention(t), mlp: { forward: (x: Tensor) => x } });
    // @ts-expect-error attention must be an AttentionLike (a bare function is not)
    assertType<BlockModules>({ inputNorm: t, postAttentionNorm: t, attention: (x: Tensor) => x, mlp: myMlp });
  });

  test('isMoE narrows the block mlp', () => {
    const m = {} as MoELike | MlpLike;
    if (isMoE(m)) expectTypeOf(m).toEqualTypeOf<MoELike>();
    else expectTypeOf(m).toEqualTypeOf<MlpLike>();
  });
});

describe('FarSkipStack and connectivity', () => {
  test('FarSkipMode is exactly the four modes; options and plan', () => {
    expectTypeOf<FarSkipMode>().toEqualTypeOf<'full' | 'attn-only' | 'mlp-only' | 'original'>();
    // @ts-expect-error 'none' is not a mode (pass farskip: null for the original model)
    assertType<FarSkipMode>('none');
    expectTypeOf<FarSkipOptions>().toEqualTypeOf<{ mode?: FarSkipMode; layers?: [number, number]; lastFraction?: number }>();
    expectTypeOf(layerPlan).parameters.toEqualTypeOf<[numLayers: number, options?: FarSkipOptions | null]>();
    expectTypeOf(layerPlan).returns.toEqualTypeOf<LayerConnectivity[]>();
    expectTypeOf<LayerConnectivity>().toEqualTypeOf<{ converted: boolean; attnReadsRoutedFree: boolean; mlpReadsPreAttention: boolean }>();
    // @ts-expect-error layers is a [start, end) pair
    layerPlan(4, { layers: [1] });
  });

  test('the stack runs user blocks; forward options', () => {
    expectTypeOf(FarSkipStack).constructorParameters.toEqualTypeOf<[blocks: BlockModules[], finalNorm: Tensor, eps?: number]>();
    const stack = new FarSkipStack([{ inputNorm: t, postAttentionNorm: t, attention: new MyAttention(t), mlp: new MyMoE() }], t);
    expectTypeOf(stack.forward).parameters.toEqualTypeOf<[x: Tensor, positions: Tensor, options?: StackRunOptions]>();
    expectTypeOf(stack.forward(t, t)).toEqualTypeOf<Promise<Tensor>>();
    expectTypeOf(stack.blocks).toEqualTypeOf<BlockModules[]>();
    expectTypeOf(stack.parameters()).toEqualTypeOf<[string, Tensor][]>();
    expectTypeOf(stack.expertParameters()).toEqualTypeOf<Set<Tensor>>();
    expectTypeOf<StackRunOptions>().toEqualTypeOf<{
      schedule?: Schedule;
      tracer?: Tracer;
      farskip?: FarSkipOptions | null;
      form?: 'all-to-all' | 'all-reduce';
      outputs?: 'all' | 'last';
    }>();
    expectTypeOf<NonNullable<StackRunOptions['form']>>().toEqualTypeOf<MoEForm>();
    expectTypeOf<Schedule>().toEqualTypeOf<'reference' | 'overlapped'>();
    void stack.forward(t, t, { schedule: 'reference', farskip: { mode: 'attn-only', lastFraction: 0.5 }, outputs: 'last' });
    void stack.forward(t, t, { farskip: null, form: 'all-reduce' });
    // @ts-expect-error unknown schedule
    void stack.forward(t, t, { schedule: 'eager' });
    // @ts-expect-error farskip takes options, not a bare mode
    void stack.forward(t, t, { farskip: 'full' });
    // @ts-expect-error a block needs an attention module
    void new FarSkipStack([{ inputNorm: t, postAttentionNorm: t, mlp: myMlp }], t);
    expectTypeOf(standardForward).parameters.toEqualTypeOf<[stack: FarSkipStack, x: Tensor, positions: Tensor, tracer?: Tracer]>();
    expectTypeOf(standardForward).returns.toEqualTypeOf<Promise<Tensor>>();
    expectTypeOf(buildStack).returns.toEqualTypeOf<FarSkipStack>();
    expectTypeOf(buildStack).parameter(2).toEqualTypeOf<ParallelContext>();
  });
});

describe('helpers a custom (tensor-parallel) module calls', () => {
  test('CommEnv, Pending and the differentiable collectives', async () => {
    expectTypeOf<CommEnv>().toEqualTypeOf<{ schedule: Schedule; tracer?: Tracer; scope?: string }>();
    expectTypeOf<Pending<Tensor>>().toEqualTypeOf<{ wait(): Promise<Tensor> }>();
    const p = allReduceTensor(t, group, env);
    expectTypeOf(p).toEqualTypeOf<Pending<Tensor>>();
    expectTypeOf(await p.wait()).toEqualTypeOf<Tensor>();
    expectTypeOf(copyToGroup(t, group, env, 'mine.copyToTP')).toEqualTypeOf<Tensor>();
    expectTypeOf(solo()).toEqualTypeOf<Communicator>();
    expectTypeOf(ParallelContext.single().tp).toEqualTypeOf<Communicator>();
    // a tracer, when present, wraps compute spans and keeps the result type
    expectTypeOf(env.tracer!.compute('mine', () => t)).toEqualTypeOf<Tensor>();
    // @ts-expect-error allReduceTensor returns a Pending, not the tensor: wait() for it
    assertType<Tensor>(allReduceTensor(t, group, env));
  });

  test("a tensor's host data is a collectives HostBuffer (the storage conventions agree)", () => {
    expectTypeOf<Tensor['data']>().toExtend<HostBuffer>();
    expectTypeOf(group.allReduce(t.data, 'sum')).toEqualTypeOf<Work>();
  });
});

/** The members of an AttentionLike as a plain object (class methods do not survive an object spread). */
function pick(a: AttentionLike) {
  return { reduceGroup: a.reduceGroup, partA: a.partA, partB: a.partB, parameters: a.parameters };
}

function pickMoE(m: MoELike) {
  return { shared: m.shared, begin: m.begin, parameters: m.parameters, expertParameters: m.expertParameters };
}
