"""What fixing glibc's malloc thresholds (``fashion_mnist.memory``) buys the PyTorch training loop.

Run from the repository root::

    python benchmarks/bench_malloc.py            # table (make bench)
    python benchmarks/bench_malloc.py --record benchmarks/bench_malloc.json  # table, and saved

Each measurement is one fresh Python process that trains the original PyTorch network (the
reproduction's batch of 128) on synthetic images, with an evaluation pass (batches of 256) after
every training step, as an epoch mixes the two, after warm-up steps that are not timed. It runs
either with glibc's defaults or after ``keep_freed_memory()``. The two alternate over ``--rounds``
rounds (these machines are noisy); reported are the median images/s and minor page faults per
step of each, and the median of the per-round speed-ups (kept / default).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from fashion_mnist.memory import keep_freed_memory
from fashion_mnist.results import import_model_module
from fashion_mnist.runlog import benchmark_options, blas_threads, run_benchmark

MODES = ("default", "kept")
BATCH, EVAL_BATCH = 128, 256


def measure(mode: str, steps: int, warmup: int) -> dict:
    """Images/s of training steps, each followed by an evaluation pass, and page faults per step."""
    if mode == "kept" and not keep_freed_memory():
        raise RuntimeError("keep_freed_memory() did not apply: not glibc, or MALLOC_* already set")
    import torch

    torch_cnn = import_model_module("cnn-by-pytorch", "torch_cnn")
    torch.manual_seed(0)
    torch.set_num_threads(blas_threads())
    config = torch_cnn.REPRODUCTION
    model = torch_cnn.build_model(config).to(memory_format=torch.channels_last)
    optimizer = torch_cnn.make_optimizer(config, model)
    x, y = torch.rand(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    x_eval = torch.rand(EVAL_BATCH, 1, 28, 28)

    def step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            model(x_eval)

    for _ in range(warmup):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {"images_per_s": BATCH * steps / seconds, "faults_per_step": faults / steps}


def run_worker(mode: str, steps: int, warmup: int) -> dict:
    """One measurement in a fresh process, with no malloc settings from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("GLIBC_TUNABLES", None)
    cmd = [sys.executable, __file__, "--worker", mode, "--steps", str(steps), "--warmup", str(warmup)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def benchmark(rounds: int, steps: int, warmup: int) -> dict:
    runs = {mode: [] for mode in MODES}
    for r in range(rounds):
        for mode in MODES if r % 2 == 0 else reversed(MODES):
            runs[mode].append(run_worker(mode, steps, warmup))
    results = {
        mode: {key: statistics.median(run[key] for run in runs[mode]) for key in runs[mode][0]}
        for mode in MODES
    }
    speedups = [k["images_per_s"] / d["images_per_s"] for d, k in zip(*runs.values(), strict=True)]
    results["speedup"] = statistics.median(speedups)
    return results


def table(results: dict, rounds: int, steps: int) -> str:
    lines = [f"PyTorch training step + evaluation, median of {rounds} rounds x {steps} steps, "
             f"{blas_threads()} threads",
             f"{'glibc malloc':<14}{'img/s':>8}{'faults/step':>13}"]  # fmt: skip
    for mode in MODES:
        r = results[mode]
        lines.append(f"{mode:<14}{r['images_per_s']:>8,.0f}{r['faults_per_step']:>13,.0f}")
    lines.append(f"speed-up (kept / default): {results['speedup']:.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    benchmark_options(parser, steps=40, warmup=5)
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.steps, args.warmup)))
        return
    run_benchmark(
        args,
        lambda: benchmark(args.rounds, args.steps, args.warmup),
        lambda results: table(results, args.rounds, args.steps),
    )


if __name__ == "__main__":
    main()
