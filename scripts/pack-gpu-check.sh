#!/usr/bin/env bash
# Makes gpu-carry/ (ignored by git) for scripts/gpu-check.sh on a GPU machine: the check binary
# of `scripts/build-cuda.sh --check-binary`, xz-compressed, and the coco128 photos. Says how much
# travels with the repository's own files (a run may carry at most 64 MiB in all).
#
#   scripts/pack-gpu-check.sh [COCO128_DIR]      (default ../shared/data/coco128)
set -euo pipefail
cd "$(dirname "$0")/.."
coco=${1:-../shared/data/coco128}
[ -x dist/cuda/gpu_check ] || { echo "pack-gpu-check.sh: no dist/cuda/gpu_check; run scripts/build-cuda.sh --check-binary first" >&2; exit 2; }
[ -d "$coco/val2017" ] || { echo "pack-gpu-check.sh: no $coco/val2017" >&2; exit 2; }
rm -rf gpu-carry
mkdir -p gpu-carry/coco128
xz -9e -T0 -c dist/cuda/gpu_check >gpu-carry/gpu_check.xz
# Hard links where the file system allows (nothing is copied), copies elsewhere.
cp -al "$coco/val2017" gpu-carry/coco128/ 2>/dev/null || cp -a "$coco/val2017" gpu-carry/coco128/
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carried=$(du -sb gpu-carry | cut -f1)
total=$((tracked + carried))
printf 'gpu-carry: %s MiB (binary %s MiB xz); the repository: %s MiB; in all %s MiB of 64\n' \
    $((carried >> 20)) $(( $(stat -c %s gpu-carry/gpu_check.xz) >> 20 )) $((tracked >> 20)) $((total >> 20))
[ "$total" -le $((64 << 20)) ] || { echo "pack-gpu-check.sh: over 64 MiB" >&2; exit 1; }
