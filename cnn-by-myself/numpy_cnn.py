"""A LeNet-like CNN written from scratch in NumPy: the model, its summary, inference, what it
learned (its features, feature maps and saliency), loading.

The reading path: ``layers.py`` (each layer's forward and backward, and the loss), this file
(the network built from them), ``training.py`` (SGD, the run's configuration, checkpoints and
the training loop). Every name of all three is importable from here: ``numpy_cnn.Conv2D``,
``numpy_cnn.train``, ``numpy_cnn.TUNED``. ``gradcheck.py`` checks the gradients and
``reference_layers.py`` holds naive loop versions of the convolution and the max-pool.

Layout: activations are stored as ``(C, H, W, N)``, the batch innermost. This is the one choice
that makes plain NumPy fast:

* im2col becomes a single strided copy: the patch at (c, i, j) for every output pixel and image
  is a regular stride pattern over the padded input, so ``as_strided`` describes all patches
  as a ``(C, k, k, Ho, Wo, N)`` view and one ``reshape`` copies it into the ``(C*k*k, Ho*Wo*N)``
  column matrix;
* a convolution is then one GEMM, ``(F, C*k*k) @ (C*k*k, Ho*Wo*N) -> (F, Ho, Wo, N)``, which is
  already the next layer's layout: no transposes anywhere in the network. (conv1's is done a
  band of output rows at a time, for OpenBLAS's faster path for small products: see
  ``layers.SMALL_GEMM``.)
* per-channel reductions (biases, batch norm) are over one contiguous ``(C, H*W*N)`` view.

Images enter as the dataset's uint8 ``(N, 784)`` rows and are turned into ``(1, 28, 28, N)``
floats once per batch (:func:`to_input`); the logits leave as ``(10, N)``.

Checkpoints keep the original report's key names and layouts (conv weights ``(out, in, k, k)``,
conv bias ``(out, 1)``, fully connected weights ``(in, out)``) plus what it lacked: batch-norm
running statistics, the optimizer's momentum buffers, the step, the RNG state and the config.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from layers import (
    IMAGE_SIDE,
    NUM_CLASSES,
    SMALL_GEMM,
    BatchNorm2D,
    Conv2D,
    Flatten,
    Layer,
    Linear,
    MaxPool2D,
    ReLU,
    SoftmaxCrossEntropy,
    channel_sum,
    softmax,
    to_input,
)
from training import (
    ORIGINAL,
    SCHEDULES,
    SGD,
    TUNED,
    TrainConfig,
    augment,
    checkpoint_step,
    learning_rate,
    list_checkpoints,
    random_translate,
    read_npz,
    save_checkpoint,
    train,
)

__all__ = [
    "IMAGE_SIDE", "NUM_CLASSES", "SMALL_GEMM", "BatchNorm2D", "Conv2D", "Flatten", "Layer",
    "Linear", "MaxPool2D", "ReLU", "SoftmaxCrossEntropy", "channel_sum", "softmax", "to_input",
    "ORIGINAL", "SCHEDULES", "SGD", "TUNED", "TrainConfig", "augment", "checkpoint_step",
    "learning_rate", "list_checkpoints", "random_translate", "read_npz", "save_checkpoint",
    "train", "Sequential", "build_lenet", "summary_rows", "summary", "count_params",
    "predict_proba", "evaluate", "calibrate_batchnorm", "load", "features", "feature_maps",
    "saliency",
]


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


def _same_up_to_singletons(found: tuple, expected: tuple) -> bool:
    """Whether an array of shape ``found`` is one of shape ``expected`` with singleton axes added
    or removed (same size, same non-singleton axes in the same order)."""
    def core(shape):
        return [d for d in shape if d != 1]

    return math.prod(found) == math.prod(expected) and core(found) == core(expected)


class Sequential:
    """Layers applied in order; parameters are addressed by checkpoint keys like ``conv1_bias``."""

    def __init__(self, layers: list[Layer]):
        self.layers = layers

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def _collect(self, attr: str) -> dict[str, np.ndarray]:
        return {f"{layer.name}_{key}": value
                for layer in self.layers for key, value in getattr(layer, attr).items()}

    def params(self) -> dict[str, np.ndarray]:
        """The live parameter arrays (updating them in place updates the model)."""
        return self._collect("params")

    def grads(self) -> dict[str, np.ndarray]:
        return self._collect("grads")

    def buffers(self) -> dict[str, np.ndarray]:
        return self._collect("buffers")

    def state(self) -> dict[str, np.ndarray]:
        return {**self.params(), **self.buffers()}

    def load_state(self, arrays, keys=None, source="state") -> None:
        """Copy ``arrays[key]`` into the model for every key (default: all of them).

        A value may carry extra singleton axes, as the original's files do (batch-norm
        ``(1, C, 1, 1)``, fully connected bias ``(1, out)``); its dtype is cast to the model's.
        A missing key, or a shape that is no such layout of the expected one, raises an error
        naming the source, the key and both shapes.
        """
        targets = self.state()
        for key in keys if keys is not None else targets:
            target = targets[key]
            if key not in arrays:
                raise KeyError(f"{source}: missing key {key!r} (expected shape {target.shape})")
            value = np.asarray(arrays[key])
            if not _same_up_to_singletons(value.shape, target.shape):
                raise ValueError(f"{source}: key {key!r} has shape {value.shape}, "
                                 f"expected {target.shape}")
            target[...] = value.reshape(target.shape)

    @property
    def dtype(self):
        return next(iter(self.params().values())).dtype


def build_lenet(seed: int = 0, dtype=np.float32) -> Sequential:
    """The original's LeNet-like network (61,750 parameters), He-initialised from ``seed``."""
    rng = np.random.default_rng(seed)
    return Sequential([
        Conv2D(1, 6, 5, padding=2, name="conv1", rng=rng, dtype=dtype, input_grad=False),
        BatchNorm2D(6, name="bn1", dtype=dtype),
        # Max-pool, then ReLU: the original's ReLU-then-pool, computed exactly. Both maps are
        # monotone non-decreasing, so max(relu(x)) == relu(max(x)) for every window, and the
        # gradient takes the same path (the window's first maximum, if it is positive). In this
        # order ReLU touches a quarter of the values.
        MaxPool2D(2),
        ReLU(),
        Conv2D(6, 16, 5, name="conv2", rng=rng, dtype=dtype),
        BatchNorm2D(16, name="bn2", dtype=dtype),
        MaxPool2D(2),  # then ReLU, as after bn1
        ReLU(),
        Flatten(),
        Linear(400, 120, name="fc1", rng=rng, dtype=dtype),
        ReLU(),
        Linear(120, 84, name="fc2", rng=rng, dtype=dtype),
        ReLU(),
        Linear(84, NUM_CLASSES, name="fc3", rng=rng, dtype=dtype),
    ])


