"""Naive loop-based convolution and max pooling: slow, obviously right, used only as test oracles.

Same ``(C, H, W, N)`` layout as ``numpy_cnn``; every output value is written out as the
textbook sum or max over its window, one pixel of one image at a time.
"""

from __future__ import annotations

import numpy as np


def conv2d(x: np.ndarray, weights: np.ndarray, bias: np.ndarray, stride: int = 1,
           padding: int = 0) -> np.ndarray:
    """out[f, i, j, n] = bias[f] + sum_{c, di, dj} w[f, c, di, dj] * xpad[c, i*s+di, j*s+dj, n]."""
    C, H, W, N = x.shape
    F, _, k, _ = weights.shape
    xp = np.zeros((C, H + 2 * padding, W + 2 * padding, N), dtype=x.dtype)
    xp[:, padding:padding + H, padding:padding + W, :] = x
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    out = np.zeros((F, Ho, Wo, N), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[:, i * stride:i * stride + k, j * stride:j * stride + k, n]
                    out[f, i, j, n] = np.sum(window * weights[f]) + bias[f, 0]
    return out


def maxpool2d(x: np.ndarray, size: int = 2) -> np.ndarray:
    """out[c, i, j, n] = max of the size x size window at (i*size, j*size)."""
    C, H, W, N = x.shape
    out = np.zeros((C, H // size, W // size, N), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H // size):
                for j in range(W // size):
                    out[c, i, j, n] = x[c, i * size:(i + 1) * size, j * size:(j + 1) * size, n].max()
    return out
