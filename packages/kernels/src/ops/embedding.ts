// Token embedding lookup: out[..., :] = table[ids[...], :]. Backward scatters rows into a dense gradient.
import { Tensor, recordOp } from '@farskip/tensor';
import { cpuBackend } from '../backend/select.js';
import { arr, describe, empty, requireFloat, requireIndex, withF32 } from './util.js';

/** ids i32 [...], table [vocab, dim] -> [..., dim]. */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  const idx = requireIndex('embedding', 'ids', ids);
  requireFloat('embedding', 'table', table);
  if (table.dtype === 'bf16') return withF32([table], (t) => embedding(ids, t));
  if (table.ndim !== 2) throw new Error(`embedding: table must be [vocab, dim], got ${describe(table)}`);
  const [vocab, dim] = table.shape as [number, number];
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i]!;
    if (v < 0 || v >= vocab) throw new Error(`embedding: token id ${v} at position ${i} is outside the vocabulary [0, ${vocab}); check the tokenizer matches the model`);
  }
  const out = empty([...ids.shape, dim], table.dtype);
  cpuBackend(table.dtype).embeddingFwd(idx.length, dim, idx, arr(table), arr(out));
  return recordOp(out, 'embedding', [table], (g) => {
    const dt = Tensor.zeros(table.shape, { dtype: table.dtype });
    cpuBackend(table.dtype).embeddingBwd(idx.length, dim, idx, arr(g), arr(dt));
    return [dt];
  });
}
