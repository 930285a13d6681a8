#!/usr/bin/env bash
# Real-GPU smoke test of @farskip/collectives' nccl (or rccl) backend: bundles packages/collectives/src/nccl (and
# @farskip/device's sources) with esbuild (so the check does not depend on the packages building), then runs
# nccl_smoke.mjs, which
# runs every collective against a host reference on each GPU (world size 1, and all GPUs when there are >= 2),
# times all-reduce bus bandwidth and prints one JSON document.
#   tooling/device/nccl_smoke.sh            # NCCL + CUDA driver
#   tooling/device/nccl_smoke.sh rccl       # RCCL + HIP
# Exit: 0 all checks passed, 1 a check failed, 2 no GPU / library / toolchain (with the reason).
set -euo pipefail
cd "$(dirname "$0")/../.."
flavor="${1:-nccl}"
die() { echo "nccl_smoke: $*" >&2; printf '{"ok": false, "flavor": "%s", "error": "%s"}\n' "$flavor" "$*"; exit 2; }

command -v node >/dev/null || die "node not found (Node >= 20 required)"
[ -d node_modules/koffi ] || die "node_modules missing: run 'npm ci' at the repository root first"
[ -x node_modules/.bin/esbuild ] || die "esbuild missing from node_modules: run 'npm ci' first"
if [ "$flavor" = nccl ]; then
  command -v nvidia-smi >/dev/null && nvidia-smi -L >&2 || echo "nccl_smoke: nvidia-smi not found; relying on the driver library" >&2
else
  command -v rocm-smi >/dev/null && rocm-smi --showid >&2 || echo "nccl_smoke: rocm-smi not found; relying on the HIP runtime library" >&2
fi

# the bundle lives under node_modules so that `import 'koffi'` resolves from it
out=node_modules/.cache/farskip
mkdir -p "$out"
# @farskip/device (the CUDA driver / HIP bindings) is bundled from its sources too, so no package build is needed
node_modules/.bin/esbuild packages/collectives/src/nccl/index.ts --bundle --platform=node --format=esm \
  --target=node20 --external:koffi --alias:@farskip/device=./packages/device/src/index.ts --log-level=warning --outfile="$out/nccl-smoke.mjs"

FARSKIP_SMOKE_FLAVOR="$flavor" exec node tooling/device/nccl_smoke.mjs "$PWD/$out/nccl-smoke.mjs"
