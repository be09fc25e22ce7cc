#!/usr/bin/env bash
# One prepared GPU session: the full profile on the full FACECOM, pre-train on every source + fine-tune on
# FACECOM (ResNet-50, 112 px), throughput, and the notebooks in `full`.
# Run from the repository root on a CUDA machine where torch, timm and torchvision are installed:
#     bash benchmarks/gpu_check.sh [OUT_DIR] [DATA_ROOT] [EXTRA_ROOT] [TEACHER_CACHE]
# The distilled run (1c) reads dlib's embeddings from TEACHER_CACHE (default .teacher-cache), made here first:
#     python benchmarks/teacher_pass.py --data DATA/train --data EXTRA/lfw --cache .teacher-cache
# and carried to the GPU machine (`carry: [".teacher-cache"]`): dlib itself need not be installed there.
# Budget: about 9 minutes on one H200 (it must fit 10); each step is time-boxed so that one slow step
# cannot eat the rest. Prints markdown; keeps every log and table in OUT_DIR.
# Offline machines: pass wheels for nbval/ipywidgets/nbclient in .whl/ (see the device README) or the
# notebook step is skipped, saying so.
set -uo pipefail
OUT=${1:-benchmarks/out/gpu}
DATA=${2:-../shared/data/facecom_task_b}
EXTRA=${3:-../shared/data/extra_faces}
TEACHER_CACHE=${4:-.teacher-cache}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
PY=${PYTHON:-python3}
T0=$(date +%s)
stamp() { echo "[gpu_check $(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/timeline.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
if ! $PY -c "import facelib" 2>/dev/null; then
    $PY -m pip install -q --no-deps --no-build-isolation -e . || export PYTHONPATH=$PWD
fi
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}/tmp/site
fi
FACELIB="$PY -m facelib"

# 1. The full profile from random init (no weights can be downloaded there): ResNet-50, 224 px,
#    bf16 autocast, channels_last, 20 epochs on the full FACECOM train, then `facelib test` on val.
stamp "full-profile training"
timeout 150 $FACELIB train --data "$DATA/train" --no-pretrained --device cuda --workers 14 --epochs 20 \
    --max-seconds 90 --out "$OUT/tb_model.pth" --no-progress 2>&1 | tee "$OUT/train_full.log"
stamp "full-profile training done (rc ${PIPESTATUS[0]})"
timeout 40 $FACELIB test --data "$DATA/val" --train-data "$DATA/train" --checkpoint "$OUT/tb_model.pth" \
    --out "$OUT/report" --device cuda --workers 14 --quiet-report --gallery all 2>&1 | tee "$OUT/test_full.log"
stamp "test done"

# 1b. Pre-train on more people (FACECOM train + extra_faces/lfw: the same framing; CelebA needs `facelib align`,
#     i.e. dlib, which is too slow to fit here), then fine-tune on FACECOM train with --init: ResNet-50 at
#     112 px, random init, each within its time budget.
SOURCES=(--data "$DATA/train")
[ -d "$EXTRA/lfw" ] && SOURCES+=(--data "$EXTRA/lfw")
stamp "pre-training on $(( ${#SOURCES[@]} / 2 )) sources"
timeout 130 $FACELIB train "${SOURCES[@]}" --no-pretrained --device cuda --workers 14 --image-size 112 \
    --max-seconds 70 --out "$OUT/pretrain/tb_model.pth" --no-progress 2>&1 | tee "$OUT/pretrain.log"
timeout 60 $FACELIB train --data "$DATA/train" --init "$OUT/pretrain/tb_model.pth" --device cuda --workers 14 \
    --image-size 112 --max-seconds 40 --out "$OUT/finetune/tb_model.pth" --no-progress 2>&1 | tee "$OUT/finetune.log"
# 1c. The same sources and time as the pre-training, with dlib as the teacher (its cache carried, see the top)
MODELS=(pretrain finetune)
if [ -d "$TEACHER_CACHE/teachers" ]; then
    timeout 100 $FACELIB train "${SOURCES[@]}" --no-pretrained --device cuda --workers 14 --image-size 112 \
        --teacher dlib --teacher-cache "$TEACHER_CACHE" --max-seconds 70 --out "$OUT/distilled/tb_model.pth" \
        --no-progress 2>&1 | tee "$OUT/distilled.log"
    MODELS+=(distilled)
else
    echo "distilled: skipped (no teacher cache at $TEACHER_CACHE)" | tee "$OUT/distilled.log"
fi
for m in "${MODELS[@]}"; do
    timeout 40 $FACELIB test --data "$DATA/val" --checkpoint "$OUT/$m/tb_model.pth" --out "$OUT/report_$m" \
        --device cuda --workers 14 --quiet-report --gallery all 2>&1 | tee "$OUT/test_$m.log"
done
stamp "pre-train + fine-tune + distilled done"

# 2. Throughput: the full pipeline against model-only steps (goal >= 85%), all four variants.
timeout 45 $PY benchmarks/train_throughput.py --backbone resnet50 --image-size 224 --batch-size 256 --steps 30 \
    --warmup 8 --workers 14 --device cuda --data-root "$DATA" 2>"$OUT/train_throughput.err" \
    | tee "$OUT/train_throughput.md"
stamp "throughput done"

# 3. Notebooks 03 and 04 in the full profile (synthetic data at 112 px, ResNet-50, 20 epochs).
if $PY -c "import nbval, ipywidgets" 2>/dev/null; then
    FACELIB_PROFILE=full timeout 60 $PY -m pytest --nbval-lax -q notebooks/03_training.ipynb \
        notebooks/04_evaluation.ipynb 2>&1 | tail -n 5 | tee "$OUT/notebooks_full.txt"
else
    echo "notebooks: skipped (nbval/ipywidgets not installed here; carry them as wheels in .whl/)" \
        | tee "$OUT/notebooks_full.txt"
fi
stamp "all done"
