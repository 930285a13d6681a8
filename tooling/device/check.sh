#!/usr/bin/env bash
# The GPU check of issue 9 on a machine with one (or more) CUDA GPUs: the CUDA op tests against the plain-TS
# reference, GEMM TFLOP/s (ours through cuBLAS, our grouped expert GEMM) and memory-bound kernel bandwidth beside
# PyTorch's on the same shapes, and NCCL with one rank (and all GPUs when there are several). Writes summary.md,
# summary.json and nccl.json to $OUT (default tooling/device/out) and prints the summary.
#   bash tooling/device/prepare.sh [--with-node]   # here, with node_modules and nvcc: builds and bundles .device/
#   bash tooling/device/check.sh                   # there (device tool: carry ".device")
# Without .device it prepares it first when it can (node_modules present). Exit 0 all passed, 1 a check failed,
# 2 no GPU / nothing to run with (the reason is printed; CI never has a GPU and never runs this).
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-tooling/device/out}"
mkdir -p "$out"
skip() { echo "check: skipped — $*" | tee "$out/summary.md" >&2; exit 2; }

if ! command -v node >/dev/null; then
  [ -f .device/node.xz ] || skip "no node on this machine and no .device/node.xz (run prepare.sh --with-node and carry .device)"
  xz -dc .device/node.xz > /tmp/farskip-node && chmod +x /tmp/farskip-node && mkdir -p /tmp/farskip-bin && ln -sf /tmp/farskip-node /tmp/farskip-bin/node
  export PATH="/tmp/farskip-bin:$PATH"
fi
if [ ! -f .device/check.mjs ]; then
  [ -d node_modules ] || skip ".device/ missing: run tooling/device/prepare.sh where node_modules exists and carry .device"
  bash tooling/device/prepare.sh || skip "prepare.sh failed"
fi
if command -v nvidia-smi >/dev/null; then nvidia-smi -L >&2 || skip "nvidia-smi sees no GPU"; else echo "check: nvidia-smi not found; asking the driver library" >&2; fi

node .device/check.mjs
ops=$?
[ $ops -eq 2 ] && { cat "$out/summary.md"; exit 2; }
FARSKIP_SMOKE_FLAVOR=nccl node .device/nccl_smoke.mjs "$PWD/.device/nccl-lib.mjs" > "$out/nccl.json"
nccl=$?
{ echo; echo "NCCL smoke (every collective on device buffers against a host reference; exit $nccl):"; echo; echo '```json'; cat "$out/nccl.json"; echo '```'; } >> "$out/summary.md"
cat "$out/summary.md"
[ $ops -eq 0 ] && [ $nccl -eq 0 ] && exit 0
exit 1
