"""What the networks learned, measured from their outputs: calibration (reliability, expected
calibration error, temperature scaling), the most confident mistakes, and a 2-D embedding of
their features.

Framework-free: every function takes NumPy arrays, class probabilities ``(N, K)`` and integer
labels ``(N,)``, as both models' ``predict_proba`` give them. ``insight_plots`` draws the results.

Calibration: a model is calibrated when, among the images it gives confidence p (its top
probability), a fraction p is right. The expected calibration error (Guo et al. 2017, "On
Calibration of Modern Neural Networks") splits the confidences into equal-width bins and averages
``|accuracy - confidence|`` over the bins, weighted by the share of images in each. Temperature
scaling divides the logits by one number T fitted on held-out data (T > 1 softens an
over-confident model); it changes no prediction, since the order of the logits is kept.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from threadpoolctl import threadpool_limits

from .data import validation_split

SUM_TOLERANCE = 1e-3  # rows of float32 probabilities (and of averages of them) sum to 1 within this
TEMPERATURE_BOUNDS = (0.05, 20.0)  # far beyond any useful temperature on either side


def check_probabilities(probabilities, labels=None, name: str = "probabilities"):
    """``probabilities`` as float64 ``(N, K)`` (K >= 2, finite, non-negative, rows summing to 1)
    and ``labels`` as int64 ``(N,)`` in ``[0, K)`` (when given); a ``ValueError`` naming the
    parameter and what is wrong otherwise."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, K) with N >= 1 and K >= 2, got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    worst = np.abs(p.sum(axis=1) - 1).max()
    if worst > SUM_TOLERANCE:
        raise ValueError(f"{name}: rows must sum to 1 (one is off by {worst:.3g}); "
                         "pass probabilities, not logits")
    if labels is None:
        return p, None
    y = np.asarray(labels)
    if y.shape != (p.shape[0],):
        raise ValueError(f"labels must have shape ({p.shape[0]},) to match {name} {p.shape}, "
                         f"got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must be integers in [0, {p.shape[1]})")
    return p, y.astype(np.int64)


def _check_bins(bins: int) -> None:
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")


def reliability(probabilities, labels, bins: int = 15) -> dict:
    """Per equal-width confidence bin ``(edges[i], edges[i+1]]`` (the first also takes 0): the
    mean ``confidence``, the ``accuracy`` and the ``count`` of the images whose top probability
    falls in it. Empty bins hold 0 (their count says so), so the record stays valid JSON."""
    _check_bins(bins)
    p, y = check_probabilities(probabilities, labels)
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], confidence, side="left")  # right-inclusive bins
    count = np.bincount(which, minlength=bins)
    filled = np.maximum(count, 1)
    return {
        "edges": edges,
        "confidence": np.bincount(which, weights=confidence, minlength=bins) / filled,
        "accuracy": np.bincount(which, weights=correct, minlength=bins) / filled,
        "count": count,
    }


def expected_calibration_error(probabilities, labels, bins: int = 15) -> float:
    """ECE: ``sum over bins of count/N * |accuracy - confidence|`` (equal-width bins)."""
    table = reliability(probabilities, labels, bins)
    gaps = np.abs(table["accuracy"] - table["confidence"])
    return float((table["count"] * gaps).sum() / table["count"].sum())


def _log(p: np.ndarray) -> np.ndarray:
    """log p, with probabilities that underflowed to 0 (float32 softmax) kept finite."""
    return np.log(np.maximum(p, np.finfo(np.float64).tiny))


def negative_log_likelihood(probabilities, labels) -> float:
    """Mean cross-entropy of the true labels."""
    p, y = check_probabilities(probabilities, labels)
    return float(-_log(p[np.arange(len(y)), y]).mean())


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``, which equals ``softmax(z / T)`` for the logits z behind p (log p
    differs from z by a constant per row, which softmax ignores)."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    p, _ = check_probabilities(probabilities)
    return np.exp(log_softmax(_log(p) / temperature, axis=1))


