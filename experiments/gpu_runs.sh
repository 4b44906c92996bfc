#!/usr/bin/env bash
# The GPU runs in one prepared run of about 9 minutes on one H200, from the repository root:
#
#     bash experiments/gpu_runs.sh OUT_DIR      # make -C experiments gpu: OUT_DIR is experiments
#
# GPU_SECONDS (default 540) is the script's time: the ResNet runs get what the earlier steps leave
# of it (they took 2.5 minutes on an H200; each has its own time limit).
# 1. The 20-epoch reproduction alone, to time it (target: <= 30 s), its training step replayed as
#    a CUDA graph (cuda_graphs=true) with deterministic kernels. Without graphs it is bound by
#    kernel launches: 4 ms of CPU per step for 0.5 ms of GPU work on an H200 (torch.profiler,
#    2026-11-27), 41 s for the 20 epochs.
# 2. The reproduction over seeds 0-7 with the two initialisations (init=as_marked, the preset's, and
#    init=pytorch, the layers' defaults), eight runs at a time: OUT_DIR/gpu_seeds/.
# 3. The ResNet replayed as a CUDA graph, which needs a cosine schedule instead of one-cycle and
#    no CutMix, in two variants side by side: random erasing as in the preset and half as much.
#    Launched op by op, one ResNet step is bound by kernel launches too (about 3.8 s per epoch
#    alone, 3.1 s each with three side by side). The length is sized to the time left: a 2-epoch
#    probe of both times an epoch, then the runs get as many epochs as fit (at most 300; none
#    when fewer than 10 fit).
# Each run is recorded as OUT_DIR/gpu/NAME.json or OUT_DIR/gpu_seeds/NAME.json (metrics, history,
# hardware, provenance), with its logs/ and figures/ beside it; summarise.py gathers them for
# the PyTorch notebook and the report. (`make -C experiments resnet` records the ResNet preset
# itself, as OUT_DIR/resnet/resnet.json.)
# A run that overruns its time limit is stopped and has no record; if its training finished, its
# per-epoch log still makes one, given the run's own options:
# `python experiments/sweeps.py PRESET --name NAME --out DIR --set ... --from-log`.
set -u
out=${1:?usage: gpu_runs.sh OUT_DIR}
out=$(realpath -m "$out")
budget=${GPU_SECONDS:-540}
mkdir -p "$out/gpu" "$out/gpu_seeds"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
python=${PYTHON:-python3}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'

train() {  # train LIMIT_SECONDS OUT NAME PRESET [--set NAME=VALUE ...]
    local limit=$1 dir=$2 name=$3 preset=$4
    mkdir -p "$dir/runs"  # ignored by git, like the checkpoints there
    shift 4
    # Evaluation batches of 1024: a GPU is idle between small ones (speed only, not the result).
    timeout "$limit" "$python" experiments/sweeps.py "$preset" --name "$name" --out "$dir" \
        --set eval_batch_size=1024 "$@" >"$dir/runs/$name.out" 2>&1
    echo "$name: exit $? after $SECONDS s (script time)"
}

SECONDS=0
train 100 "$out/gpu" reproduction_graphs_deterministic reproduction --set cuda_graphs=true

for init in as_marked pytorch; do
    for seed in 0 1 2 3 4 5 6 7; do
        train 150 "$out/gpu_seeds" "reproduction_${init}_seed$seed" reproduction \
            --set cuda_graphs=true --set init=$init --set seed=$seed &
    done
    wait
done

resnet_graphed=(--set cuda_graphs=true --set schedule=cosine --set cutmix=0)
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
train 120 "$probe" probe_a resnet --epochs 2 "${resnet_graphed[@]}" &
train 120 "$probe" probe_b resnet --epochs 2 "${resnet_graphed[@]}" --set erasing=0.25 &
wait
# Epochs that fit: the slower probe's last epoch (its first includes the capture), 15% spare,
# 40 s for the final evaluation and the figures.
epochs=$("$python" - "$probe" $((budget - SECONDS - 40)) <<'PY'
import csv, sys
from pathlib import Path
seconds = max(float(list(csv.DictReader(open(p)))[-1]["seconds"])
              for p in Path(sys.argv[1]).glob("logs/probe_*.csv"))
print(max(0, min(300, int(int(sys.argv[2]) / (1.15 * seconds)))))
print(f"probe: {seconds:.2f} s per epoch", file=sys.stderr)
PY
) || { echo "the ResNet probe failed: $(tail -3 "$probe"/runs/probe_*.out)"; epochs=0; }

if [ "$epochs" -ge 10 ]; then
    echo "ResNets: $epochs epochs"
    left=$((budget - SECONDS))
    train "$left" "$out/gpu" resnet_graphs resnet --epochs "$epochs" "${resnet_graphed[@]}" &
    train "$left" "$out/gpu" resnet_graphs_erasing_quarter resnet --epochs "$epochs" \
        "${resnet_graphed[@]}" --set erasing=0.25 &
    wait
else
    echo "ResNets: not run, $epochs epochs fit in the time left"
fi

"$python" experiments/summarise.py --runs "$out/gpu" "$out/gpu_seeds"
