"""Would a leaner lowering of conv2 make the NumPy LeNet's training step faster?

Run from the repository root (``make -C experiments lowering`` records it)::

    python experiments/conv_lowering/bench_lowering.py            # table
    python experiments/conv_lowering/bench_lowering.py --record experiments/conv_lowering/bench_lowering.json

The model's ``Conv2D`` lowers its input with im2col: every k x k patch copied into a column,
``(C*k*k, Ho*Wo*N)``, which is 7.7 MB for conv2 at batch 128, and its input gradient is that
matrix's gradient added back patch by patch (col2im: k*k = 25 slice additions). Lowering along
the width only (the memory-efficient convolution, MEC: Cho and Brand, ICML 2017) copies k shifted
copies of each row instead, ``(C*k, H, Wo*N)``, 2.1 MB: the k kernel rows then read overlapping
row ranges of that one matrix (views, no copy), one GEMM each. The input gradient lowers the
output gradient the same way (with the kernel flipped along the width) and needs k additions.

Modes, each run as conv2 of the real training step (the model's other layers unchanged):
``im2col`` the model as it is; ``mec`` conv2 lowered along the width in forward and backward;
``hybrid`` the model's forward and weight gradient (from the im2col columns it keeps) with the
MEC input gradient. Each worker checks its layer against the model's on one batch first.
Measured per batch size in a fresh process: the whole step (forward, loss, backward, SGD) and
conv2's forward and backward inside it, in ms; the modes alternate over ``--rounds`` rounds and
the medians are reported, with the median per-round speed-up of the step over ``im2col`` and
the range of those speed-ups.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

sys.path[:0] = [str(Path(__file__).resolve().parents[2])]

from fashion_mnist.memory import with_malloc_settings  # noqa: E402
from fashion_mnist.results import import_model_module  # noqa: E402
from fashion_mnist.runlog import alternate, benchmark_main, blas_threads, cpu, worker_result  # noqa: E402

nc = import_model_module("cnn-by-myself", "numpy_cnn")
bench_lenet = import_model_module("benchmarks", "bench_lenet")  # its NumPy set-up, shared

MODES = ("im2col", "mec", "hybrid")
BATCH_SIZES = (64, 128)
CONV2 = 4  # conv2's position in build_lenet's layers
TIMED = ("step", "conv2_forward", "conv2_backward")


def padded(x: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``(C, H, W, N)`` with ``rows`` zeros above and below, ``columns`` left and right."""
    C, H, W, N = x.shape
    xp = np.zeros((C, H + 2 * rows, W + 2 * columns, N), dtype=x.dtype)
    xp[:, rows:rows + H, columns:columns + W, :] = x
    return xp


def lower_width(x: np.ndarray, k: int, flipped: bool = False) -> np.ndarray:
    """``(C, H, W, N) -> (C*k, H, Wo*N)``: row j of channel c holds ``x[c, :, j:j+Wo, :]``
    (with ``flipped``, ``x[c, :, k-1-j:k-1-j+Wo, :]``), Wo = W - k + 1. One copy."""
    C, H, W, N = x.shape
    sc, sh, sw, sn = x.strides
    start, step = (x[:, :, k - 1:], -sw) if flipped else (x, sw)
    view = as_strided(start, shape=(C, k, H, W - k + 1, N), strides=(sc, step, sh, sw, sn),
                      writeable=False)  # fmt: skip
    return view.reshape(C * k, H, -1)


