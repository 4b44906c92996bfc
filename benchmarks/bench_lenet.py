"""Training throughput of the NumPy LeNet against the identical network in PyTorch (CPU, eager).

Run from the repository root::

    python benchmarks/bench_lenet.py            # table (make bench)
    python benchmarks/bench_lenet.py --json     # one JSON object
    python benchmarks/bench_lenet.py --record benchmarks/bench_lenet.json  # table, and saved
    python benchmarks/bench_lenet.py --profile --record benchmarks/bench_layers.json  # per layer
    python benchmarks/bench_lenet.py --plot benchmarks/bench_layers.json OUT.png  # its figure

Each measurement is one training run (forward, loss, backward, SGD step) in a fresh subprocess,
over batches pre-sampled in memory (synthetic uint8 images, already converted to each framework's
input layout), after warm-up steps that are not timed. PyTorch gets as many threads as NumPy's
BLAS has (read with threadpoolctl). These machines are noisy, so NumPy and PyTorch alternate
over ``--rounds`` rounds; reported are the median images/s of each and the median of the
per-round NumPy/PyTorch ratios. Both sides run with glibc's malloc thresholds fixed, as the PyTorch
training runs (``fashion_mnist.memory``); with glibc's defaults PyTorch faults its freed buffers
back in every step. Every result names the CPU it was measured on.

``--profile`` times each layer's forward and backward on their own instead (ms per step, batch
128 unless one ``--batch-sizes`` is given), NumPy beside PyTorch, grouped as :data:`GROUPS`
says: ``relu1/pool1`` is the ReLU and the max-pool after bn1 (in whichever order a version of
the NumPy model has them), ``fc1`` is the Flatten, fc1 and its ReLU, ``fc2`` fc2 and its ReLU;
``loss`` is softmax cross-entropy, ``sgd`` the optimizer step. PyTorch's layers run one at a
time, each on a detached view of its input, so each pays an autograd call of its own: its column
adds up to a little more than a whole PyTorch step. ``--plot JSON PNG`` draws a recorded profile
(:func:`fashion_mnist.plots.plot_layer_profile`, which the report calls too).

:func:`torch_lenet` builds the PyTorch twin from a NumPy model's weights; the tests use it to
prove both compute the same function, so this benchmark compares like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from functools import partial

import numpy as np

from fashion_mnist.files import read_json
from fashion_mnist.memory import with_malloc_settings
from fashion_mnist.results import import_model_module
from fashion_mnist.runlog import (
    alternate,
    benchmark_options,
    blas_threads,
    cpu,
    run_benchmark,
)

nc = import_model_module("cnn-by-myself", "numpy_cnn")

BATCH_SIZES = (64, 128, 256)
DISTINCT_BATCHES = 16  # cycled through; enough that no single batch sits in cache
LR = 0.01
PROFILE_BATCH = 128
IMPLS = ("numpy", "torch")
PHASES = ("forward", "backward")
# The profile's row of each of the 14 layers of build_lenet (and of its PyTorch twin), by position.
GROUPS = ("conv1", "bn1", "relu1/pool1", "relu1/pool1", "conv2", "bn2", "relu2/pool2",
          "relu2/pool2", "fc1", "fc1", "fc1", "fc2", "fc2", "fc3")
ROWS = (*dict.fromkeys(GROUPS), "loss", "sgd")


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


def numpy_setup(batch: int):
    """Pre-sampled inputs and labels, the model, its optimizer and loss, for a NumPy step."""
    images, labels = synthetic_batches(batch)
    inputs = [nc.to_input(x) for x in images]  # (1, 28, 28, N) float32
    model = nc.build_lenet()
    return inputs, labels, model, nc.SGD(model.params(), LR, momentum=0.9), nc.SoftmaxCrossEntropy()


def torch_setup(batch: int):
    """The same for the PyTorch twin, given as many threads as NumPy's BLAS has."""
    threads = blas_threads()
    import torch

    torch.set_num_threads(threads)
    images, labels = synthetic_batches(batch)
    inputs = [torch.tensor(x.reshape(-1, 1, 28, 28) / np.float32(255)) for x in images]
    targets = [torch.tensor(y) for y in labels]
    net = torch_lenet(nc.build_lenet())
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    return inputs, targets, net, optimizer, torch.nn.CrossEntropyLoss()


