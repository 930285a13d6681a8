// Which residual stream each sub-block of each layer reads (DESIGN §2).
//
// A converted ("FarSkip") layer k carries the full stream x and the routed-free stream x~ = x − t_{k−1}:
//   full        attention reads x~ (does not wait for the previous combine); the MoE reads the pre-attention
//               full stream LN2(x) (its dispatch overlaps attention)
//   attn-only   only attention reads x~; the MoE reads the post-attention stream as in the original
//   mlp-only    only the MoE reads the pre-attention stream; attention reads the full x
//   original    the FarSkip code path computing the unmodified model (debugging): nothing is rewired
// For every layer the outputs are x~' = x + a + s and x' = x~' + t (an unconverted layer has the same outputs
// with its MoE reading h = x + a). x~ of layer k is x − t_{k−1} only when layer k−1 was converted; after an
// unconverted layer (or at the first layer) x~ = x. Dense layers (no routed experts) have t = 0, so both output
// streams are equal; converted, they are parallel attention ‖ MLP blocks.

export type FarSkipMode = 'full' | 'attn-only' | 'mlp-only' | 'original';

export interface FarSkipOptions {
  /** default 'full' */
  mode?: FarSkipMode;
  /** convert only layers [start, end) (default: all) */
  layers?: [number, number];
  /** convert only the last fraction of layers, in (0, 1] (e.g. 0.5: the last half, rounded up) */
  lastFraction?: number;
}

export interface LayerConnectivity {
  /** this layer's outputs define a routed-free stream the next layer may read */
  converted: boolean;
  /** attention input is LN1(x~) rather than LN1(x) */
  attnReadsRoutedFree: boolean;
  /** the MLP/MoE input is LN2(x) (pre-attention) rather than LN2(x + a) */
  mlpReadsPreAttention: boolean;
}

/** The connectivity of each of `numLayers` layers. */
export function layerPlan(numLayers: number, options: FarSkipOptions | null = {}): LayerConnectivity[] {
  if (!Number.isInteger(numLayers) || numLayers < 0) throw new Error(`layerPlan: numLayers ${numLayers} must be a non-negative integer`);
  const none = { converted: false, attnReadsRoutedFree: false, mlpReadsPreAttention: false };
  if (options === null) return Array.from({ length: numLayers }, () => ({ ...none }));
  const mode = options.mode ?? 'full';
  if (!['full', 'attn-only', 'mlp-only', 'original'].includes(mode)) {
    throw new Error(`FarSkip mode '${mode}' is not one of full, attn-only, mlp-only, original`);
  }
  if (options.layers && options.lastFraction !== undefined) {
    throw new Error('FarSkip options: give either layers [start, end) or lastFraction, not both');
  }
  let [start, end] = options.layers ?? [0, numLayers];
  if (options.lastFraction !== undefined) {
    const f = options.lastFraction;
    if (!(f > 0 && f <= 1)) throw new Error(`FarSkip lastFraction ${f} must be in (0, 1]`);
    start = numLayers - Math.ceil(f * numLayers);
    end = numLayers;
  }
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > numLayers || start > end) {
    throw new Error(`FarSkip layers [${start}, ${end}) must satisfy 0 <= start <= end <= ${numLayers}`);
  }
  return Array.from({ length: numLayers }, (_, k) => {
    if (k < start || k >= end || mode === 'original') return { ...none };
    return {
      converted: true,
      attnReadsRoutedFree: mode === 'full' || mode === 'attn-only',
      mlpReadsPreAttention: mode === 'full' || mode === 'mlp-only',
    };
  });
}
