#!/usr/bin/env bash
# The GPU runs in one prepared run of about 7 minutes on one H200, from the repository root:
#
#     bash cnn-by-pytorch/gpu_runs.sh OUT_DIR      # make gpu: OUT_DIR is cnn-by-pytorch
#
# GPU_SECONDS (default 450) bounds the whole script: the ResNet runs get what the reproduction
# runs leave of it.
# 1. The 20-epoch reproduction alone on the GPU, to time it (target: <= 30 s), with its training
#    step replayed as a CUDA graph (cuda_graphs=true), with cuDNN's fastest kernels and with
#    deterministic ones. Without graphs it is bound by kernel launches: 4 ms of CPU per step for
#    0.5 ms of GPU work on an H200 (torch.profiler, 2026-11-27), 41 s for the 20 epochs.
# 2. Three variants of the ResNet preset at once, sharing the GPU (about 3.1 s per epoch each):
#    without random erasing, with half as much (it has CutMix too), and with another seed.
# Each run is recorded as OUT_DIR/gpu/NAME.json (metrics, history, hardware, provenance), with its
# logs/ and figures/ beside it; the PyTorch notebook and the report show them. (`make resnet`
# records the ResNet preset itself, as OUT_DIR/resnet.json.) A run that overruns its time limit is
# stopped and has no record; if its training finished, its per-epoch log still makes one, given
# the run's own options: `python torch_run.py PRESET --name NAME --out DIR --set ... --from-log`
# (in cnn-by-pytorch/).
set -u
out=${1:?usage: gpu_runs.sh OUT_DIR}
out=$(realpath -m "$out")
budget=${GPU_SECONDS:-450}
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
    # Evaluation batches of 1024: a GPU is idle between small ones (speed only, not the result).
    timeout "$limit" "$python" torch_run.py "$preset" --name "$name" --out "$dir" \
        --set eval_batch_size=1024 "$@" >"$dir/runs/$name.out" 2>&1
    echo "$name: exit $? after $SECONDS s (script time)"
}

SECONDS=0
train 100 "$out/gpu" reproduction_graphs reproduction --set cuda_graphs=true --set deterministic=false
train 100 "$out/gpu" reproduction_graphs_deterministic reproduction --set cuda_graphs=true

left=$((budget - SECONDS > 1 ? budget - SECONDS : 1))
train "$left" "$out/gpu" resnet_no_erasing resnet --set erasing=0 &
train "$left" "$out/gpu" resnet_erasing_quarter resnet --set erasing=0.25 &
train "$left" "$out/gpu" resnet_seed1 resnet --set seed=1 &
wait

"$python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"{'run':24} {'params':>9} {'epochs':>6} {'best':>4} {'val':>7} {'test':>7} {'last':>7} {'seconds':>8}")
for path in sorted((out / "gpu").glob("*.json")):
    if path.is_file():
        r = json.loads(path.read_text())
        print(f"{r['name']:24} {r['params']:>9,} {len(r['epochs']):>6} {r['selected_epoch']:>4} "
              f"{r['val_accuracy']:>7.4f} {r['test_accuracy']:>7.4f} "
              f"{r['epochs'][-1]['test_acc']:>7.4f} {r['train_seconds']:>8.1f}  {r['hardware']}")
PY