def summary_rows(model: Sequential, input_shape=(1, IMAGE_SIDE, IMAGE_SIDE)) -> list[dict]:
    """One row per layer (name, output shape, parameters), computed by running a dummy image."""
    x = np.zeros((*input_shape, 1), dtype=model.dtype)
    rows = []
    for layer in model.layers:
        x = layer.forward(x, train=False)
        rows.append({"layer": layer.describe(), "output": str(x.shape[:-1]),
                     "params": sum(p.size for p in layer.params.values())})
    return rows


def summary(model: Sequential, input_shape=(1, IMAGE_SIDE, IMAGE_SIDE)) -> str:
    """The original's layer table: layer, output shape, parameters, and the total."""
    rows = [("Layer", "Output", "Params")]
    rows += [(r["layer"], r["output"], f"{r['params']:,}") for r in summary_rows(model, input_shape)]
    rows.append(("Total", "", f"{count_params(model):,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(-1, "-" * len(lines[0]))
    return "\n".join(lines)


def count_params(model: Sequential) -> int:
    return sum(p.size for p in model.params().values())


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------


def predict_proba(model: Sequential, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities ``(N, 10)`` for uint8 ``(N, 784)`` images, in eval mode."""
    out = np.empty((images.shape[0], NUM_CLASSES), dtype=model.dtype)
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size]
        logits = model.forward(to_input(batch, model.dtype), train=False)
        out[start:start + batch.shape[0]] = softmax(logits).T
    return out


def evaluate(model: Sequential, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy in eval mode."""
    return float((predict_proba(model, images).argmax(axis=1) == labels).mean())


def calibrate_batchnorm(model: Sequential, images: np.ndarray, batch_size: int = 1000) -> None:
    """Re-estimate the BN running statistics as the average of training-mode batch statistics.

    With momentum (k-1)/k at the k-th batch, ``running`` becomes the plain mean over batches.
    """
    bns = [layer for layer in model.layers if isinstance(layer, BatchNorm2D)]
    saved = [bn.momentum for bn in bns]
    for k, start in enumerate(range(0, images.shape[0], batch_size), start=1):
        for bn in bns:
            bn.momentum = (k - 1) / k
        model.forward(to_input(images[start:start + batch_size], model.dtype), train=True)
    for bn, momentum in zip(bns, saved, strict=True):
        bn.momentum = momentum


# --------------------------------------------------------------------------------------------
# What the network learned: its features, its feature maps, its gradient w.r.t. the image
# --------------------------------------------------------------------------------------------


def features(model: Sequential, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The penultimate activations ``(N, 84)``: the input of the last fully connected layer."""
    last = max(i for i, layer in enumerate(model.layers) if isinstance(layer, Linear))
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = to_input(images[start:start + batch_size], model.dtype)
        for layer in model.layers[:last]:
            x = layer.forward(x, train=False)
        out.append(x.T)
    return np.concatenate(out)


def feature_maps(model: Sequential, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """``(name, (C, H, W))`` for one uint8 image ``(784,)``: each convolution's output (before
    its batch norm), and each block's output after its max-pool and ReLU ("pool1", ...)."""
    x = to_input(np.asarray(image).reshape(1, -1), model.dtype)
    maps, pools = [], 0
    for layer in model.layers:
        x = layer.forward(x, train=False)
        if isinstance(layer, Conv2D):
            maps.append((layer.name, x[..., 0].copy()))
        elif isinstance(layer, ReLU) and x.ndim == 4:  # a ReLU after a max-pool ends a block
            pools += 1
            maps.append((f"pool{pools}", x[..., 0].copy()))
    return maps


def saliency(model: Sequential, images: np.ndarray, classes) -> np.ndarray:
    """``d logit[class] / d pixel`` ``(N, 28, 28)`` of each image for its class, by the model's
    own backward pass (pixels in the network's [0, 1] units).

    In eval mode batch norm is a fixed affine map, ``gamma * (x - running_mean) * inv_std +
    beta``, so its input gradient is ``dout * gamma * inv_std``: ``BatchNorm2D.backward`` is the
    training-mode one (batch statistics that depend on x) and is not used here. The first
    convolution skips its input gradient in training (the images need none): switched on here.
    """
    classes = np.broadcast_to(np.asarray(classes), images.shape[:1])
    if classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= NUM_CLASSES:
        raise ValueError(f"classes must be integers in [0, {NUM_CLASSES}), one per image")
    logits = model.forward(to_input(images, model.dtype), train=False)
    dout = np.zeros_like(logits)
    dout[classes, np.arange(logits.shape[1])] = 1  # each image's score: its class's logit
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    saved = [conv.input_grad for conv in convs]
    try:
        for conv in convs:
            conv.input_grad = True
        for layer in reversed(model.layers):
            if isinstance(layer, BatchNorm2D):
                inv_std = 1 / np.sqrt(layer.buffers["running_var"] + layer.eps)
                dout = dout * (layer.params["gamma"] * inv_std)[:, None, None, None]
            else:
                dout = layer.backward(dout)
    finally:
        for conv, flag in zip(convs, saved, strict=True):
            conv.input_grad = flag
    return dout[0].transpose(2, 0, 1)  # (1, 28, 28, N) -> (N, 28, 28)


# --------------------------------------------------------------------------------------------
# Loading a checkpoint (training.py writes them)
# --------------------------------------------------------------------------------------------


def load(path, calibration_images: np.ndarray | None = None) -> Sequential:
    """Load a checkpoint written by :func:`train` or by the original code.

    The original's files hold float64 arrays, batch norm's as ``(1, C, 1, 1)`` and the fully
    connected biases as ``(1, out)``: they are cast and reshaped (``Sequential.load_state``).
    They lack the BN running statistics: they load with a warning, the statistics re-estimated
    from training images (``calibration_images``, else the training set through
    ``fashion_mnist.data.load_mnist``).
    """
    arrays = read_npz(path)
    model = build_lenet()
    bn_keys = list(model.buffers())
    legacy = not any(key in arrays for key in bn_keys)
    model.load_state(arrays, list(model.params()) if legacy else None, source=str(path))
    if legacy:
        warnings.warn(f"{path} has no batch-norm running statistics (the original's format); "
                      "re-estimating them from training images", stacklevel=2)
        if calibration_images is None:
            from fashion_mnist import REPO_ROOT
            from fashion_mnist.data import load_mnist

            calibration_images, _ = load_mnist(REPO_ROOT / "data", "train")
        calibrate_batchnorm(model, calibration_images)
    return model
