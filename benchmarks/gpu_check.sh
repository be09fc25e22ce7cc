#!/usr/bin/env bash
# One prepared GPU session: check the CUDA training/evaluation path, then time it.
# Run from the repository root in an environment where facelib is installed (pip install -e .):
#     bash benchmarks/gpu_check.sh [OUT_DIR] [DATA_ROOT]
# About 8 minutes on one H100. Prints markdown tables; copies them into OUT_DIR.
set -euo pipefail
OUT=${1:-benchmarks/out/gpu}
DATA=${2:-../shared/data/facecom_task_b}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

# 1. The GPU path works end to end (AMP, channels_last, workers, checkpoint, evaluation).
facelib synth --out "$OUT/synth" --identities 40 --photos 4 --image-size 112
facelib train --data "$OUT/synth/train" --val-data "$OUT/synth/val" --epochs 2 --image-size 112 \
    --no-pretrained --device cuda --workers 8 --out "$OUT/tb_model.pth" --no-progress | tee "$OUT/train.log"
facelib test --data "$OUT/synth/val" --train-data "$OUT/synth/train" --checkpoint "$OUT/tb_model.pth" \
    --out "$OUT/report" --device cuda --workers 8 --quiet-report | tee "$OUT/test.log"

# 2. Throughput goals: full pipeline >= 85% of model-only; ResNet-50 224 px AMP > 2,500 img/s on H100.
python benchmarks/train_throughput.py --backbone resnet50 --image-size 224 --batch-size 256 --steps 40 \
    --warmup 10 --workers 14 --device cuda --data-root "$DATA" | tee "$OUT/train_throughput.md"
# 3. Extraction within 90% of the raw forward.
python benchmarks/eval_speed.py --backbone resnet50 --image-size 224 --images 4096 --batch-size 256 \
    --workers 14 --device cuda --data-root "$DATA" | tee "$OUT/eval_speed.md"
