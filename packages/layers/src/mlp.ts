// SwiGLU feed-forward (dense FFN layers and shared experts): y = down(silu(gate(x)) * up(x)).
// Tensor parallel over `reduceGroup` as Megatron: gate/up column-parallel (each rank a slice of the intermediate
// dim), down row-parallel — the output is the rank's partial sum, reduced by the caller (so the inference
// schedule can fuse it with attention's partial sum).
import type { Communicator } from '@farskip/collectives';
import { linear, mul, sigmoid, swiglu } from '@farskip/kernels';
import type { Tensor } from '@farskip/tensor';
import { expectShape } from './attention.js';
import { leaf, shardLeaf } from './shard.js';
import { copyToGroup } from './comm.js';
import type { CommEnv } from './comm.js';
import { ParallelContext, solo } from './context.js';

/** Full weights, nn.Linear layout. */
export interface MlpWeights {
  /** [intermediate, hidden] */
  gate: Tensor;
  /** [intermediate, hidden] */
  up: Tensor;
  /** [hidden, intermediate] */
  down: Tensor;
  /** optional scalar gate [1, hidden]: y *= sigmoid(x · gateW) (Qwen2-MoE's shared_expert_gate) */
  outputGate?: Tensor;
}

export interface MlpLike {
  /** x [..., hidden] -> [..., hidden], partial over reduceGroup */
  forward(x: Tensor, env: CommEnv): Tensor;
  readonly reduceGroup: Communicator;
  parameters(): [string, Tensor][];
}

export class SwiGluMlp implements MlpLike {
  readonly wGate: Tensor;
  readonly wUp: Tensor;
  readonly wDown: Tensor;
  readonly wOutGate: Tensor | null;

  constructor(readonly hidden: number, weights: MlpWeights, readonly reduceGroup: Communicator = solo()) {
    const inter = weights.gate.shape[0]!;
    expectShape('gate', weights.gate, [inter, hidden]);
    expectShape('up', weights.up, [inter, hidden]);
    expectShape('down', weights.down, [hidden, inter]);
    if (weights.outputGate) expectShape('outputGate', weights.outputGate, [1, hidden]);
    const [c0, c1] = ParallelContext.shard(inter, reduceGroup, 'SwiGluMlp intermediate size');
    this.wGate = shardLeaf(weights.gate, 0, c0, c1, reduceGroup);
    this.wUp = shardLeaf(weights.up, 0, c0, c1, reduceGroup);
    this.wDown = shardLeaf(weights.down, 1, c0, c1, reduceGroup);
    // the output gate multiplies the reduced output; applied on every rank's partial it distributes over the sum
    this.wOutGate = weights.outputGate ? leaf(weights.outputGate) : null;
  }

  forward(x: Tensor, env: CommEnv): Tensor {
    const xin = copyToGroup(x, this.reduceGroup, env, 'mlp.copyToTP');
    let y = linear(swiglu(linear(xin, this.wGate), linear(xin, this.wUp)), this.wDown);
    if (this.wOutGate) {
      // the gate multiplies this rank's partial output, so the gate weight's gradient is partial too: completed
      // over the group in backward
      const g = this.reduceGroup.size > 1 ? copyToGroup(this.wOutGate, this.reduceGroup, env, 'mlp.outGate.copyToTP') : this.wOutGate;
      y = mul(y, sigmoid(linear(x, g)));
    }
    return y;
  }

  parameters(): [string, Tensor][] {
    const p: [string, Tensor][] = [['gate_proj.weight', this.wGate], ['up_proj.weight', this.wUp], ['down_proj.weight', this.wDown]];
    if (this.wOutGate) p.push(['output_gate.weight', this.wOutGate]);
    return p;
  }
}
