#!/usr/bin/env bash
# The GPU check, in one go, on a machine with an NVIDIA GPU and PyTorch (no Rust needed).
# Run from the repository root with the folder that scripts/pack-gpu-check.sh made beside it:
#
#   OUT=/some/folder scripts/gpu-check.sh      # everything lands under $OUT
#
# 1. parity: the parity tests' images through the GPU against the committed reference
#    embeddings, the CPU tests' bounds (f32); f16 and bf16 reported beside;
# 2. imgsim: CLIP ViT-B/32 and DINOv2-base (real architectures, random weights made here with
#    this machine's torch) at batch 1, 16, 64, 256, model only (--seconds each) and end to end
#    over coco128 repeated to >= 10 s, and over 12 camera-sized photos, in f32 and f16, with
#    each f16 embedding's cosine with f32's;
# 3. PyTorch (bench/peer_torch.py --device cuda) on the same GPU, same figures;
# 4. GPU memory sampled by nvidia-smi every 250 ms throughout; report.md puts it together.
#
# Sized to finish in under 8 minutes on one H100/H200 (the machine's start not included).
# Environment: OUT (default gpu-check-out), CARRY (default gpu-carry), PYTHON (a Python with
# torch, transformers and pillow; default python3, then /opt/torch/bin/python3), SECONDS_EACH
# (model-only seconds per figure, default 3), PRECISIONS (default f32,f16), BATCHES (default
# 1,16,64,256), MIN_SECONDS (end to end, default 10), DEVICE (default cuda; cpu for a dry run
# of the script itself: DEVICE=cpu PRECISIONS=f32,bf16 BATCHES=1,2 MIN_SECONDS=1 SECONDS_EACH=0.5).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-gpu-check-out}
CARRY=${CARRY:-gpu-carry}
SECONDS_EACH=${SECONDS_EACH:-3}
PRECISIONS=${PRECISIONS:-f32,f16}
BATCHES=${BATCHES:-1,16,64,256}
MIN_SECONDS=${MIN_SECONDS:-10}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
LOG=$OUT/log.txt
log() { echo "[$(date +%T)] $*" | tee -a "$LOG"; }
T0=$(date +%s)

PY=${PYTHON:-python3}
if ! "$PY" -c 'import torch, transformers' 2>/dev/null; then
    PY=/opt/torch/bin/python3
fi
log "python: $PY ($("$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())' 2>&1))"

# imgsim opens cuBLAS, cuRAND and NVRTC at run time: PyTorch's wheels carry them.
SITE=$("$PY" -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)
for dir in "$SITE"/nvidia/*/lib; do
    [ -d "$dir" ] && LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
done
export LD_LIBRARY_PATH
log "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}; $(ls "$SITE"/nvidia/*/lib 2>/dev/null | grep -E 'cublas|curand|nvrtc|cudart' | tr '\n' ' ')"

# The binary travels xz-compressed; the photos as they are.
BIN=${TMPDIR:-/tmp}/imgsim-gpu-check/gpu_check
mkdir -p "$(dirname "$BIN")"
if command -v xz >/dev/null; then
    xz -dc "$CARRY/gpu_check.xz" >"$BIN"
else
    "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$CARRY/gpu_check.xz" "$BIN"
fi
chmod +x "$BIN"
COCO=$CARRY/coco128/val2017
log "binary: $(ls -l "$BIN" | awk '{print $5}') bytes; photos: $(ls "$COCO" | wc -l) in $COCO"

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || log "no nvidia-smi"
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits \
    -lms 250 >"$OUT/gpu-samples.csv" 2>/dev/null &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT

log "1/4 parity"
timeout 60 "$BIN" parity --device "$DEVICE" --coco "$COCO" --also f16,bf16 \
    >"$OUT/parity.jsonl" 2>"$OUT/parity.err"
echo "$?" >"$OUT/parity.rc"
log "parity exit $(cat "$OUT/parity.rc")"

log "2/4 random weights of the real architectures"
MODELS=${TMPDIR:-/tmp}/imgsim-gpu-check/models
for family in clip dinov2; do
    "$PY" bench/make_random_model.py "$family" "$MODELS/$family" >>"$LOG" 2>&1 \
        || log "make_random_model.py $family failed"
done

log "3/4 imgsim bench"
timeout 240 "$BIN" bench --device "$DEVICE" --model-dir "$MODELS/clip" --model-dir "$MODELS/dinov2" \
    --images "$COCO" --camera 12 --batch-size "$BATCHES" --seconds "$SECONDS_EACH" \
    --min-seconds "$MIN_SECONDS" --precision "$PRECISIONS" >"$OUT/imgsim.jsonl" 2>"$OUT/imgsim.err"
log "imgsim bench exit $?"

log "4/4 PyTorch on the same GPU"
CAMERA=${TMPDIR:-/tmp}/imgsim-gpu-check-camera
for family in clip dinov2; do
    for precision in ${PRECISIONS//,/ }; do
        start=$(date +%s.%N)
        # Camera-sized photos once per model (decoding bound: the precision does not matter).
        camera=()
        if [ -d "$CAMERA" ] && [ "$precision" = f32 ]; then camera=(--camera "$CAMERA"); fi
        timeout 75 "$PY" bench/peer_torch.py --device "$DEVICE" --family "$family" --architecture '{}' \
            --precision "$precision" $(printf -- '--batch-size %s ' ${BATCHES//,/ }) \
            --seconds "$SECONDS_EACH" --images "$COCO" --min-seconds "$MIN_SECONDS" \
            "${camera[@]}" \
            >"$OUT/peer-$family-$precision.json" 2>"$OUT/peer-$family-$precision.err"
        rc=$?
        echo "{\"started_at\": $start, \"ended_at\": $(date +%s.%N), \"rc\": $rc}" \
            >"$OUT/peer-$family-$precision.window"
        log "peer $family $precision exit $rc"
    done
done

kill $SAMPLER 2>/dev/null
"$PY" scripts/gpu_report.py "$OUT" >"$OUT/report.md" 2>"$OUT/report.err"
log "done in $(( $(date +%s) - T0 )) s"
cat "$OUT/report.md"
