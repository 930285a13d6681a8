// Where NCCL and RCCL are found. The search itself (override, system loader, pip wheels, install directories,
// an error naming every place tried) is @farskip/device's, shared with the CUDA driver and HIP runtime lookups;
// this file only describes the two collective libraries. nvidia-nccl-cu12 installs
// site-packages/nvidia/nccl/lib/libnccl.so.2; torch's ROCm wheels bundle librccl.so in site-packages/torch/lib.
import { loadLibrary, optionalFunc, type Fn, type LibrarySpec, type LoadedLib } from '@farskip/device';
import { join } from 'node:path';

export type LibKind = 'nccl' | 'rccl';
export { optionalFunc, type Fn };

const rocm = (): string[] => [process.env.ROCM_PATH, '/opt/rocm'].filter((d): d is string => !!d).flatMap((d) => [join(d, 'lib'), join(d, 'lib64')]);
const conda = (): string[] => (process.env.CONDA_PREFIX ? [join(process.env.CONDA_PREFIX, 'lib')] : []);

const SPECS: Record<LibKind, LibrarySpec> = {
  nccl: {
    env: 'FARSKIP_NCCL_LIB', label: 'NCCL', sonames: ['libnccl.so.2', 'libnccl.so'],
    wheel: ['nvidia/nccl/lib/libnccl.so.2'],
    dirs: () => [...conda(), '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/local/cuda/lib64', '/usr/lib64'],
    fix: 'install NCCL (apt install libnccl2, or pip install nvidia-nccl-cu12)',
  },
  rccl: {
    env: 'FARSKIP_RCCL_LIB', label: 'RCCL', sonames: ['librccl.so.1', 'librccl.so'],
    wheel: ['torch/lib/librccl.so', 'torch/lib/librccl.so.1'],
    dirs: () => [...rocm(), ...conda()],
    fix: 'install RCCL (ROCm: apt install rccl)',
  },
};

/** Loads NCCL or RCCL or throws an Error naming every place searched and the fix (set FARSKIP_NCCL_LIB / _RCCL_LIB). */
export function loadLib(kind: LibKind): LoadedLib {
  return loadLibrary(SPECS[kind]);
}
