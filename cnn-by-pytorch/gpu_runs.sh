#!/usr/bin/env bash
# The GPU runs in one prepared run of about 9 minutes on one H100/H200, from the repository root:
#
#     bash cnn-by-pytorch/gpu_runs.sh OUT_DIR      # make gpu: OUT_DIR is cnn-by-pytorch
#
# 1. The 20-epoch reproduction alone on the GPU, to time it (target: <= 30 s), with cuDNN's
#    fastest kernels (deterministic=false; the deterministic run is recorded as gpu/reproduction).
# 2. Where a step's time goes: the bare training step of the reproduction, timed and profiled,
#    with deterministic kernels and with cuDNN's fastest.
# 3. The ResNet preset three times at once, sharing the GPU: as it is, with another seed, and
#    without random erasing (it has CutMix too), each as many epochs as fit in what is left of
#    GPU_SECONDS (default 530), measured by a one-epoch probe of the three side by side.
# Each run is recorded as OUT_DIR/gpu/NAME.json (metrics, history, hardware, provenance), with its
# logs/ and figures/ beside it; the PyTorch notebook and the report show them. (`make resnet`
# records the ResNet preset itself, as OUT_DIR/resnet.json.) A run that overruns its time limit is
# stopped and has no record; if its training finished, its per-epoch log still makes one, given
# the run's own options: `python torch_run.py PRESET --name NAME --out DIR --set ... --from-log`
# (in cnn-by-pytorch/).
set -u
out=${1:?usage: gpu_runs.sh OUT_DIR}
out=$(realpath -m "$out")
budget=${GPU_SECONDS:-530}
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
train 100 "$out/gpu" reproduction_fast reproduction --set deterministic=false

timeout 60 "$python" - <<'PY'
import time

import torch
import torch.nn.functional as F
import torch_cnn

device = torch.device("cuda")
x = torch.rand(128, 1, 28, 28, device=device)
y = torch.randint(0, 10, (128,), device=device)
for deterministic in (True, False):
    config = torch_cnn.Config(deterministic=deterministic)
    torch_cnn.seed_everything(0, deterministic)
    model = torch_cnn.build_model(config).to(device, memory_format=torch.channels_last)
    optimizer = torch_cnn.make_optimizer(config, model)

    def step():
        with torch_cnn._autocast(device):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(50):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(300):
        step()
    torch.cuda.synchronize()
    ms = (time.perf_counter() - start) / 300 * 1e3
    print(f"\nbare reproduction step, deterministic={deterministic}: {ms:.2f} ms "
          f"({ms * 422 * 20 / 1e3:.1f} s for 20 epochs of 422 steps)")
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as profile:
        for _ in range(20):
            step()
        torch.cuda.synchronize()
    print(profile.key_averages().table(sort_by="self_cuda_time_total", row_limit=10))
PY
echo "profile: after $SECONDS s (script time)"

# The probe: one epoch of the three ResNet runs side by side (its first epoch includes cuDNN's
# kernel search, so the estimate errs long).
for i in 1 2 3; do
    train 120 /tmp/gpu_probe "probe$i" resnet --set epochs=1 --set deterministic=false &
done
wait
epoch_seconds=$("$python" -c 'import csv, glob; print(max(float(next(csv.DictReader(open(p)))["seconds"]) for p in glob.glob("/tmp/gpu_probe/logs/probe*.csv")))')
epoch_seconds=${epoch_seconds:-6}  # no probe finished: the runs below will say why
left=$((budget - SECONDS))
# 45 s for start-up, the selected checkpoint's evaluation and the figures
epochs=$("$python" -c "print(max(10, min(200, int(($left - 45) / $epoch_seconds))))")
echo "probe: ${epoch_seconds} s per epoch side by side; $left s left: $epochs epochs"

train "$((left - 5))" "$out/gpu" resnet_fast resnet --set epochs="$epochs" --set deterministic=false &
train "$((left - 5))" "$out/gpu" resnet_fast_seed1 resnet --set epochs="$epochs" --set deterministic=false --set seed=1 &
train "$((left - 5))" "$out/gpu" resnet_fast_no_erasing resnet --set epochs="$epochs" --set deterministic=false --set erasing=0 &
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
