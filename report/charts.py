"""The figures the report draws itself from the records, each in English and in Chinese.

Every function takes the data and ``lang`` ("en" or "zh") and returns a matplotlib figure; the
builder saves it as ``figures/NAME.LANG.png``. Titles, axis labels and legends come from ``T``.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fashion_mnist.data import CLASS_NAMES, CLASS_NAMES_ZH  # noqa: E402

T = {  # key: (English, Chinese)
    "step": ("step", "训练步数"), "epoch": ("epoch", "轮次"), "loss": ("loss", "损失"),
    "batch_loss": ("batch loss (mean of 100 steps)", "批损失（100 步滑动平均）"),
    "acc": ("accuracy (%)", "准确率 (%)"), "val": ("validation", "验证集"), "test": ("test", "测试集"),
    "train": ("train", "训练集"), "original": ("the original report", "原报告"),
    "ours": ("our reproduction", "我们的复现"), "true": ("true class", "真实类别"),
    "pred": ("predicted class", "预测类别"), "f1": ("F1 (%)", "F1 (%)"),
    "ms": ("ms per training step", "每个训练步耗时 (ms)"), "fwd": ("forward", "前向"),
    "bwd": ("backward", "反向"), "mean_corr": ("accuracy (%), mean over severities", "准确率 (%)，各强度平均"),
    "clean": ("clean", "干净图像"),
}  # fmt: skip


def t(key: str, lang: str) -> str:
    return T[key][lang == "zh"]


def classes(lang: str) -> list[str]:
    return list(CLASS_NAMES_ZH if lang == "zh" else CLASS_NAMES)


def _style(lang: str) -> None:
    plt.rcParams.update({"font.family": "sans-serif", "axes.unicode_minus": False, "font.size": 9,
                         "font.sans-serif": ["Noto Sans CJK SC", "Noto Serif CJK SC", "DejaVu Sans"]
                         if lang == "zh" else ["DejaVu Sans"]})  # fmt: skip


def numpy_curves(runs: list, original: dict, lang: str):
    """Left: each run's batch loss (moving mean); right: validation and test accuracy per
    checkpoint, beside the original's test accuracy per checkpoint."""
    _style(lang)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    for run, color in zip(runs, ("tab:blue", "tab:orange"), strict=True):
        steps = pd.DataFrame(run.steps)
        a.plot(steps["step"], steps["loss"].rolling(100, min_periods=1).mean(), color=color,
               label=run.label.zh if lang == "zh" else run.label.en)  # fmt: skip
        cps = run.checkpoints
        b.plot([c["step"] for c in cps], [100 * c["val_accuracy"] for c in cps], "o-", color=color,
               label=f"{run.label.zh if lang == 'zh' else run.label.en}: {t('val', lang)}")  # fmt: skip
        b.plot([c["step"] for c in cps], [100 * c["test_accuracy"] for c in cps], "s--", color=color,
               alpha=0.6, label=f"{run.label.zh if lang == 'zh' else run.label.en}: {t('test', lang)}")  # fmt: skip
    b.plot(list(original), [100 * v for v in original.values()], "^:", color="tab:gray",
           label=f"{t('original', lang)}: {t('test', lang)}")  # fmt: skip
    a.set(xlabel=t("step", lang), ylabel=t("batch_loss", lang), yscale="log")
    b.set(xlabel=t("step", lang), ylabel=t("acc", lang))
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def torch_reproduction(epochs: list, original: tuple, lang: str):
    """Our reproduction's test accuracy per epoch beside the original's."""
    _style(lang)
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    ax.plot([e["epoch"] for e in epochs], [100 * e["test_acc"] for e in epochs], "o-", label=t("ours", lang))
    ax.plot(range(1, len(original) + 1), [100 * v for v in original], "^--", color="tab:gray",
            label=t("original", lang))  # fmt: skip
    ax.set(xlabel=t("epoch", lang), ylabel=f"{t('test', lang)} {t('acc', lang)}")
    ax.set_xticks(range(1, len(original) + 1, 2))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def torch_losses(runs: list, lang: str):
    """Loss per epoch of each run: training beside the held-out split it recorded."""
    _style(lang)
    fig, axes = plt.subplots(1, len(runs), figsize=(10, 3.2), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        frame = pd.DataFrame(run.epochs)
        for split, color in (("train", "tab:blue"), ("val", "tab:orange"), ("test", "tab:green")):
            column = f"{split}_loss"
            if column in frame and frame[column].notna().any():
                ax.plot(frame["epoch"], frame[column], "o-", ms=3, color=color, label=t(split, lang))
        ax.set(title=run.label.zh if lang == "zh" else run.label.en, xlabel=t("epoch", lang),
               ylabel=t("loss", lang))  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_errors(matrices: list[tuple[str, list]], lang: str):
    """Row-normalised confusion matrices (% of the true class) with the diagonal masked, so the
    errors carry the colour scale."""
    _style(lang)
    fig, axes = plt.subplots(1, len(matrices), figsize=(5.2 * len(matrices), 4.6), squeeze=False)
    names = classes(lang)
    for ax, (title, cm) in zip(axes[0], matrices, strict=True):
        cm = np.asarray(cm, dtype=float)
        rates = 100 * cm / cm.sum(axis=1, keepdims=True)
        np.fill_diagonal(rates, np.nan)
        ax.imshow(rates, cmap="Reds")
        for i, j in zip(*np.nonzero(np.nan_to_num(rates) >= 1), strict=True):
            ax.text(j, i, f"{rates[i, j]:.0f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set(title=title, xlabel=t("pred", lang), ylabel=t("true", lang))
    fig.tight_layout()
    return fig


def per_class_f1(models: list[tuple[str, list[float]]], lang: str):
    """Grouped bars: per class, each model's F1."""
    _style(lang)
    fig, ax = plt.subplots(figsize=(10, 3.2))
    x, width = np.arange(len(CLASS_NAMES)), 0.8 / len(models)
    for k, (label, f1) in enumerate(models):
        ax.bar(x + (k - (len(models) - 1) / 2) * width, [100 * v for v in f1], width, label=label)
    ax.set_xticks(x, classes(lang), rotation=20)
    ax.set(ylabel=t("f1", lang), ylim=(50, 100))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=len(models))
    fig.tight_layout()
    return fig


def sweep(rows: list[tuple[str, float, float]], lang: str):
    """The NumPy sweep's staircase: validation and test accuracy of each step."""
    _style(lang)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.0))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [100 * r[1] for r in rows], 0.4, label=t("val", lang))
    ax.barh(y + 0.2, [100 * r[2] for r in rows], 0.4, label=t("test", lang))
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    low = min(min(r[1], r[2]) for r in rows)
    ax.set(xlim=(100 * low - 2, 100), xlabel=t("acc", lang))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def layer_profile(layers: dict, lang: str):
    """Per layer, NumPy and PyTorch, forward and backward stacked (bench_layers.json)."""
    _style(lang)
    rows = list(layers)
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    for offset, impl, name, colors in ((-0.2, "numpy", "NumPy", ("#1f77b4", "#aec7e8")),
                                       (0.2, "torch", "PyTorch", ("#d62728", "#ff9896"))):  # fmt: skip
        fwd = np.array([layers[r][impl]["forward"] for r in rows])
        bwd = np.array([layers[r][impl]["backward"] for r in rows])
        ax.barh(y + offset, fwd, 0.38, color=colors[0], label=f"{name} {t('fwd', lang)}")
        ax.barh(y + offset, bwd, 0.38, left=fwd, color=colors[1], label=f"{name} {t('bwd', lang)}")
    ax.set_yticks(y, rows)
    ax.invert_yaxis()
    ax.set_xlabel(t("ms", lang))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def robustness(per: pd.DataFrame, clean: pd.Series, lang: str):
    """Per corruption (mean over its severities), each model's accuracy; clean first."""
    _style(lang)
    frame = pd.concat([clean.to_frame(t("clean", lang)).T, per]) * 100
    fig, ax = plt.subplots(figsize=(10, 3.2))
    frame.plot.bar(ax=ax, width=0.8)
    ax.set(ylabel=t("mean_corr", lang), ylim=(max(0, frame.min().min() - 10), 100))
    ax.tick_params(axis="x", rotation=20)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=frame.shape[1])
    fig.tight_layout()
    return fig
