#!/usr/bin/env bash
# The GPU runs in one prepared run (about 10 minutes on one H200), from the repository root:
#
#     bash cnn-by-pytorch/gpu_runs.sh OUT_DIR      # make gpu: OUT_DIR is cnn-by-pytorch
#
# 1. The 20-epoch reproduction alone on the GPU, to time it (target: <= 30 s), with deterministic
#    kernels and again with cuDNN's fastest (deterministic=false).
# 2. At once, sharing the GPU: the ResNet preset cut to 80 epochs with cuDNN's fastest kernels
#    (its time against the deterministic recorded runs), and variants of the improved preset not
#    yet measured, to choose from by validation accuracy (the recorded gpu/ runs compared
#    translate 1 and 2, CutMix and Adam).
# Each run is recorded as OUT_DIR/gpu/NAME.json (metrics, history, hardware, provenance), with its
# logs/ and figures/ beside it; the PyTorch notebook and the report show them. (`make resnet`
# records the ResNet preset itself, as OUT_DIR/resnet.json.) A run that overruns its time limit is
# stopped and has no record; if its training finished, its per-epoch log still makes one, given
# the run's own options: `python torch_run.py PRESET --name NAME --out DIR --set ... --from-log`
# (in cnn-by-pytorch/).
# Measured on an H200 (2026-11-27), deterministic: the reproduction alone 40 s of training (about
# 60 s with start-up and evaluation); side by side, the improved runs about 100 s each and the
# ResNet preset 383 s for 100 epochs.
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
train 100 "$out/gpu" reproduction_fast reproduction --set deterministic=false

train 370 "$out/gpu" resnet80_fast resnet --set epochs=80 --set deterministic=false &
train 370 "$out/gpu" improved_batch64 improved --set batch_size=64 &
train 370 "$out/gpu" improved_seed2 improved --set seed=2 &
train 370 "$out/gpu" improved_seed1 improved --set seed=1 &
wait

"$python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"{'run':22} {'params':>9} {'epochs':>6} {'best':>4} {'val':>7} {'test':>7} {'seconds':>8}")
for path in sorted((out / "gpu").glob("*.json")):
    if path.is_file():
        r = json.loads(path.read_text())
        print(f"{r['name']:22} {r['params']:>9,} {len(r['epochs']):>6} {r['selected_epoch']:>4} "
              f"{r['val_accuracy']:>7.4f} {r['test_accuracy']:>7.4f} {r['train_seconds']:>8.1f}  "
              f"{r['hardware']}")
PY
