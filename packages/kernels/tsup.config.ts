import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import base from '../../tooling/tsup.base';

// dist/cuda ships the CUDA kernels with the package: the launch manifest always, the fatbin when it was built
// (node tooling/build-cuda.mjs, which needs nvcc); src/backend/cuda finds them there in a published install.
export default {
  ...base,
  async onSuccess() {
    mkdirSync('dist/cuda', { recursive: true });
    copyFileSync('../../native/cuda/kernels.json', 'dist/cuda/kernels.json');
    if (existsSync('../../native/cuda/build/farskip_cuda.fatbin')) copyFileSync('../../native/cuda/build/farskip_cuda.fatbin', 'dist/cuda/farskip_cuda.fatbin');
  },
};
