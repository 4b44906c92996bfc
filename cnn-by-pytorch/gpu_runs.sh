#!/usr/bin/env bash
# The GPU results in one prepared run (about 9 minutes on one H200), from the repository root:
#
#     bash cnn-by-pytorch/gpu_runs.sh OUT_DIR
#
# 1. The 20-epoch reproduction alone on the GPU, to time it (target: <= 30 s).
# 2. At once, sharing the GPU: the ResNet preset, the ResNet with the issue's 30-epoch reference
#    recipe (no CutMix, no EMA), and the improved preset with variants to choose from by
#    validation accuracy (the recorded gpu/ runs compared translate 1 and 2, CutMix and Adam).
# Each run writes NAME.json (metrics, history, hardware, provenance), logs/ and figures/ under
# OUT_DIR/gpu; OUT_DIR/gpu_results.tar.gz holds them all (checkpoints stay behind). A run that
# overruns its time limit is stopped and has no NAME.json; if its training finished, its per-epoch
# log still makes a record: `python torch_run.py PRESET --name NAME --out OUT --from-log HARDWARE`.
# Measured on an H200 (2026-11-27): the reproduction alone 40 s; side by side, the improved runs
# about 100 s each and the ResNet (100 epochs) 383 s.
set -u
out=${1:?usage: gpu_runs.sh OUT_DIR}
out=$(realpath -m "$out")
work="$out/gpu"
mkdir -p "$work"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
python=${PYTHON:-python3}
cd cnn-by-pytorch

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'

train() {  # train LIMIT_SECONDS NAME PRESET [--set NAME=VALUE ...]
    local limit=$1 name=$2 preset=$3
    shift 3
    timeout "$limit" "$python" torch_run.py "$preset" --name "$name" --out "$work" "$@" \
        >"$work/$name.out" 2>&1
    echo "$name: exit $? after $SECONDS s (script time)"
}

SECONDS=0
train 100 reproduction reproduction

train 480 resnet resnet &
train 390 resnet_reference30 resnet --set epochs=30 --set cutmix=0 --set ema=0 &
train 390 improved improved &
train 390 improved_translate2 improved --set translate=2 &
train 390 improved_no_erasing improved --set erasing=0 &
train 390 improved_seed1 improved --set seed=1 &
wait

"$python" - "$work" <<'EOF'
import json, sys
from pathlib import Path
print(f"{'run':22} {'params':>9} {'epochs':>6} {'best':>4} {'val':>7} {'test':>7} {'seconds':>8} {'img/s':>8}")
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    r = json.loads(path.read_text())
    print(f"{r['name']:22} {r['params']:>9,} {len(r['epochs']):>6} {r['selected_epoch']:>4} "
          f"{r['val_accuracy']:>7.4f} {r['test_accuracy']:>7.4f} {r['train_seconds']:>8.1f} "
          f"{r['images_per_second']:>8.0f}  {r['hardware']}")
EOF
tar czf "$out/gpu_results.tar.gz" -C "$out" --exclude=checkpoints --exclude=tensorboard gpu
ls -la "$out"
