"""Training throughput of the NumPy LeNet against the identical network in PyTorch (CPU, eager).

Run from the repository root::

    python benchmarks/bench_lenet.py            # table (make bench)
    python benchmarks/bench_lenet.py --json     # one JSON object
    python benchmarks/bench_lenet.py --record benchmarks/bench_lenet.json  # table, and saved

Each measurement is one training run (forward, loss, backward, SGD step) in a fresh subprocess,
over batches pre-sampled in memory (synthetic uint8 images, already converted to each framework's
input layout), after warm-up steps that are not timed. PyTorch gets as many threads as NumPy's
BLAS has (read with threadpoolctl). These machines are noisy, so NumPy and PyTorch alternate
over ``--rounds`` rounds; reported are the median images/s of each and the median of the
per-round NumPy/PyTorch ratios. Both sides run with glibc's malloc thresholds fixed, as the PyTorch
training runs (``fashion_mnist.memory``); with glibc's defaults PyTorch faults its freed buffers
back in every step.

:func:`torch_lenet` builds the PyTorch twin from a NumPy model's weights; the tests use it to
prove both compute the same function, so this benchmark compares like with like.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from fashion_mnist.memory import MALLOC_THRESHOLDS
from fashion_mnist.results import import_model_module
from fashion_mnist.runlog import benchmark_options, blas_threads, run_benchmark

nc = import_model_module("cnn-by-myself", "numpy_cnn")

BATCH_SIZES = (64, 128, 256)
DISTINCT_BATCHES = 16  # cycled through; enough that no single batch sits in cache
LR = 0.01


def torch_lenet(model: nc.Sequential):
    """The PyTorch twin of ``model`` (a :func:`numpy_cnn.build_lenet` network), same weights."""
    import torch
    from torch import nn

    p, b = model.params(), model.buffers()
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32

    def conv(name, in_c, out_c, padding):
        layer = nn.Conv2d(in_c, out_c, 5, padding=padding)
        layer.weight.data = torch.tensor(p[f"{name}_weights"])
        layer.bias.data = torch.tensor(p[f"{name}_bias"][:, 0])
        return layer

    def bn(name, channels):
        layer = nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)  # = our momentum 0.9
        layer.weight.data = torch.tensor(p[f"{name}_gamma"])
        layer.bias.data = torch.tensor(p[f"{name}_beta"])
        layer.running_mean.data = torch.tensor(b[f"{name}_running_mean"])
        layer.running_var.data = torch.tensor(b[f"{name}_running_var"])
        return layer

    def linear(name):
        w = p[f"{name}_weights"]  # (in, out)
        layer = nn.Linear(*w.shape)
        layer.weight.data = torch.tensor(w.T.copy())
        layer.bias.data = torch.tensor(p[f"{name}_bias"])
        return layer

    net = nn.Sequential(
        conv("conv1", 1, 6, 2), bn("bn1", 6), nn.ReLU(), nn.MaxPool2d(2),
        conv("conv2", 6, 16, 0), bn("bn2", 16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        linear("fc1"), nn.ReLU(), linear("fc2"), nn.ReLU(), linear("fc3"),
    )
    return net.to(dtype)


def synthetic_batches(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (DISTINCT_BATCHES, batch, 784), dtype=np.uint8)
    labels = rng.integers(0, nc.NUM_CLASSES, (DISTINCT_BATCHES, batch))
    return images, labels


def images_per_second(step, batch: int, steps: int, warmup: int) -> float:
    """Run ``step(i)`` ``warmup`` times untimed, then ``steps`` times timed."""
    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    return batch * steps / (time.perf_counter() - start)


def measure_numpy(batch: int, steps: int, warmup: int) -> float:
    images, labels = synthetic_batches(batch)
    inputs = [nc.to_input(x) for x in images]  # (1, 28, 28, N) float32
    model = nc.build_lenet()
    optimizer = nc.SGD(model.params(), LR, momentum=0.9)
    loss_fn = nc.SoftmaxCrossEntropy()

    def step(i):
        k = i % DISTINCT_BATCHES
        loss_fn.forward(model.forward(inputs[k], train=True), labels[k])
        model.backward(loss_fn.backward())
        optimizer.step(model.grads())

    return images_per_second(step, batch, steps, warmup)


def measure_torch(batch: int, steps: int, warmup: int) -> float:
    threads = blas_threads()
    import torch

    torch.set_num_threads(threads)
    images, labels = synthetic_batches(batch)
    inputs = [torch.tensor(x.reshape(-1, 1, 28, 28) / np.float32(255)) for x in images]
    targets = [torch.tensor(y) for y in labels]
    net = torch_lenet(nc.build_lenet())
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(i):
        k = i % DISTINCT_BATCHES
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(inputs[k]), targets[k]).backward()
        optimizer.step()

    return images_per_second(step, batch, steps, warmup)


def run_worker(impl: str, batch: int, steps: int, warmup: int) -> float:
    """One measurement in a fresh Python process; returns images/s."""
    cmd = [sys.executable, __file__, "--worker", impl, "--batch-sizes", str(batch),
           "--steps", str(steps), "--warmup", str(warmup)]
    # glibc's malloc as the PyTorch training has it (keep_freed_memory), the same for both sides
    env = {**os.environ, **{name: str(value) for name, value in MALLOC_THRESHOLDS.items()}}
    # stdout carries the result; a failing worker's traceback goes straight to the terminal
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return float(out.strip().splitlines()[-1])


def benchmark(batch_sizes, rounds: int, steps: int, warmup: int) -> dict:
    per_round = {b: {"numpy": [], "torch": []} for b in batch_sizes}
    for r in range(rounds):
        order = ("numpy", "torch") if r % 2 == 0 else ("torch", "numpy")
        for b in batch_sizes:
            for impl in order:
                per_round[b][impl].append(run_worker(impl, b, steps, warmup))
    results = {}
    for b, runs in per_round.items():
        ratios = [n / t for n, t in zip(runs["numpy"], runs["torch"], strict=True)]
        results[str(b)] = {
            "numpy_images_per_s": statistics.median(runs["numpy"]),
            "torch_images_per_s": statistics.median(runs["torch"]),
            "ratio": statistics.median(ratios),
        }
    return results


def table(results: dict, rounds: int, steps: int) -> str:
    lines = [f"LeNet training throughput, median of {rounds} rounds x {steps} steps, "
             f"{blas_threads()} BLAS/torch threads",
             f"{'batch':>5}  {'NumPy img/s':>12}  {'PyTorch img/s':>13}  {'ratio':>6}"]
    for b, r in results.items():
        lines.append(f"{b:>5}  {r['numpy_images_per_s']:>12,.0f}  "
                     f"{r['torch_images_per_s']:>13,.0f}  {r['ratio']:>6.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    benchmark_options(parser, steps=300, warmup=20)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--worker", choices=("numpy", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        measure = measure_numpy if args.worker == "numpy" else measure_torch
        print(measure(args.batch_sizes[0], args.steps, args.warmup))
        return
    run_benchmark(
        args,
        lambda: benchmark(args.batch_sizes, args.rounds, args.steps, args.warmup),
        lambda results: table(results, args.rounds, args.steps),
        threads=lambda _: blas_threads(),  # NumPy's BLAS, and torch is given as many
    )


if __name__ == "__main__":
    main()
