// Rotary position embedding, rotate-half convention (Hugging Face Llama): the first rotDim dims of every
// head rotate by pos * invFreq[i], pairing dim i with dim i + rotDim/2; the rest pass through.
import { Tensor, recordOp } from '@farskip/tensor';
import { cpuBackend } from '../backend/select.js';
import { arr, describe, empty, requireFloat, requireIndex, withF32 } from './util.js';

export interface RopeOptions {
  /** Base of the geometric frequency ladder (HF rope_theta). Default 10000. */
  theta?: number;
  /** Rotated dims per head (even, <= head_dim; partial rotary). Default head_dim. */
  rotaryDim?: number;
  /** Explicit inverse frequencies [rotaryDim/2] (scaled RoPE variants); overrides theta. */
  invFreq?: Float32Array | Float64Array;
}

/** invFreq[i] = theta^(-2i / rotaryDim), computed in f64 as HF does before casting. */
export function ropeInvFreq(rotaryDim: number, theta = 10000): Float64Array {
  const h = rotaryDim / 2;
  return Float64Array.from({ length: h }, (_, i) => 1 / theta ** ((2 * i) / rotaryDim));
}

/** x [batch, seq, heads, head_dim]; positions i32 [seq] (shared by the batch) or [batch, seq]. */
export function rope(x: Tensor, positions: Tensor, options: RopeOptions = {}): Tensor {
  requireFloat('rope', 'x', x);
  if (x.dtype === 'bf16') return withF32([x], (t) => rope(t, positions, options));
  if (x.ndim !== 4) throw new Error(`rope: x must be [batch, seq, heads, head_dim], got ${describe(x)}`);
  const [B, T, H, D] = x.shape as [number, number, number, number];
  const rot = options.rotaryDim ?? D;
  if (rot % 2 !== 0 || rot > D || rot < 0) throw new Error(`rope: rotaryDim ${rot} must be even and <= head_dim ${D}`);
  let pos = requireIndex('rope', 'positions', positions);
  if (positions.numel === T && B > 1) {
    const full = new Int32Array(B * T);
    for (let b = 0; b < B; b++) full.set(pos, b * T);
    pos = full;
  } else if (positions.numel !== B * T) {
    throw new Error(`rope: positions ${describe(positions)} must be [${T}] or [${B}, ${T}] for x ${describe(x)}`);
  }
  const freqSrc = options.invFreq ?? ropeInvFreq(rot, options.theta ?? 10000);
  if (freqSrc.length !== rot / 2) throw new Error(`rope: invFreq has ${freqSrc.length} entries, expected rotaryDim/2 = ${rot / 2}`);
  const invFreq = x.dtype === 'f64' ? Float64Array.from(freqSrc) : Float32Array.from(freqSrc);
  const y = empty(x.shape, x.dtype);
  cpuBackend(x.dtype).rope(B, T, H, D, rot, pos, invFreq, false, arr(x), arr(y));
  return recordOp(y, 'rope', [x], (g) => {
    const dx = empty(x.shape, x.dtype);
    cpuBackend(x.dtype).rope(B, T, H, D, rot, pos, invFreq, true, arr(g), arr(dx));
    return [dx];
  });
}
