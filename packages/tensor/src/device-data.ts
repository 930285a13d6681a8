// What `tensor.data` is for a tensor on a GPU: a guard whose element access throws an error that names the device
// and the fix, instead of CPU code silently reading garbage or koffi rejecting an odd argument.
//
// Why a guard object in the `data` field and not a getter: every CPU kernel reads `t.data` in its hot path. A
// prototype getter would be a call in unoptimized code and a branch in optimized code for every CPU tensor; a
// getter defined on device instances only would give them a different hidden class, so every site that sees both
// kinds of tensor turns polymorphic. Here CPU and device tensors share one hidden class (the constructor assigns
// the same fields in the same order: `data`, then `storage`), `t.data` stays a plain field load, and the cost of
// the guard is paid only when something touches a device tensor's elements. The field already holds several maps
// (Float32Array, Uint16Array, Int32Array, Float64Array), so adding the guard's map changes no field representation.
// `length` answers (numel), so shape bookkeeping that only reads `data.length` keeps working.
// Measured (bench of the branch against its base, 2-core VM under load): a loop over a CPU tensor's `data` and
// `new Tensor(...)` cost the same as before (59 ns, ~290 ns); small [64] ops are within the noise (±5 %).
import type { DType } from './dtype.js';
import type { Device } from './device.js';
import { formatShape } from './shape.js';

interface GuardInfo { device: Device; dtype: DType; shape: readonly number[]; numel: number }

/** The error every CPU-only path raises for a device tensor (`what`: what it tried). */
export function deviceDataError(t: GuardInfo, what: string): Error {
  const kind = t.device.slice(0, t.device.indexOf(':'));
  return new Error(`${t.dtype}${formatShape(t.shape)} tensor on ${t.device}: ${what} needs its elements on the CPU, but they ` +
    `live in device memory (this op is not implemented on ${kind} yet). Move it to the CPU with .cpu() / .to('cpu'), ` +
    'or read values with .toArray() / .item()');
}

// Symbols that inspection, promise resolution and JSON probe on any object: answered with undefined so that
// console.log / await / expect(...) on a tensor do not throw.
const passThrough = new Set<PropertyKey>(['then', 'toJSON', 'asymmetricMatch', '$$typeof', 'nodeType', 'constructor']);

export function deviceDataGuard(info: GuardInfo): never {
  const target = Object.create(null) as object;
  return new Proxy(target, {
    get(_t, p) {
      if (p === 'length') return info.numel;
      if (p === Symbol.toStringTag) return 'DeviceData';
      if ((typeof p === 'symbol' && p !== Symbol.iterator) || passThrough.has(p)) return undefined;
      throw deviceDataError(info, `reading data${typeof p === 'string' ? (/^\d+$/.test(p) ? `[${p}]` : `.${p}`) : '[Symbol.iterator]'}`);
    },
    set(_t, p) { throw deviceDataError(info, `writing data[${String(p)}]`); },
    has(_t, p) { return p === 'length'; },
    ownKeys() { return []; },
    getOwnPropertyDescriptor() { return undefined; },
  }) as never;
}
