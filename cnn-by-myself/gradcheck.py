"""Gradient checking, as CS231n checks every layer: analytic gradients vs central differences.

``numerical_gradient`` nudges one entry at a time by +-h and measures the change of a scalar
loss; in float64 the two agree to about 1e-8 relative error when ``backward`` is right.
"""

from __future__ import annotations

import numpy as np
import numpy_cnn as cnn


def relative_error(analytic, numeric) -> float:
    """max |a - n| / max |n|: the error relative to the scale of the reference."""
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    return float(np.abs(a - n).max() / max(np.abs(n).max(), 1e-300))


def numerical_gradient(f, x: np.ndarray, h: float = 1e-5, indices=None) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``x`` (changed in place, restored).

    Only the flat ``indices`` are computed when given (the rest stay 0): checking a sample of
    entries is enough and a full check of fc1 would take minutes.
    """
    grad = np.zeros_like(x)
    flat, grad_flat = x.reshape(-1), grad.reshape(-1)
    for i in range(x.size) if indices is None else indices:
        old = flat[i]
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        grad_flat[i] = (plus - minus) / (2 * h)
    return grad


# A bias right before batch norm is cancelled by the mean subtraction: its true gradient is 0,
# so a relative error there would only compare rounding noise.
CANCELLED_BY_BATCHNORM = ("conv1_bias", "conv2_bias")


def check_network(seed: int = 0, batch: int = 3, samples: int = 12) -> dict[str, float]:
    """Max relative error of every parameter's (and the input's) gradient of the whole LeNet.

    Float64, train mode (batch statistics), random non-zero biases so that no gradient is
    trivially zero, ``samples`` random entries per array. Biases cancelled by batch norm report
    their largest absolute gradient instead, which must be ~0.
    """
    rng = np.random.default_rng(seed)
    model = cnn.build_lenet(seed=seed, dtype=np.float64)
    model.layers[0].input_grad = True
    for key, p in model.params().items():
        if key.endswith(("bias", "beta")):
            p[:] = rng.standard_normal(p.shape) * 0.1
    x = rng.standard_normal((1, 28, 28, batch))
    y = rng.integers(0, cnn.NUM_CLASSES, batch)
    loss_fn = cnn.SoftmaxCrossEntropy()

    def loss() -> float:
        return loss_fn.forward(model.forward(x, train=True), y)

    loss()
    dx = model.backward(loss_fn.backward())
    analytic = {key: g.copy() for key, g in model.grads().items()} | {"input": dx}
    errors = {}
    for key, p in {**model.params(), "input": x}.items():
        if key in CANCELLED_BY_BATCHNORM:
            errors[key] = float(np.abs(analytic[key]).max())
            continue
        picks = rng.choice(p.size, size=min(p.size, samples), replace=False)
        numeric = numerical_gradient(loss, p, indices=picks)
        errors[key] = relative_error(analytic[key].reshape(-1)[picks], numeric.reshape(-1)[picks])
    return errors
