// Where a tensor's storage lives: host memory ('cpu') or a GPU's memory ('cuda:N' through the CUDA driver, 'hip:N'
// through HIP; see device-context.ts). @farskip/kernels implements the first GPU ops for cuda devices.
export type Device = 'cpu' | `cuda:${number}` | `hip:${number}`;

export function parseDevice(d: string): Device {
  if (d === 'cpu') return 'cpu';
  if (/^(cuda|hip):\d+$/.test(d)) return d as Device;
  throw new Error(`invalid device '${d}': expected 'cpu', 'cuda:N' or 'hip:N'`);
}