def mec_input_grad(conv: nc.Conv2D, dout: np.ndarray, input_shape: tuple) -> np.ndarray:
    """dx of a stride-1 convolution: a full convolution of dout with the flipped kernel, the
    output gradient lowered along the width and one GEMM for all k kernel rows, then k shifted
    additions (instead of col2im's k*k)."""
    C, H, W, N = input_shape
    F, Ho, Wo, _ = dout.shape
    k, p = conv.k, conv.padding
    lowered = lower_width(padded(dout, 0, k - 1), k, flipped=True)  # (F*k, Ho, (W+2p)*N)
    # rows (i, c), columns (f, j): the weights each kernel row i sends back to input channel c
    w = conv.params["weights"].transpose(2, 1, 0, 3).reshape(k * C, F * k)
    parts = (w @ lowered.reshape(F * k, -1)).reshape(k, C, Ho, -1)  # (k, C, Ho, (W+2p)*N)
    dxp = np.zeros((C, H + 2 * p, (W + 2 * p) * N), dtype=dout.dtype)
    for i in range(k):
        dxp[:, i:i + Ho] += parts[i]
    return dxp.reshape(C, H + 2 * p, W + 2 * p, N)[:, p:p + H, p:p + W, :]


class MECConv2D(nc.Conv2D):
    """conv2 lowered along the width (stride 1): forward, weight gradient and input gradient."""

    def forward(self, x, train=True):
        F, k = self.out_channels, self.k
        lowered = lower_width(padded(x, self.padding, self.padding), k)  # (C*k, H + 2p, Wo*N)
        Ho = lowered.shape[1] - k + 1
        rows = [self.params["weights"][:, :, i, :].reshape(F, -1) for i in range(k)]  # (F, C*k)
        out = rows[0] @ lowered[:, 0:Ho].reshape(lowered.shape[0], -1)
        for i in range(1, k):  # kernel row i reads the lowered rows i .. i+Ho-1: a view
            out += rows[i] @ lowered[:, i:i + Ho].reshape(lowered.shape[0], -1)
        out += self.params["bias"]
        self.cache = (x.shape, lowered)
        return out.reshape(F, Ho, -1, x.shape[-1])

    def backward(self, dout):
        input_shape, lowered = self.cache
        F, Ho, _, _ = dout.shape
        C, k = self.in_channels, self.k
        d2 = dout.reshape(F, -1)
        dw = np.empty((C, k, k, F), dtype=dout.dtype)
        for i in range(k):
            dw[:, i] = (lowered[:, i:i + Ho].reshape(C * k, -1) @ d2.T).reshape(C, k, F)
        self.grads["weights"] = dw.transpose(3, 0, 1, 2).copy()  # (F, C, k, k)
        self.grads["bias"] = nc.channel_sum(dout).astype(dout.dtype).reshape(F, 1)
        return mec_input_grad(self, dout, input_shape)


class HybridConv2D(nc.Conv2D):
    """The model's forward and weight gradient, the MEC input gradient."""

    def __init__(self, *args, **kwargs):
        # without the input gradient, the model's backward stops after dW and db
        super().__init__(*args, **kwargs, input_grad=False)

    def backward(self, dout):
        input_shape = self.cache[0]
        super().backward(dout)
        return mec_input_grad(self, dout, input_shape)


def conv2_as(mode: str, model: nc.Sequential) -> nc.Conv2D:
    """The model's conv2, or a MEC / hybrid layer holding the same parameter arrays."""
    conv = model.layers[CONV2]
    if mode == "im2col":
        return conv
    if conv.stride != 1:
        raise ValueError(f"{conv.name}: MEC lowering is written for stride 1, not {conv.stride}")
    variant = {"mec": MECConv2D, "hybrid": HybridConv2D}[mode](
        conv.in_channels, conv.out_channels, conv.k, conv.stride, conv.padding, name=conv.name)
    variant.params = conv.params
    return variant