def measure_numpy(batch: int, steps: int, warmup: int) -> float:
    inputs, labels, model, optimizer, loss_fn = numpy_setup(batch)

    def step(i):
        k = i % DISTINCT_BATCHES
        loss_fn.forward(model.forward(inputs[k], train=True), labels[k])
        model.backward(loss_fn.backward())
        optimizer.step(model.grads())

    return images_per_second(step, batch, steps, warmup)


def measure_torch(batch: int, steps: int, warmup: int) -> float:
    inputs, targets, net, optimizer, loss_fn = torch_setup(batch)

    def step(i):
        k = i % DISTINCT_BATCHES
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(inputs[k]), targets[k]).backward()
        optimizer.step()

    return images_per_second(step, batch, steps, warmup)


def run_worker(impl: str, batch: int, steps: int, warmup: int, profile: bool = False):
    """One measurement in a fresh Python process: images/s, or the profile's dict."""
    cmd = [sys.executable, __file__, "--worker", impl, "--batch-sizes", str(batch),
           "--steps", str(steps), "--warmup", str(warmup), *(["--profile"] if profile else [])]
    # glibc's malloc as the PyTorch training has it (keep_freed_memory), the same for both sides
    env = with_malloc_settings(os.environ)
    # stdout carries the result; a failing worker's traceback goes straight to the terminal
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def benchmark(batch_sizes, rounds: int, steps: int, warmup: int) -> dict:
    """Each batch size's medians over ``rounds`` alternating rounds (:func:`runlog.alternate`)."""
    processor = cpu()
    results = {}
    for b in batch_sizes:
        runs = alternate(IMPLS, rounds, partial(run_worker, batch=b, steps=steps, warmup=warmup))
        ratios = [n / t for n, t in zip(runs["numpy"], runs["torch"], strict=True)]
        results[str(b)] = {
            "numpy_images_per_s": statistics.median(runs["numpy"]),
            "torch_images_per_s": statistics.median(runs["torch"]),
            "ratio": statistics.median(ratios),
            "cpu": processor,
        }
    return results


