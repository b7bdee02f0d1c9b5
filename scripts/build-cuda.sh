#!/usr/bin/env bash
# Builds imgsim with CUDA on a machine without a GPU, and writes stripped binaries to dist/cuda/.
#
#   scripts/build-cuda.sh [COMPUTE_CAP] [--check-binary]
#
# COMPUTE_CAP  the GPUs the kernels are compiled for (candle-kernels' CUDA_COMPUTE_CAP):
#              80 (default): one build for Ampere, Ada and Hopper (A100, RTX 30xx/40xx, L4,
#              H100, H200): candle's kernels are PTX for compute capability 8.0, which the
#              driver compiles for the GPU it finds at their first use (seconds, then cached);
#              90: Hopper only (sm_90a); 89: Ada and Hopper.
# --check-binary  also build dist/cuda/gpu_check: the embedding pipeline alone (no LanceDB,
#              no system image libraries), small enough to carry to a GPU machine for
#              scripts/gpu-check.sh.
#
# Needs: Rust, python3 with pip; the system packages of every build come from
# scripts/install-build-deps.sh, which it runs first. The CUDA 13.0
# compiler is installed from PyPI into ~/.cache/imgsim/cuda13 the first time (~105 MB of
# wheels, ~270 MB installed; IMGSIM_CUDA_CACHE moves it); nothing else is downloaded. The
# build shares the usual build folder ($CARGO_TARGET_DIR or target/), so only what CUDA
# changes is compiled again; the next CPU build re-links imgsim.
#
# At run time the binary needs nothing CUDA at start: on a machine with an NVIDIA driver and
# the CUDA 13 (or 12) libraries it uses the GPU, elsewhere it runs on the CPU (README "GPU").
set -euo pipefail
cd "$(dirname "$0")/.."

cap=80
check_binary=0
for arg in "$@"; do
    case "$arg" in
        --check-binary) check_binary=1 ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        [0-9][0-9] | [0-9][0-9][0-9]) cap=$arg ;;
        *) echo "build-cuda.sh: unknown argument '$arg' (a compute capability such as 80, or --check-binary)" >&2; exit 2 ;;
    esac
done

# The system packages every imgsim build needs (protoc, libheif, libturbojpeg).
bash scripts/install-build-deps.sh

cache=${IMGSIM_CUDA_CACHE:-$HOME/.cache/imgsim/cuda13}
export CUDA_HOME=$cache/nvidia/cu13
if [ ! -x "$CUDA_HOME/bin/nvcc" ] || [ ! -f "$CUDA_HOME/lib/libcudart_static.a" ]; then
    echo "build-cuda.sh: installing the CUDA 13.0 compiler from PyPI into $cache"
    # Keep nvcc at 13.0.x: PTX from a newer nvcc uses a format that a CUDA 13.0 driver
    # (the 580 series) cannot compile.
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$cache" \
        nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
fi
export NVCC=$CUDA_HOME/bin/nvcc
export PATH=$CUDA_HOME/bin:$PATH
export LIBRARY_PATH=$CUDA_HOME/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
export CUDA_COMPUTE_CAP=$cap
"$NVCC" --version | tail -2

target=${CARGO_TARGET_DIR:-target}
mkdir -p dist/cuda
start=$(date +%s)
cargo build --release --locked --features cuda --bin imgsim
cp "$target/release/imgsim" dist/cuda/imgsim
strip dist/cuda/imgsim
if [ "$check_binary" = 1 ]; then
    # Without heif and turbojpeg: a GPU machine need not have libheif or libturbojpeg (JPEGs
    # then go through the pure-Rust decoder). s3 stays on so that the dependencies keep the
    # features of the build above (nothing of them is linked into the example).
    cargo build --release --locked --no-default-features --features cuda,s3 --example gpu_check
    cp "$target/release/examples/gpu_check" dist/cuda/gpu_check
    strip dist/cuda/gpu_check
fi
echo "build-cuda.sh: built in $(( $(date +%s) - start )) s for compute capability $cap:"
ls -l dist/cuda/
