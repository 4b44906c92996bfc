"""What fixing glibc's malloc thresholds (``fashion_mnist.memory``) buys the PyTorch training loop.

Run from the repository root (``make -C experiments malloc`` records it)::

    python experiments/malloc/bench_malloc.py            # table
    python experiments/malloc/bench_malloc.py --record experiments/malloc/bench_malloc.json

Each measurement is one fresh Python process that trains the original PyTorch network with the
reproduction's batch size on synthetic images, then evaluates as many images as an epoch does per
image trained (validation and test: 15,000 per 55,000), in the evaluation's batches; warm-up
steps come first, untimed. Images/s counts the trained images over the whole time, evaluation
included, as a run's ``images_per_second`` does. It runs either with glibc's defaults or after
``keep_freed_memory()``, the two alternating over ``--rounds`` rounds (these machines are noisy);
reported are the median images/s and minor page faults per training step of each, and the median
of the per-round speed-ups (kept / default). PyTorch keeps its default thread count, as in training.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import sys
import time

from fashion_mnist.memory import keep_freed_memory, without_malloc_settings
from fashion_mnist.results import import_model_module
from fashion_mnist.runlog import alternate, benchmark_main, worker_result

MODES = ("default", "kept")
EVAL_PER_TRAIN_IMAGE = 15_000 / 55_000  # an epoch: 55,000 trained, 5,000 + 10,000 evaluated


def _torch_cnn():
    """The PyTorch model's module, this checkout's."""
    return import_model_module("cnn-by-pytorch", "torch_cnn")


def measure(mode: str, steps: int, warmup: int) -> dict:
    """Images/s and page faults per step of ``steps`` training steps and their evaluation."""
    if mode == "kept" and not keep_freed_memory():
        raise RuntimeError("keep_freed_memory() did not apply: the C library is not glibc, or "
                           "MALLOC_*_THRESHOLD_ or GLIBC_TUNABLES already set its malloc")
    import torch

    torch_cnn = _torch_cnn()
    config = torch_cnn.REPRODUCTION
    torch.manual_seed(0)
    model = torch_cnn.build_model(config).to(memory_format=torch.channels_last)
    optimizer = torch_cnn.make_optimizer(config, model)
    x, y = torch.rand(config.batch_size, 1, 28, 28), torch.randint(0, 10, (config.batch_size,))
    eval_images = torch.rand(config.eval_batch_size, 1, 28, 28)

    def epoch(n_steps):
        model.train()
        for _ in range(n_steps):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            evaluated = n_steps * config.batch_size * EVAL_PER_TRAIN_IMAGE
            for _ in range(math.ceil(evaluated / config.eval_batch_size)):
                model(eval_images)

    epoch(warmup)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    epoch(steps)
    seconds = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {"images_per_s": config.batch_size * steps / seconds, "faults_per_step": faults / steps,
            "threads": torch.get_num_threads()}  # fmt: skip


def run_worker(mode: str, steps: int, warmup: int) -> dict:
    """One measurement in a fresh process, without the environment's malloc settings."""
    cmd = [sys.executable, __file__, "--worker", mode, "--steps", str(steps), "--warmup", str(warmup)]
    return worker_result(cmd, without_malloc_settings(os.environ))


def benchmark(rounds: int, steps: int, warmup: int) -> dict:
    runs = alternate(MODES, rounds, lambda mode: run_worker(mode, steps, warmup))
    results = {
        mode: {key: statistics.median(run[key] for run in runs[mode]) for key in runs[mode][0]}
        for mode in MODES
    }
    speedups = [kept["images_per_s"] / default["images_per_s"]
                for default, kept in zip(runs["default"], runs["kept"], strict=True)]  # fmt: skip
    results["speedup"] = statistics.median(speedups)
    return results


def table(results: dict, rounds: int, steps: int) -> str:
    lines = [f"PyTorch training with its evaluation, median of {rounds} rounds x {steps} steps, "
             f"{results['kept']['threads']} torch threads",
             f"{'glibc malloc':<14}{'img/s':>8}{'faults/step':>13}"]  # fmt: skip
    for mode in MODES:
        r = results[mode]
        lines.append(f"{mode:<14}{r['images_per_s']:>8,.0f}{r['faults_per_step']:>13,.0f}")
    lines.append(f"speed-up (kept / default): {results['speedup']:.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    if platform.libc_ver()[0] != "glibc":
        print("bench_malloc: tunes glibc's malloc, and this C library is not glibc: nothing to measure")
        return
    benchmark_main(argv, __doc__, MODES, 40, 5, measure, benchmark, table,
                   threads=lambda results: results["kept"]["threads"])  # torch's, in the workers


if __name__ == "__main__":
    main()
