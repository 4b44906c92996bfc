"""The NumPy CNN's layers and loss: each one class with ``forward`` and ``backward``.

``forward`` stores what ``backward`` needs in ``self.cache``; ``backward`` fills ``self.grads``
and returns the gradient of the layer's input. Activations are ``(C, H, W, N)``, the batch
innermost (why: see ``numpy_cnn``). ``reference_layers`` has naive loop versions of the
convolution and the max-pool, the tests' oracles.

Some layers are written for speed where it costs little reading; each such choice says why where
it is made. The per-layer profile (``benchmarks/bench_lenet.py --profile``) measures them.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

IMAGE_SIDE = 28
NUM_CLASSES = 10

# OpenBLAS (the BLAS in NumPy's wheels) multiplies a small product, M*N*K up to about 10^6, with a
# kernel that reads the operands where they lie; above that it first packs them into its blocked
# layout, which for conv1's thin (6 x 25) weights costs more than the multiply itself (the
# per-layer profile of `make bench`, benchmarks/bench_layers.json, shows conv1 before and after).
SMALL_GEMM = 10**6
MIN_BAND = 1024  # columns: below conv1's ~6,700 per band, above conv2's ~400 (see Conv2D._bands)


def channel_sum(x: np.ndarray) -> np.ndarray:
    """Per-channel sum of a ``(C, ...)`` array, returned in float64.

    ``x.sum(axis=(1, 2, 3))`` is slow and, in float32 over ~10^5 values, inaccurate. Instead one
    BLAS matrix-vector product sums over the batch (the innermost axis, a few hundred values, in
    the array's own precision) and the remaining (C, H*W) partial sums are added in float64.
    """
    n = x.shape[-1]
    partial = x.reshape(-1, n) @ np.ones(n, dtype=x.dtype)  # (C*H*W,)
    return partial.reshape(x.shape[0], -1).sum(axis=1, dtype=np.float64)  # (C,)


def channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-channel sum of ``a * b`` (both ``(C, ...)``), in float64, without the product array:
    a batched matmul takes one dot product per (c, h, w) over the batch (as ``channel_sum``, in
    the arrays' precision), and the (C, H*W) partial sums are added in float64."""
    n = a.shape[-1]
    partial = a.reshape(-1, 1, n) @ b.reshape(-1, n, 1)  # (C*H*W, 1, 1)
    return partial.reshape(a.shape[0], -1).sum(axis=1, dtype=np.float64)  # (C,)


def to_input(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 ``(N, 784)`` images -> ``(1, 28, 28, N)`` floats in [0, 1], batch innermost."""
    n = images.shape[0]
    x = images.reshape(n, IMAGE_SIDE, IMAGE_SIDE).transpose(1, 2, 0)  # (28, 28, N) view
    x = x.astype(dtype, order="C")  # the copy lays it out as (H, W, N)
    x *= 1 / 255
    return x[None]


class Layer:
    """Base class: a layer has parameters, their gradients and buffers (dicts of arrays)."""

    name = ""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.cache: tuple = ()

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


class Conv2D(Layer):
    """2-D convolution via im2col: ``(C, H, W, N) -> (F, Ho, Wo, N)``.

    ``input_grad=False`` skips the input gradient (useless for the first layer: the images).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
                 name="conv", rng=None, dtype=np.float32, input_grad=True):
        super().__init__()
        self.name, self.stride, self.padding = name, stride, padding
        self.in_channels, self.out_channels, self.k = in_channels, out_channels, kernel_size
        self.input_grad = input_grad
        rng = rng if rng is not None else np.random.default_rng(0)
        fan_in = in_channels * kernel_size * kernel_size
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.params["weights"] = (rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(dtype)
        self.params["bias"] = np.zeros((out_channels, 1), dtype=dtype)  # (F, 1): the original's layout

    def describe(self):
        return (f"Conv2D {self.in_channels}->{self.out_channels}, {self.k}x{self.k}, "
                f"stride {self.stride}, pad {self.padding}")

    def _patches(self, x):
        """Every patch of every image as one strided view ``(C, k, k, Ho, Wo, N)`` (no copy).

        Stepping the kernel offset (i, j) and the output pixel (r, c) both move through the same
        H and W strides of the zero-padded input.
        """
        C, H, W, N = x.shape
        k, s, p = self.k, self.stride, self.padding
        Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        xp = x
        if p:
            xp = np.zeros((C, H + 2 * p, W + 2 * p, N), dtype=x.dtype)
            xp[:, p:p + H, p:p + W, :] = x
        sc, sh, sw, sn = xp.strides
        return as_strided(xp, shape=(C, k, k, Ho, Wo, N),
                          strides=(sc, sh, sw, sh * s, sw * s, sn), writeable=False)

    def _bands(self, patches):
        """``(rows, columns)`` slices of the output, each band's GEMM small enough for OpenBLAS's
        unpacked kernel (``F * C*k*k * pixels * N <= SMALL_GEMM``, see there): conv1 at batch 128
        goes one row of 28 pixels (3,584 columns) at a time, at batch 256 half a row. A band is
        whole rows or part of one row, so that ``out[:, rows, columns]`` flattens to a view.
        Where bands would be narrower than ``MIN_BAND`` columns (conv2's 16 x 150 weights leave
        about 400) the matrix is taken whole: a big GEMM packs anyway, runs best in one call and
        splits across BLAS threads.
        """
        C, k, _, Ho, Wo, N = patches.shape
        pixels = SMALL_GEMM // (self.out_channels * C * k * k * N)  # output pixels per band
        if pixels * N < MIN_BAND:
            return [(slice(None), slice(None))]
        if pixels >= Wo:
            rows = pixels // Wo
            return [(slice(r, r + rows), slice(None)) for r in range(0, Ho, rows)]
        width = -(-Wo // -(-Wo // pixels))  # a row in equal pieces: ceil(Wo / ceil(Wo / pixels))
        return [(slice(r, r + 1), slice(c, c + width))
                for r in range(Ho) for c in range(0, Wo, width)]

    def forward(self, x, train=True):
        patches = self._patches(x)
        C, k, _, Ho, Wo, N = patches.shape
        F = self.out_channels
        w2 = self.params["weights"].reshape(F, -1)  # (F, C*k*k)
        out = np.empty((F, Ho, Wo, N), dtype=x.dtype)
        bands = self._bands(patches)
        for rows, columns in bands:
            cols = patches[:, :, :, rows, columns].reshape(C * k * k, -1)  # im2col
            np.matmul(w2, cols, out=out[:, rows, columns].reshape(F, -1))
        out += self.params["bias"].reshape(-1, 1, 1, 1)
        # A whole matrix (conv2) is kept for backward; bands (conv1) are rebuilt there, each one
        # still in cache when it is multiplied, instead of 10 MB going through memory twice.
        self.cache = (x.shape, patches, cols if len(bands) == 1 else None)
        return out

    def backward(self, dout):
        (C, H, W, N), patches, whole = self.cache
        F, Ho, Wo, _ = dout.shape
        k, s, p = self.k, self.stride, self.padding
        w2 = self.params["weights"].reshape(F, -1)  # (F, C*k*k)
        dw = np.zeros((C * k * k, F), dtype=dout.dtype)
        for rows, columns in self._bands(patches):
            band = patches[:, :, :, rows, columns]
            cols = band.reshape(C * k * k, -1) if whole is None else whole
            # dW = dout @ cols.T, computed transposed: cols @ dout.T multiplies with the long
            # axis (the columns) contiguous in both operands, which OpenBLAS does faster.
            dw += cols @ dout[:, rows, columns].reshape(F, -1).T  # (C*k*k, F)
        self.grads["weights"] = dw.T.reshape(self.params["weights"].shape)
        self.grads["bias"] = channel_sum(dout).astype(dout.dtype).reshape(F, 1)
        if not self.input_grad:
            return None
        dcols = (w2.T @ dout.reshape(F, -1)).reshape(C, k, k, Ho, Wo, N)
        # col2im: add each kernel offset's gradient back onto the pixels it read (k*k slices).
        dxp = np.zeros((C, H + 2 * p, W + 2 * p, N), dtype=dout.dtype)
        for i in range(k):
            for j in range(k):
                dxp[:, i:i + s * Ho:s, j:j + s * Wo:s, :] += dcols[:, i, j]
        return dxp[:, p:p + H, p:p + W, :]


class BatchNorm2D(Layer):
    """Per-channel batch normalisation of ``(C, H, W, N)``; eval mode uses running statistics.

    Running averages follow the original: ``running = momentum * running + (1 - momentum) *
    batch`` with momentum 0.9 (PyTorch's momentum=0.1), the batch variance being the biased one
    (divided by M, as ``np.var``); PyTorch would store the unbiased one, a factor M/(M-1).
    """

    def __init__(self, channels, momentum=0.9, eps=1e-5, *, name="bn", dtype=np.float32):
        super().__init__()
        self.name, self.channels, self.momentum, self.eps = name, channels, momentum, eps
        self.params["gamma"] = np.ones(channels, dtype=dtype)
        self.params["beta"] = np.zeros(channels, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(channels, dtype=dtype)
        self.buffers["running_var"] = np.ones(channels, dtype=dtype)

    def describe(self):
        return f"BatchNorm2D {self.channels} (gamma, beta)"

    def forward(self, x, train=True):
        C = x.shape[0]
        per_channel = (C,) + (1,) * (x.ndim - 1)  # (C, 1, 1, 1) broadcasts over H, W, N
        if train:
            m = x.size // C
            mean = channel_sum(x) / m  # float64 statistics: float32 sums of 10^5 values drift
            out = x - mean.astype(x.dtype).reshape(per_channel)
            var = channel_dot(out, out) / m  # no squared copy
            mom = self.momentum
            self.buffers["running_mean"][:] = mom * self.buffers["running_mean"] + (1 - mom) * mean
            self.buffers["running_var"][:] = mom * self.buffers["running_var"] + (1 - mom) * var
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
            out = x - mean.astype(x.dtype).reshape(per_channel)
        inv_std = 1 / np.sqrt(var + self.eps)  # (C,)
        # out = gamma * xhat + beta, xhat = (x - mean) * inv_std, scaled and shifted in place:
        # one full-size array instead of three. Backward recomputes xhat from the input (two
        # cheap passes) rather than keep another copy of the layer's largest array.
        out *= (self.params["gamma"] * inv_std).astype(x.dtype).reshape(per_channel)
        out += self.params["beta"].reshape(per_channel)
        self.cache = (x, mean, inv_std)
        return out

    def backward(self, dout):
        # Training-mode gradient (batch statistics depend on x), with xhat = (x - mean) * inv_std:
        # dx = gamma * inv_std / M * (M * dout - sum(dout) - xhat * sum(dout * xhat))
        #    = a * dout + b * (x - mean) + c, per-channel a, b, c: the sums are taken first and
        # x - mean is the only full-size temporary (14 full-size reads and writes instead of 18).
        x, mean, inv_std = self.cache
        C = dout.shape[0]
        m = dout.size // C
        per_channel = (C,) + (1,) * (dout.ndim - 1)
        centred = x - mean.astype(x.dtype).reshape(per_channel)
        dbeta = channel_sum(dout)
        dgamma = channel_dot(dout, centred) * inv_std  # sum(dout * xhat)
        self.grads["beta"] = dbeta.astype(dout.dtype)
        self.grads["gamma"] = dgamma.astype(dout.dtype)
        scale = self.params["gamma"] * inv_std / m  # (C,)
        dx = dout * (m * scale).astype(dout.dtype).reshape(per_channel)
        centred *= (-scale * dgamma * inv_std).astype(dout.dtype).reshape(per_channel)
        dx += centred
        dx -= (scale * dbeta).astype(dout.dtype).reshape(per_channel)
        return dx


class ReLU(Layer):
    """max(x, 0); the gradient passes where the output is positive."""

    def forward(self, x, train=True):
        out = np.maximum(x, 0)
        self.cache = (out > 0,)
        return out

    def backward(self, dout):
        (mask,) = self.cache
        return dout * mask


class MaxPool2D(Layer):
    """Non-overlapping ``size x size`` max pooling (stride = size) of ``(C, H, W, N)``.

    Reshaping to ``(C, H/s, s, W/s, s, N)`` puts each window's position (i, j) on axes 2 and 4.
    The gradient goes to the first maximum of each window (as in PyTorch). Both the max and that
    mask are loops over the s*s window positions, not over pixels.
    """

    def __init__(self, size=2):
        super().__init__()
        self.size = size

    def describe(self):
        return f"MaxPool {self.size}x{self.size}, stride {self.size}"

    def forward(self, x, train=True):
        C, H, W, N = x.shape
        s = self.size
        windows = x.reshape(C, H // s, s, W // s, s, N)
        positions = [(i, j) for i in range(s) for j in range(s)]  # row-major, as PyTorch scans
        # s*s - 1 elementwise maxima of strided views: several times faster than
        # windows.max(axis=(2, 4)), a reduction over two non-adjacent axes.
        out = windows[:, :, 0, :, 0, :].copy()  # (C, H/s, W/s, N)
        for i, j in positions[1:]:
            np.maximum(out, windows[:, :, i, :, j, :], out=out)
        mask = np.empty(windows.shape, dtype=bool)
        pending = np.ones(out.shape, dtype=bool)  # windows whose first maximum is still ahead
        for i, j in positions:
            first = mask[:, :, i, :, j, :]  # a view: filled in place
            np.equal(windows[:, :, i, :, j, :], out, out=first)
            first &= pending
            pending ^= first
        self.cache = (x.shape, mask)
        return out

    def backward(self, dout):
        shape, mask = self.cache
        dx = mask * dout[:, :, None, :, None, :]  # broadcast each window's gradient, keep the max
        return dx.reshape(shape)


class Flatten(Layer):
    """``(C, H, W, N) -> (C*H*W, N)``: features in (C, H, W) order, as the original's NCHW."""

    def forward(self, x, train=True):
        self.cache = (x.shape,)
        return x.reshape(-1, x.shape[-1])

    def backward(self, dout):
        (shape,) = self.cache
        return dout.reshape(shape)


class Linear(Layer):
    """Fully connected layer (the original's FullyConnected): ``(D_in, N) -> (D_out, N)``.

    Weights are kept as the original stored them, ``(in, out)``; ``W.T @ x`` costs no copy.
    """

    def __init__(self, in_features, out_features, *, name="fc", rng=None, dtype=np.float32):
        super().__init__()
        self.name, self.in_features, self.out_features = name, in_features, out_features
        rng = rng if rng is not None else np.random.default_rng(0)
        w = rng.standard_normal((in_features, out_features)) * np.sqrt(2 / in_features)
        self.params["weights"] = w.astype(dtype)
        self.params["bias"] = np.zeros(out_features, dtype=dtype)

    def describe(self):
        return f"Linear {self.in_features}->{self.out_features}"

    def forward(self, x, train=True):
        self.cache = (x,)
        return self.params["weights"].T @ x + self.params["bias"][:, None]

    def backward(self, dout):
        (x,) = self.cache
        self.grads["weights"] = x @ dout.T  # (in, out)
        self.grads["bias"] = dout @ np.ones(dout.shape[1], dtype=dout.dtype)
        return self.params["weights"] @ dout


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits); logits ``(K, N)``, labels ``(N,)`` ints.

    With ``label_smoothing`` = e the target is ``(1 - e) * onehot + e / K`` instead of the one-hot
    vector. The fused backward is ``(softmax(logits) - target) / N``.
    """

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        shifted = logits - logits.max(axis=0)  # stable: exp of values <= 0
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=0))
        n = logits.shape[1]
        self.cache = (np.exp(log_probs), labels)
        e = self.label_smoothing
        nll = -log_probs[labels, np.arange(n)].mean()
        return float((1 - e) * nll - e * log_probs.mean(axis=0).mean())

    def backward(self) -> np.ndarray:
        probs, labels = self.cache
        k, n = probs.shape
        d = probs - self.label_smoothing / k
        d[labels, np.arange(n)] -= 1 - self.label_smoothing
        return d / n

    @property
    def probs(self) -> np.ndarray:
        return self.cache[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Column-wise softmax of ``(K, N)`` logits."""
    e = np.exp(logits - logits.max(axis=0))
    return e / e.sum(axis=0)
