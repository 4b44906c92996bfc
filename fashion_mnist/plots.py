"""Figures for the notebooks and the report (matplotlib + seaborn), saved as PNG at 150 dpi.

Every function draws one figure, saves it atomically when given a path, closes it (so long
notebooks do not pile up open figures) and returns it: a notebook shows it as the cell's value.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .data import CLASS_NAMES, COLS, ROWS
from .files import atomic_write

DPI = 150


def save(fig, path) -> None:
    """Write ``fig`` as PNG through a temporary file, so a crash leaves no half image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())


def _finish(fig, path):
    if path is not None:
        save(fig, path)
    plt.close(fig)
    return fig


def plot_step_curves(records: Sequence[dict], path=None, last_step: int | None = None,
                     smoothing: int = 50, title: str = ""):  # fmt: skip
    """Batch loss and accuracy per step, raw (faint) and as a moving average (solid)."""
    frame = pd.DataFrame(records)
    if last_step is not None:
        frame = frame[frame["step"] <= last_step]
    window = max(1, min(smoothing, len(frame) // 10 or 1))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, column, label in zip(
        axes, ("loss", "accuracy"), ("loss", "batch accuracy"), strict=True
    ):
        ax.plot(
            frame["step"], frame[column], color="tab:blue", alpha=0.25, lw=0.8, label="per step"
        )
        smooth = frame[column].rolling(window, min_periods=1).mean()
        ax.plot(frame["step"], smooth, color="tab:blue", lw=1.8, label=f"mean of {window}")
        ax.set(xlabel="step", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or f"Training, steps 1-{int(frame['step'].max())}")
    fig.tight_layout()
    return _finish(fig, path)


def plot_epoch_curves(records: Sequence[dict], path=None, title: str = "Training per epoch"):
    """Loss and accuracy per epoch: train vs validation vs test (the ones present)."""
    frame = pd.DataFrame(records)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        for split, color in (("train", "tab:blue"), ("val", "tab:orange"), ("test", "tab:green")):
            column = f"{split}_{metric}"
            if column in frame and frame[column].notna().any():
                ax.plot(frame["epoch"], frame[column], marker="o", ms=3, color=color, label=split)
        ax.set(xlabel="epoch", ylabel="accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def plot_confusion(cm, path=None, title: str = "Confusion matrix", names=CLASS_NAMES):
    """Heatmap of counts with class names on both axes (rows: true, columns: predicted)."""
    fig, ax = plt.subplots(figsize=(8, 6.8))
    sns.heatmap(np.asarray(cm), annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=names, yticklabels=names, annot_kws={"size": 8})  # fmt: skip
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.tick_params(axis="x", rotation=45)
    plt.setp(ax.get_xticklabels(), ha="right")
    fig.tight_layout()
    return _finish(fig, path)


def plot_images(images, titles: Sequence[str], path=None, cols: int = 10, title: str = ""):
    """A grid of 28x28 images, each with its title (class name, or true/predicted)."""
    n = len(images)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.8 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(np.asarray(images[i]).reshape(ROWS, COLS), cmap="gray_r")
            ax.set_title(titles[i], fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def plot_layer_profile(record: dict, path=None):
    """A per-layer profile recorded by ``benchmarks/bench_lenet.py --profile`` as grouped
    horizontal bars: per layer, NumPy and PyTorch, each with its forward and backward stacked."""
    results = record["results"]
    rows = list(results["layers"])
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.5))
    sides = {"numpy": ("NumPy", "#1f77b4", "#aec7e8"), "torch": ("PyTorch", "#d62728", "#ff9896")}
    for offset, (impl, (name, dark, light)) in zip((-0.2, 0.2), sides.items(), strict=True):
        fwd = np.array([results["layers"][row][impl]["forward"] for row in rows])
        bwd = np.array([results["layers"][row][impl]["backward"] for row in rows])
        ax.barh(y + offset, fwd, height=0.38, color=dark, label=f"{name} forward")
        ax.barh(y + offset, bwd, left=fwd, height=0.38, color=light, label=f"{name} backward")
    ax.set_yticks(y, rows)
    ax.invert_yaxis()  # the network's order, top to bottom
    ax.set_xlabel("ms per training step")
    commit = (record.get("provenance") or {}).get("git_commit") or "unknown commit"
    ax.set_title(f"LeNet training step by layer, batch {results['batch']}\n"
                 f"{results['cpu']}, {commit[:12]}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return _finish(fig, path)


def plot_photo_predictions(photos, seen, probabilities, labels, path=None):
    """Each photo, the 28x28 image the model saw, and the model's top class beside the truth."""
    fig, axes = plt.subplots(2, len(photos), figsize=(1.6 * len(photos), 3.6), squeeze=False)
    for i, (photo, pixels, p, label) in enumerate(zip(photos, seen, probabilities, labels,
                                                      strict=True)):
        axes[0, i].imshow(photo)
        axes[0, i].set_title(f"photo {photo.width}x{photo.height}", fontsize=7)
        axes[1, i].imshow(np.asarray(pixels).reshape(ROWS, COLS), cmap="gray")
        guess = int(np.argmax(p))
        axes[1, i].set_title(f"{CLASS_NAMES[guess]} {p[guess]:.0%}\n(true: {CLASS_NAMES[label]})",
                             fontsize=7, color="black" if guess == label else "red")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Photos through the preprocessing, and the model's answer")
    fig.tight_layout()
    return _finish(fig, path)


def plot_first_images(images, labels, path=None, n: int = 30):
    """The first ``n`` training images with their class names, as in the original report."""
    names = [CLASS_NAMES[int(y)] for y in labels[:n]]
    return plot_images(images[:n], names, path, title=f"The first {n} training images")


def plot_misclassified(images, y_true, y_pred, path=None, n: int = 30):
    """The first ``n`` misclassified images, titled 'true -> predicted'."""
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))[:n]
    titles = [f"{CLASS_NAMES[y_true[i]]}\n-> {CLASS_NAMES[y_pred[i]]}" for i in wrong]
    return plot_images(images[wrong], titles, path,
                       title=f"Misclassified: {len(wrong)} shown (true -> predicted)")  # fmt: skip
