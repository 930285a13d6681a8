// Device dispatch helpers for the ops: whether the operands share one device, and the single error for an op's variant
// that has no GPU implementation yet. Each op tests `t.storage !== null` (one field load; null on the CPU) before its
// unchanged CPU path; a device tensor reaching a CPU kernel anyway fails in util.ts's arr().
import type { DeviceContext, Tensor } from '@farskip/tensor';

/** The one device context all `operands` share; throws naming the operands when they are on different devices. */
export function sameDevice(op: string, operands: Record<string, Tensor | null | undefined>): DeviceContext {
  let first: [string, Tensor] | null = null;
  for (const name in operands) {
    const t = operands[name];
    if (!t) continue;
    if (first === null) { first = [name, t]; continue; }
    if (t.device !== first[1].device) {
      throw new Error(`${op}: ${first[0]} is on ${first[1].device} but ${name} is on ${t.device}; ` +
        `move one with .to('${first[1].device === 'cpu' ? t.device : first[1].device}')`);
    }
  }
  if (!first || first[1].storage === null) throw new Error(`${op}: internal: no operand on a GPU`);
  return first[1].storage.ctx;
}

/** The error for `op` (or one of its variants, `detail`) on a device tensor that has no GPU implementation yet. */
export function notOnDevice(op: string, t: Tensor, detail = ''): Error {
  const kind = t.device.slice(0, t.device.indexOf(':'));
  return new Error(`${op}${detail ? ` (${detail})` : ''}: not implemented on ${kind} yet: move the inputs to the CPU with .cpu() / ` +
    `.to('cpu') (input ${t.dtype}[${t.shape.join(', ')}] is on ${t.device})`);
}

/** The kernel name `fs_<base>_<dtype>` for a float dtype the CUDA kernels have (f32, bf16). */
export function kernelName(op: string, base: string, t: Tensor): string {
  if (t.dtype !== 'f32' && t.dtype !== 'bf16') throw notOnDevice(op, t, `${t.dtype}: the CUDA kernels take f32 and bf16`);
  return `fs_${base}_${t.dtype}`;
}
