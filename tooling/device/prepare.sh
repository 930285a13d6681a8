#!/usr/bin/env bash
# Prepares .device/ for tooling/device/check.sh on a GPU machine that has no node_modules and no registry (the
# `device` tool's machines): run HERE, where `npm ci` has run, then carry `.device` to the GPU machine.
#   - builds the CUDA fatbin (tooling/build-cuda.mjs; needs nvcc) and copies it with kernels.json to .device/cuda
#   - bundles tooling/device/check.mjs (op tests, GEMM and bandwidth benchmarks) and the NCCL smoke test with esbuild,
#     our packages from source, koffi external (copied to .device/node_modules/koffi)
#   - with --with-node, packs this machine's node binary (xz) for a GPU machine without Node
# Exit 2 with the reason when something it needs is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
die() { echo "prepare: $*" >&2; exit 2; }
[ -d node_modules/koffi ] || die "node_modules missing: run 'npm ci' at the repository root first"
[ -x node_modules/.bin/esbuild ] || die "esbuild missing from node_modules: run 'npm ci' first"
node tooling/build-cuda.mjs
[ -f native/cuda/build/farskip_cuda.fatbin ] || die "native/cuda/build/farskip_cuda.fatbin was not built (nvcc missing? see the line above)"

rm -rf .device && mkdir -p .device/cuda .device/node_modules
cp native/cuda/build/farskip_cuda.fatbin native/cuda/kernels.json .device/cuda/
cp -r node_modules/koffi .device/node_modules/
mkdir -p .device/node_modules/@koromix && cp -r node_modules/@koromix/koffi-linux-x64 .device/node_modules/@koromix/  # koffi's native module
cp tooling/device/torch_ref.py tooling/device/nccl_smoke.mjs .device/
esb() { node_modules/.bin/esbuild "$@" --bundle --platform=node --format=esm --target=node20 --external:koffi --log-level=warning \
  --alias:@farskip/device=./packages/device/src/index.ts --alias:@farskip/tensor=./packages/tensor/src/index.ts \
  --alias:@farskip/kernels=./packages/kernels/src/index.ts --alias:vitest=./tooling/device/vitest-shim.mjs; }
esb tooling/device/check.mjs --outfile=.device/check.mjs
esb packages/collectives/src/nccl/index.ts --outfile=.device/nccl-lib.mjs
if [ "${1:-}" = --with-node ]; then
  xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > .device/node.xz
fi
du -sh .device
echo "prepare: .device is ready; on the GPU machine run: bash tooling/device/check.sh (carry .device)"
