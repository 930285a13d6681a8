// Where a tensor's storage lives. Only 'cpu' has kernels today; the accelerator forms are reserved so the
// GPU backends (CUDA / HIP) slot in behind the same op registry without changing the type.
export type Device = 'cpu' | `cuda:${number}` | `hip:${number}`;

export function parseDevice(d: string): Device {
  if (d === 'cpu') return 'cpu';
  if (/^(cuda|hip):\d+$/.test(d)) return d as Device;
  throw new Error(`invalid device '${d}': expected 'cpu', 'cuda:N' or 'hip:N'`);
}