def table(results: dict, rounds: int, steps: int) -> str:
    cpu = next(iter(results.values()))["cpu"]
    lines = [f"LeNet training throughput on {cpu}, median of {rounds} rounds x {steps} steps, "
             f"{blas_threads()} BLAS/torch threads",
             f"{'batch':>5}  {'NumPy img/s':>12}  {'PyTorch img/s':>13}  {'ratio':>6}"]
    for b, r in results.items():
        lines.append(f"{b:>5}  {r['numpy_images_per_s']:>12,.0f}  "
                     f"{r['torch_images_per_s']:>13,.0f}  {r['ratio']:>6.2f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Per-layer profile
# --------------------------------------------------------------------------------------------


class Stopwatch:
    """Seconds spent per (row, phase), counted only while ``on`` (not in warm-up steps)."""

    def __init__(self) -> None:
        self.seconds = defaultdict(float)
        self.on = False

    def time(self, row: str, phase: str, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        if self.on:
            self.seconds[row, phase] += time.perf_counter() - start
        return result


def ms_per_step(step, steps: int, warmup: int) -> dict:
    """Run ``step(i, watch)`` ``warmup`` times untimed, then ``steps`` times timed; each row's
    forward and backward in ms per step."""
    watch = Stopwatch()
    for i in range(warmup + steps):
        watch.on = i >= warmup
        step(i, watch)
    return {row: {phase: 1e3 * watch.seconds[row, phase] / steps for phase in PHASES}
            for row in ROWS}


def profile_numpy(batch: int, steps: int, warmup: int) -> dict:
    inputs, labels, model, optimizer, loss_fn = numpy_setup(batch)

    def step(i, watch):
        k = i % DISTINCT_BATCHES
        x = inputs[k]
        for layer, row in zip(model.layers, GROUPS, strict=True):
            x = watch.time(row, "forward", layer.forward, x, True)
        watch.time("loss", "forward", loss_fn.forward, x, labels[k])
        dout = watch.time("loss", "backward", loss_fn.backward)
        for layer, row in zip(reversed(model.layers), reversed(GROUPS), strict=True):
            dout = watch.time(row, "backward", layer.backward, dout)
        watch.time("sgd", "backward", optimizer.step, model.grads())

    return ms_per_step(step, steps, warmup)


def profile_torch(batch: int, steps: int, warmup: int) -> dict:
    inputs, targets, net, optimizer, loss_fn = torch_setup(batch)

    def step(i, watch):
        k = i % DISTINCT_BATCHES
        optimizer.zero_grad(set_to_none=True)
        x, pairs = inputs[k], []
        for j, (layer, row) in enumerate(zip(net, GROUPS, strict=True)):
            x_in = x.detach().requires_grad_(j > 0)  # the images need no gradient
            x = watch.time(row, "forward", layer, x_in)
            pairs.append((x_in, x))
        logits = x.detach().requires_grad_(True)
        loss = watch.time("loss", "forward", loss_fn, logits, targets[k])
        watch.time("loss", "backward", loss.backward)
        grad = logits.grad
        for (x_in, out), row in zip(reversed(pairs), reversed(GROUPS), strict=True):
            watch.time(row, "backward", out.backward, grad)
            grad = x_in.grad
        watch.time("sgd", "backward", optimizer.step)

    return ms_per_step(step, steps, warmup)


def profile(batch: int, rounds: int, steps: int, warmup: int) -> dict:
    """Median ms per step of each row and phase over ``rounds`` alternating fresh processes."""
    runs = alternate(IMPLS, rounds, lambda impl: run_worker(impl, batch, steps, warmup, True))
    layers = {row: {impl: {phase: statistics.median(r[row][phase] for r in runs[impl])
                           for phase in PHASES} for impl in IMPLS} for row in ROWS}
    return {"batch": batch, "unit": "ms per step", "cpu": cpu(), "layers": layers}


def profile_table(results: dict) -> str:
    lines = [f"ms per training step by layer, batch {results['batch']}, on {results['cpu']}",
             f"{'layer':<12} {'NumPy fwd':>9} {'bwd':>6}   {'PyTorch fwd':>11} {'bwd':>6}"]
    totals = dict.fromkeys(IMPLS, 0.0)
    for row, r in results["layers"].items():
        numpy_cells = f"{r['numpy']['forward']:>9.2f} {r['numpy']['backward']:>6.2f}"
        torch_cells = f"{r['torch']['forward']:>11.2f} {r['torch']['backward']:>6.2f}"
        lines.append(f"{row:<12} {numpy_cells}   {torch_cells}")
        for impl in IMPLS:
            totals[impl] += sum(r[impl].values())
    lines.append(f"{'total':<12} {totals['numpy']:>16.2f}   {totals['torch']:>18.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    benchmark_options(parser, steps=300, warmup=20)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help=f"default {' '.join(map(str, BATCH_SIZES))}; with --profile "
                             f"{PROFILE_BATCH}")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="time each layer instead")
    parser.add_argument("--plot", nargs=2, metavar=("JSON", "PNG"),
                        help="draw a recorded profile, measuring nothing")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plot:
        from fashion_mnist import plots  # matplotlib only here, not in the timed workers

        json_path, png = args.plot
        plots.plot_layer_profile(read_json(json_path), png)
        return
    batch_sizes = args.batch_sizes or ([PROFILE_BATCH] if args.profile else list(BATCH_SIZES))
    if args.profile and len(batch_sizes) != 1:
        parser.error("--profile measures one batch size")
    if args.worker:
        if args.profile:
            measure = profile_numpy if args.worker == "numpy" else profile_torch
        else:
            measure = measure_numpy if args.worker == "numpy" else measure_torch
        print(json.dumps(measure(batch_sizes[0], args.steps, args.warmup)))
        return
    if args.profile:
        run_benchmark(args, lambda: profile(batch_sizes[0], args.rounds, args.steps, args.warmup),
                      profile_table, threads=lambda _: blas_threads())  # fmt: skip
        return
    run_benchmark(
        args,
        lambda: benchmark(batch_sizes, args.rounds, args.steps, args.warmup),
        lambda results: table(results, args.rounds, args.steps),
        threads=lambda _: blas_threads(),  # NumPy's BLAS, and torch is given as many
    )


if __name__ == "__main__":
    main()