def check_against_model(conv: nc.Conv2D, model_conv: nc.Conv2D, batch: int) -> None:
    """Raise unless ``conv`` computes the model's output and gradients (float32 round-off)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((conv.in_channels, 14, 14, batch)).astype(np.float32)
    dout = rng.standard_normal((conv.out_channels, 10, 10, batch)).astype(np.float32)
    results = []
    for layer in (model_conv, conv):
        out = layer.forward(x)
        dx = layer.backward(dout)
        results.append((out, dx, layer.grads["weights"], layer.grads["bias"]))
    for name, ours, model in zip(("output", "dx", "dW", "db"), *results, strict=True):
        if not np.allclose(ours, model, rtol=1e-4, atol=1e-3):
            raise AssertionError(f"{type(conv).__name__}: {name} differs from the model's Conv2D "
                                 f"by {np.abs(ours - model).max():.3g}")


def train_step(model, loss_fn, optimizer, x, labels, seconds: dict) -> None:
    """One training step, its time and conv2's forward and backward times added to ``seconds``."""
    conv2 = model.layers[CONV2]
    began = time.perf_counter()
    for layer in model.layers:
        tic = time.perf_counter()
        x = layer.forward(x, True)
        if layer is conv2:
            seconds["conv2_forward"] += time.perf_counter() - tic
    loss_fn.forward(x, labels)
    dout = loss_fn.backward()
    for layer in reversed(model.layers):
        tic = time.perf_counter()
        dout = layer.backward(dout)
        if layer is conv2:
            seconds["conv2_backward"] += time.perf_counter() - tic
    optimizer.step(model.grads())
    seconds["step"] += time.perf_counter() - began


def measure(mode: str, steps: int, warmup: int) -> dict:
    """Per batch size: the training step, conv2's forward and backward, ms per step."""
    results = {}
    for batch in BATCH_SIZES:
        inputs, labels, model, optimizer, loss_fn = bench_lenet.numpy_setup(batch)
        # the variant holds the model's parameter arrays, which the optimizer updates
        model.layers[CONV2] = conv2_as(mode, model)
        check_against_model(model.layers[CONV2], nc.build_lenet().layers[CONV2], batch)
        for i in range(warmup + steps):
            if i in (0, warmup):  # warm-up steps fill a dict that is dropped
                seconds = dict.fromkeys(TIMED, 0.0)
            k = i % bench_lenet.DISTINCT_BATCHES
            train_step(model, loss_fn, optimizer, inputs[k], labels[k], seconds)
        results[str(batch)] = {key: 1e3 * value / steps for key, value in seconds.items()}
    return results


def run_worker(mode: str, steps: int, warmup: int) -> dict:
    """One measurement in a fresh process, glibc's malloc set as in benchmarks/bench_lenet.py."""
    cmd = [sys.executable, __file__, "--worker", mode, "--steps", str(steps), "--warmup", str(warmup)]
    return worker_result(cmd, with_malloc_settings(os.environ))


def benchmark(rounds: int, steps: int, warmup: int) -> dict:
    runs = alternate(MODES, rounds, lambda mode: run_worker(mode, steps, warmup))
    results = {"cpu": cpu(), "batches": {}}
    for batch in map(str, BATCH_SIZES):
        row = {mode: {key: statistics.median(run[batch][key] for run in runs[mode]) for key in TIMED}
               for mode in MODES}  # fmt: skip
        for mode in MODES:  # the step's speed-up over the model as it is, round by round
            speedups = [base[batch]["step"] / run[batch]["step"]
                        for base, run in zip(runs["im2col"], runs[mode], strict=True)]
            row[mode]["speedup"] = statistics.median(speedups)
            row[mode]["speedup_range"] = [min(speedups), max(speedups)]
        results["batches"][batch] = row
    return results


def table(results: dict, rounds: int, steps: int) -> str:
    lines = [f"NumPy LeNet training step by how conv2 is lowered, on {results['cpu']}, median of "
             f"{rounds} rounds x {steps} steps, {blas_threads()} BLAS threads",
             f"{'batch':>5}  {'mode':<7} {'conv2 fwd':>9} {'bwd':>6} {'step ms':>8} {'speed-up':>9}  {'rounds':>11}"]
    for batch, row in results["batches"].items():
        for mode, r in row.items():
            lines.append(f"{batch:>5}  {mode:<7} {r['conv2_forward']:>9.2f} {r['conv2_backward']:>6.2f} "
                         f"{r['step']:>8.2f} {r['speedup']:>9.3f}  "
                         f"{r['speedup_range'][0]:.2f}-{r['speedup_range'][1]:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    benchmark_main(None, __doc__, MODES, 300, 20, measure, benchmark, table,
                   threads=lambda _: blas_threads())