def fit_temperature(probabilities, labels) -> float:
    """The temperature T that minimises the NLL of ``softmax(log p / T)`` on these labels
    (bounded scalar search over ``TEMPERATURE_BOUNDS``). Fit it on validation data only."""
    p, y = check_probabilities(probabilities, labels)
    log_p, rows = _log(p), np.arange(len(y))

    def nll(t: float) -> float:
        return float(-log_softmax(log_p / t, axis=1)[rows, y].mean())

    result = minimize_scalar(nll, bounds=TEMPERATURE_BOUNDS, method="bounded",
                             options={"xatol": 1e-4})  # fmt: skip
    return float(result.x)


def calibration(val_probabilities, val_labels, test_probabilities, test_labels,
                bins: int = 15) -> dict:  # fmt: skip
    """Temperature scaling fitted on validation, judged on test.

    Returns ``temperature``, ``ece_before``/``ece_after`` and ``nll_before``/``nll_after`` (on
    test), and ``bins``: the test set's :func:`reliability` tables, ``{"before": ..., "after":
    ...}``, for the reliability diagram.
    """
    _check_bins(bins)
    check_probabilities(val_probabilities, val_labels, name="val_probabilities")
    check_probabilities(test_probabilities, test_labels, name="test_probabilities")
    temperature = fit_temperature(val_probabilities, val_labels)
    scaled = apply_temperature(test_probabilities, temperature)
    return {
        "temperature": temperature,
        "ece_before": expected_calibration_error(test_probabilities, test_labels, bins),
        "ece_after": expected_calibration_error(scaled, test_labels, bins),
        "nll_before": negative_log_likelihood(test_probabilities, test_labels),
        "nll_after": negative_log_likelihood(scaled, test_labels),
        "bins": {"before": reliability(test_probabilities, test_labels, bins),
                 "after": reliability(scaled, test_labels, bins)},
    }  # fmt: skip


def confident_mistakes(probabilities, labels, k: int = 8) -> list[dict]:
    """The (at most) ``k`` wrong predictions with the highest predicted probability, most
    confident first (ties: lower index first): ``index``, ``label``, ``predicted``,
    ``probability``, as plain Python values."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    p, y = check_probabilities(probabilities, labels)
    predicted = p.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    confidence = p[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:k]
    return [{"index": int(i), "label": int(y[i]), "predicted": int(predicted[i]),
             "probability": float(p[i, predicted[i]])} for i in order]  # fmt: skip


def embed_2d(features, labels, n: int = 2000, method: str = "tsne", seed: int = 0):
    """A 2-D map of ``features`` ``(N, D)`` for a class-stratified sample of ``n`` rows (all of
    them when ``n >= N``).

    ``method`` "tsne": scikit-learn's t-SNE (Barnes-Hut, PCA initialisation, seeded: the same
    inputs give the same map), after PCA to 50 dimensions, which keeps it fast and loses little;
    "pca": the first two principal components. Returns ``(coords (n, 2), labels (n,),
    indices (n,))``, the indices (sorted) into ``features``.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"features must be (N, D) and labels (N,), got {x.shape} and {y.shape}")
    if method not in ("tsne", "pca"):
        raise ValueError(f"method must be 'tsne' or 'pca', got {method!r}")
    if not isinstance(n, (int, np.integer)) or n < 3:
        raise ValueError(f"n must be an integer >= 3, got {n!r}")
    indices = np.arange(len(y)) if n >= len(y) else validation_split(y, size=n, seed=seed)[1]
    x = x[indices]
    if method == "pca" or x.shape[1] > 50:
        components = 2 if method == "pca" else min(50, len(x))
        x = PCA(n_components=components, random_state=seed).fit_transform(x)
    if method == "tsne":
        perplexity = min(30.0, (len(x) - 1) / 3)  # t-SNE needs perplexity < n
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                    random_state=seed)  # fmt: skip
        # One OpenMP thread: on 2 cores it takes about 7 s CPU either way (n=2000), but two
        # threads that spin-wait on a busy machine took 16 times as long.
        with threadpool_limits(limits=1, user_api="openmp"):
            x = tsne.fit_transform(x)
    return x, y[indices], indices
