#!/usr/bin/env bash
# The GPU results in one prepared run (about 9 minutes on one H200), from the repository root:
#
#     bash cnn-by-pytorch/gpu_runs.sh OUT_DIR      # make gpu: OUT_DIR is cnn-by-pytorch
#
# 1. The 20-epoch reproduction alone on the GPU, to time it (target: <= 30 s).
# 2. At once, sharing the GPU: the ResNet preset, the ResNet with the issue's 30-epoch reference
#    recipe (no CutMix, no EMA), and the improved preset with variants to choose from by
#    validation accuracy (the recorded gpu/ runs compared translate 1 and 2, CutMix and Adam).
# The ResNet preset is recorded as OUT_DIR/resnet.json, the others as OUT_DIR/gpu/NAME.json (metrics,
# history, hardware, provenance), each with its logs/ and figures/ beside it; the PyTorch notebook
# and the report read both. A run that overruns its time limit is stopped and has no record; if
# its training finished, its per-epoch log still makes one:
# `python torch_run.py PRESET --name NAME --out DIR --from-log` (in cnn-by-pytorch/).
# Measured on an H200 (2026-11-27): the reproduction alone 40 s; side by side, the improved runs
# about 100 s each and the ResNet (100 epochs) 383 s.
set -u
out=${1:?usage: gpu_runs.sh OUT_DIR}
out=$(realpath -m "$out")
mkdir -p "$out/gpu"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
python=${PYTHON:-python3}
cd cnn-by-pytorch

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'

train() {  # train LIMIT_SECONDS OUT NAME PRESET [--set NAME=VALUE ...]
    local limit=$1 dir=$2 name=$3 preset=$4
    mkdir -p "$dir/runs"  # ignored by git, like the checkpoints there
    shift 4
    timeout "$limit" "$python" torch_run.py "$preset" --name "$name" --out "$dir" "$@" \
        >"$dir/runs/$name.out" 2>&1
    echo "$name: exit $? after $SECONDS s (script time)"
}

SECONDS=0
train 100 "$out/gpu" reproduction reproduction

train 480 "$out" resnet resnet &
train 390 "$out/gpu" resnet_reference30 resnet --set epochs=30 --set cutmix=0 --set ema=0 &
train 390 "$out/gpu" improved improved &
train 390 "$out/gpu" improved_translate2 improved --set translate=2 &
train 390 "$out/gpu" improved_no_erasing improved --set erasing=0 &
train 390 "$out/gpu" improved_seed1 improved --set seed=1 &
wait

"$python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"{'run':22} {'params':>9} {'epochs':>6} {'best':>4} {'val':>7} {'test':>7} {'seconds':>8}")
for path in [out / "resnet.json", *sorted((out / "gpu").glob("*.json"))]:
    if path.is_file():
        r = json.loads(path.read_text())
        print(f"{r['name']:22} {r['params']:>9,} {len(r['epochs']):>6} {r['selected_epoch']:>4} "
              f"{r['val_accuracy']:>7.4f} {r['test_accuracy']:>7.4f} {r['train_seconds']:>8.1f}  "
              f"{r['hardware']}")
PY
