"""One epoch of the reproduction configuration: our training loop against a plain PyTorch loop.

Run from the repository root::

    python benchmarks/bench_epoch.py            # table (make bench)
    python benchmarks/bench_epoch.py --record benchmarks/bench_epoch.json

The PyTorch issue's reference point: "plain PyTorch with in-memory tensors did 32 s" for an epoch
on 2 CPU cores, evaluation included. Both sides here train the original network with the
reproduction's settings (Adam 1e-3, batches of 128) on synthetic images held in memory (the speed
does not depend on the pixels): ``--steps`` batches (default: one epoch of 55,000 images), then
evaluate as many images per trained image as an epoch does (5,000 + 10,000 per 55,000). "ours" is
``torch_cnn.train`` as a run calls it, its checkpoint included; "plain" is the loop of PyTorch's
own MNIST example, its float images converted once beforehand (untimed), glibc's malloc as it
comes. Each measurement is a fresh process, after untimed warm-up steps; the two alternate over
``--rounds`` rounds. Reported: the median seconds of each and the median of the per-round ratios
(ours / plain), which carries over to another machine better than the seconds do.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time

from fashion_mnist.memory import without_malloc_settings
from fashion_mnist.results import import_model_module
from fashion_mnist.runlog import alternate, benchmark_main, worker_result

MODES = ("ours", "plain")
VAL_PER_TRAIN_IMAGE, TEST_PER_TRAIN_IMAGE = 5_000 / 55_000, 10_000 / 55_000
EPOCH_STEPS = math.ceil(55_000 / 128)


def synthetic(n: int, rng):
    """``n`` uint8 images (N, 784) and labels, as the data module loads them."""
    return rng.integers(0, 256, (n, 784), dtype="uint8"), rng.integers(0, 10, n)


def _torch_cnn():
    """The PyTorch model's module, this checkout's."""
    return import_model_module("cnn-by-pytorch", "torch_cnn")


def measure(mode: str, steps: int, warmup: int) -> dict:
    """Seconds for ``steps`` training steps of the reproduction and the evaluation that goes with
    them, trained by ``torch_cnn.train`` ("ours") or by a plain loop ("plain")."""
    import numpy as np
    import torch

    torch_cnn = _torch_cnn()
    config = torch_cnn.REPRODUCTION
    rng = np.random.default_rng(0)

    def data(n_steps):
        n = n_steps * config.batch_size
        return (*synthetic(n, rng), *synthetic(math.ceil(n * VAL_PER_TRAIN_IMAGE), rng),
                *synthetic(math.ceil(n * TEST_PER_TRAIN_IMAGE), rng))  # fmt: skip

    def ours(train_x, train_y, val_x, val_y, test_x, test_y):
        with tempfile.TemporaryDirectory() as out:
            torch_cnn.train(dataclasses.replace(config, epochs=1), train_x, train_y, val_x, val_y,
                            out, test_x, test_y, resume=False, device="cpu")  # fmt: skip

    def plain(train_x, train_y, val_x, val_y, test_x, test_y):
        as_tensors = [(torch.from_numpy(x).float().div(255).reshape(-1, 1, 28, 28),
                       torch.from_numpy(y).long())
                      for x, y in ((train_x, train_y), (val_x, val_y), (test_x, test_y))]  # fmt: skip
        (x, y), *evaluated = as_tensors
        start = time.perf_counter()
        model = torch_cnn.original_net()
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        model.train()
        for idx in torch.randperm(len(y)).split(config.batch_size):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for images, labels in evaluated:
                for xb, yb in zip(images.split(256), labels.split(256), strict=True):
                    (model(xb).argmax(1) == yb).sum().item()
        return time.perf_counter() - start

    def timed(n_steps):
        arrays = data(n_steps)
        if mode == "plain":
            return plain(*arrays)
        start = time.perf_counter()
        ours(*arrays)
        return time.perf_counter() - start

    if warmup:
        timed(warmup)
    return {"seconds": timed(steps), "threads": torch.get_num_threads()}


def run_worker(mode: str, steps: int, warmup: int) -> dict:
    """One measurement in a fresh process, without the environment's malloc settings (ours sets
    its own, as a run does) or progress bars."""
    env = {**without_malloc_settings(os.environ), "TQDM_DISABLE": "1"}
    cmd = [sys.executable, __file__, "--worker", mode, "--steps", str(steps), "--warmup", str(warmup)]
    return worker_result(cmd, env)


def benchmark(rounds: int, steps: int, warmup: int) -> dict:
    runs = alternate(MODES, rounds, lambda mode: run_worker(mode, steps, warmup))
    results = {mode: {"seconds": statistics.median(run["seconds"] for run in runs[mode]),
                      "threads": runs[mode][0]["threads"]} for mode in MODES}  # fmt: skip
    results["ratio"] = statistics.median(
        o["seconds"] / p["seconds"] for o, p in zip(runs["ours"], runs["plain"], strict=True)
    )
    return results


def table(results: dict, rounds: int, steps: int) -> str:
    lines = [f"The reproduction's training with its evaluation, {steps} steps "
             f"({steps / EPOCH_STEPS:.2f} epochs), median of {rounds} rounds, "
             f"{results['ours']['threads']} torch threads"]  # fmt: skip
    lines += [f"{mode:<8}{results[mode]['seconds']:>8.1f} s" for mode in MODES]
    lines.append(f"ratio (ours / plain): {results['ratio']:.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    benchmark_main(argv, __doc__, MODES, EPOCH_STEPS, 5, measure, benchmark, table,
                   threads=lambda results: results["ours"]["threads"])  # fmt: skip


if __name__ == "__main__":
    main()
