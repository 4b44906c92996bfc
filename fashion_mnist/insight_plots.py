"""Figures of what the networks learned, in English (``lang="en"``) or Chinese (``lang="zh"``):
filters, feature maps, embedding, saliency, calibration and errors.

As in ``plots``: each function draws one figure, saves it atomically as PNG when given a path,
closes it and returns it. A ``title`` may be one string or ``{"en": ..., "zh": ...}``, so that
:func:`both_languages` can draw both versions from the same arguments. Chinese text needs a CJK
font (Debian: fonts-noto-cjk); without one the figure is still drawn, its Chinese as empty boxes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib import font_manager

from .data import CLASS_NAMES, CLASS_NAMES_ZH, COLS, ROWS
from .plots import _finish

LANGUAGES = ("en", "zh")
CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "Microsoft YaHei",
             "PingFang SC", "SimHei")  # fmt: skip

TEXT = {
    "filters": ("First convolution's filters ({n} of {k}x{k})", "第一层卷积核（{n} 个，{k}×{k}）"),
    "input": ("input", "输入"),
    "feature_maps": ("Feature maps of one test image (first {c} channels)",
                     "一张测试图像的特征图（前 {c} 个通道）"),
    "embedding": ("2-D embedding of the penultimate features", "倒数第二层特征的二维嵌入"),
    "true_pred": ("true: {t}\npred: {p}", "真实：{t}\n预测：{p}"),
    "saliency": ("Saliency", "显著图"),
    "confidence": ("confidence", "置信度"),
    "accuracy": ("accuracy", "准确率"),
    "images": ("images", "图像数"),
    "ideal": ("perfect calibration", "完美校准"),
    "gap": ("gap", "差距"),
    "before": ("Before temperature scaling\nECE {ece:.2%}", "温度缩放前\nECE {ece:.2%}"),
    "after": ("After temperature scaling (T = {t:.2f})\nECE {ece:.2%}",
              "温度缩放后（T = {t:.2f}）\nECE {ece:.2%}"),
    "after_no_t": ("After temperature scaling\nECE {ece:.2%}", "温度缩放后\nECE {ece:.2%}"),
    "reliability": ("Reliability on the test set", "测试集上的可靠性图"),
    "confusion": ("Errors: share of each true class predicted as another (%)",
                  "错误分布：各真实类别被误判为其他类别的比例（%）"),
    "true": ("true", "真实类别"),
    "predicted": ("predicted", "预测类别"),
    "mistakes": ("The most confident mistakes", "置信度最高的错误"),
    "f1": ("F1 score per class", "各类别的 F1 分数"),
}  # fmt: skip


def text(key: str, lang: str, **values) -> str:
    """The figure text ``key`` in ``lang``, formatted with ``values``."""
    return TEXT[key][LANGUAGES.index(_check_lang(lang))].format(**values)


def _check_lang(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {LANGUAGES}, got {lang!r}")
    return lang


def _title(title, lang: str, default: str) -> str:
    if title is None:
        return default
    return title[lang] if isinstance(title, Mapping) else str(title)


def class_names(lang: str) -> tuple[str, ...]:
    return CLASS_NAMES_ZH if _check_lang(lang) == "zh" else CLASS_NAMES


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The first installed font of ``CJK_FONTS`` (None, with a warning, when there is none)."""
    for name in CJK_FONTS:
        try:
            font_manager.findfont(font_manager.FontProperties(family=name),
                                  fallback_to_default=False)  # fmt: skip
            return name
        except ValueError:
            continue
    warnings.warn("no CJK font found (Debian: apt-get install fonts-noto-cjk): Chinese figure "
                  "text will show as empty boxes", stacklevel=2)  # fmt: skip
    return None


def _fonts(lang: str):
    """Settings under which the figure is drawn: a CJK font first for Chinese. The family names
    are stored in each text as it is made, so a figure shown later keeps them."""
    font = cjk_font() if _check_lang(lang) == "zh" else None
    if font is None:
        return contextlib.nullcontext()
    return plt.rc_context({"font.family": [font, "DejaVu Sans"], "axes.unicode_minus": False})


def _drawn(plot):
    """Draw ``plot`` under ``_fonts(lang)``, ``lang`` given by position or by name."""
    signature = inspect.signature(plot)

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        with _fonts(bound.arguments["lang"]):
            return plot(*bound.args, **bound.kwargs)

    return wrapper


def _image(ax, pixels) -> None:
    ax.imshow(np.asarray(pixels).reshape(ROWS, COLS), cmap="gray")
    ax.set_xticks([])
    ax.set_yticks([])


@_drawn
def plot_filters(weights, path=None, lang: str = "en", title=None, cols: int = 8):
    """Convolution filters ``(F, C, k, k)`` as a grid of F*C tiles, each on its own symmetric
    colour scale (red positive, blue negative)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(f"weights must have shape (F, C, k, k), got {w.shape}")
    tiles = w.reshape(-1, *w.shape[2:])
    cols = min(cols, len(tiles))
    rows = -(-len(tiles) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.1 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, tile) in enumerate(zip(axes.flat, tiles, strict=False)):
        limit = np.abs(tile).max() or 1.0
        ax.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit)
        f, c = divmod(i, w.shape[1])  # filter, input channel
        ax.set_title(f"{f + 1}" if w.shape[1] == 1 else f"{f + 1}.{c + 1}", fontsize=7)
    fig.suptitle(_title(title, lang, text("filters", lang, n=len(tiles), k=w.shape[2])))
    fig.tight_layout()
    return _finish(fig, path)


@_drawn
def plot_feature_maps(image, maps: Sequence[tuple[str, np.ndarray]], path=None, lang: str = "en",
                      title=None, channels: int = 8):  # fmt: skip
    """The input image, then one row per ``(layer name, (C, H, W))`` with its first ``channels``
    channels (each on its own colour scale)."""
    if not maps:
        raise ValueError("maps is empty: nothing to draw")
    channels = min(channels, max(np.asarray(m).shape[0] for _, m in maps))
    fig, axes = plt.subplots(len(maps), channels + 1, squeeze=False,
                             figsize=(1.2 * (channels + 1), 1.3 * len(maps) + 0.6))  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    _image(axes[0, 0], image)
    axes[0, 0].axis("on")
    axes[0, 0].set_title(text("input", lang), fontsize=8)
    for row, (name, array) in zip(axes, maps, strict=True):
        array = np.asarray(array)
        if array.ndim != 3:
            raise ValueError(f"feature map {name!r} must be (C, H, W), got {array.shape}")
        for c in range(min(channels, array.shape[0])):
            row[c + 1].imshow(array[c], cmap="viridis")
        row[1].set_title(f"{name} {array.shape[0]}×{array.shape[1]}×{array.shape[2]}",
                         fontsize=8, loc="left")  # fmt: skip
    fig.suptitle(_title(title, lang, text("feature_maps", lang, c=channels)))
    fig.tight_layout()
    return _finish(fig, path)


@_drawn
def plot_embedding(coords, labels, path=None, lang: str = "en", title=None):
    """Points ``(n, 2)`` coloured by class, with the class names in the legend."""
    xy, y = np.asarray(coords), np.asarray(labels)
    if xy.ndim != 2 or xy.shape[1] != 2 or y.shape != (len(xy),):
        raise ValueError(f"coords must be (n, 2) and labels (n,), got {xy.shape} and {y.shape}")
    fig, ax = plt.subplots(figsize=(8, 6.5))
    palette = sns.color_palette("tab10", len(CLASS_NAMES))
    for c, name in enumerate(class_names(lang)):
        keep = y == c
        ax.scatter(xy[keep, 0], xy[keep, 1], s=5, alpha=0.7, color=palette[c], label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(_title(title, lang, text("embedding", lang)))
    fig.tight_layout()
    return _finish(fig, path)


def _true_pred(label: int, predicted: int, lang: str) -> str:
    names = class_names(lang)
    return text("true_pred", lang, t=names[label], p=names[predicted])


@_drawn
def plot_saliency(images, maps, labels, predicted, path=None, lang: str = "en", title=None):
    """Each image (top) and its map over it (bottom): ``|map|`` scaled to [0, 1] per image, so a
    signed gradient and a Grad-CAM map are drawn alike."""
    maps = np.abs(np.asarray(maps, dtype=np.float64)).reshape(-1, ROWS, COLS)
    n = len(maps)
    if not len(images) == len(labels) == len(predicted) == n:
        raise ValueError(f"images, maps, labels and predicted must have the same length, got "
                         f"{len(images)}, {n}, {len(labels)} and {len(predicted)}")
    fig, axes = plt.subplots(2, n, figsize=(1.5 * n, 3.6), squeeze=False)
    for i in range(n):
        _image(axes[0, i], images[i])
        axes[0, i].set_title(_true_pred(int(labels[i]), int(predicted[i]), lang), fontsize=7,
                             color="black" if labels[i] == predicted[i] else "red")  # fmt: skip
        _image(axes[1, i], images[i])
        axes[1, i].imshow(maps[i] / (maps[i].max() or 1.0), cmap="jet", alpha=0.5, vmin=0, vmax=1)
    fig.suptitle(_title(title, lang, text("saliency", lang)))
    fig.tight_layout()
    return _finish(fig, path)


def _reliability_panel(ax, table: Mapping, lang: str) -> None:
    edges = np.linspace(0, 1, len(table["count"]) + 1)  # equal widths, as insight's bins
    filled = np.asarray(table["count"]) > 0
    left, width = edges[:-1][filled], np.diff(edges)[filled]
    accuracy = np.asarray(table["accuracy"])[filled]
    confidence = np.asarray(table["confidence"])[filled]
    ax.bar(left, accuracy, width, align="edge", color="tab:blue", edgecolor="black", lw=0.5,
           label=text("accuracy", lang))  # fmt: skip
    # unfilled, so that the accuracy shows through where the model is under-confident
    ax.bar(left, confidence - accuracy, width, bottom=accuracy, align="edge", facecolor="none",
           edgecolor="tab:red", hatch="//", lw=1, label=text("gap", lang))  # fmt: skip
    ax.plot([0, 1], [0, 1], "k--", lw=1, label=text("ideal", lang))
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=text("confidence", lang), ylabel=text("accuracy", lang))
    ax.legend(fontsize=8, loc="upper left")


@_drawn
def plot_reliability(before: Mapping, after: Mapping, ece_before: float, ece_after: float,
                     path=None, lang: str = "en", title=None, temperature: float | None = None):
    """Reliability diagrams (``insight.reliability`` tables) before and after temperature
    scaling, above the number of images per bin (log scale)."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.2), height_ratios=(3, 1), sharex=True)
    after_title = (text("after", lang, t=temperature, ece=ece_after) if temperature is not None
                   else text("after_no_t", lang, ece=ece_after))  # fmt: skip
    for col, table, heading in ((0, before, text("before", lang, ece=ece_before)),
                                (1, after, after_title)):  # fmt: skip
        _reliability_panel(axes[0, col], table, lang)
        axes[0, col].set_title(heading, fontsize=10)
        axes[0, col].set_xlabel("")
        count = np.asarray(table["count"])
        edges = np.linspace(0, 1, len(count) + 1)
        axes[1, col].bar(edges[:-1], count, np.diff(edges), align="edge", color="tab:gray")
        axes[1, col].set_yscale("log")
        axes[1, col].set(xlabel=text("confidence", lang), ylabel=text("images", lang))
    fig.suptitle(_title(title, lang, text("reliability", lang)))
    fig.tight_layout()
    return _finish(fig, path)


@_drawn
def plot_confusion_errors(confusion, path=None, lang: str = "en", title=None):
    """The confusion matrix as percentages of each true class (rows), the diagonal (correct)
    masked so that the colours show only the errors."""
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got {cm.shape}")
    share = 100 * cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    names = class_names(lang) if len(cm) == len(CLASS_NAMES) else None
    fig, ax = plt.subplots(figsize=(8, 6.8))
    labels = np.where(share >= 0.05, np.char.mod("%.1f", share), "")  # no "0.0" clutter
    sns.heatmap(share, mask=np.eye(len(cm), dtype=bool), annot=labels, fmt="", cmap="Reds",
                cbar=False, ax=ax, xticklabels=names or "auto", yticklabels=names or "auto",
                annot_kws={"size": 8}, linewidths=0.5, linecolor="white")  # fmt: skip
    ax.set(xlabel=text("predicted", lang), ylabel=text("true", lang),
           title=_title(title, lang, text("confusion", lang)))  # fmt: skip
    ax.tick_params(axis="x", rotation=45)
    plt.setp(ax.get_xticklabels(), ha="right")
    fig.tight_layout()
    return _finish(fig, path)


@_drawn
def plot_confident_mistakes(images, mistakes: Sequence[Mapping], path=None, lang: str = "en",
                            title=None, cols: int = 8):  # fmt: skip
    """The images of ``insight.confident_mistakes`` (``images`` is the whole set their indices
    point into), each with its true class, the prediction and its probability."""
    if not mistakes:
        raise ValueError("mistakes is empty: nothing to draw")
    cols = min(cols, len(mistakes))
    rows = -(-len(mistakes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 2.0 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, m in zip(axes.flat, mistakes, strict=False):
        _image(ax, images[m["index"]])
        ax.set_title(f"{_true_pred(m['label'], m['predicted'], lang)} {m['probability']:.1%}",
                     fontsize=7)  # fmt: skip
    fig.suptitle(_title(title, lang, text("mistakes", lang)))
    fig.tight_layout()
    return _finish(fig, path)


@_drawn
def plot_per_class_f1(f1_by_model: Mapping[str, Sequence[float]], path=None, lang: str = "en",
                      title=None):  # fmt: skip
    """Per-class F1 of several models as grouped bars (one colour per model)."""
    if not f1_by_model:
        raise ValueError("f1_by_model is empty")
    names = class_names(lang)
    for model, scores in f1_by_model.items():
        if len(scores) != len(names):
            raise ValueError(f"f1_by_model[{model!r}] has {len(scores)} scores, "
                             f"expected {len(names)}")
    x, width = np.arange(len(names)), 0.8 / len(f1_by_model)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    for i, (model, scores) in enumerate(f1_by_model.items()):
        ax.bar(x + (i - (len(f1_by_model) - 1) / 2) * width, scores, width, label=model)
    lowest = min(min(s) for s in f1_by_model.values())
    ax.set(ylim=(max(0.0, np.floor(lowest * 10) / 10 - 0.05), 1.0), ylabel="F1")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(_title(title, lang, text("f1", lang)))
    fig.tight_layout()
    return _finish(fig, path)


def zh_path(path) -> Path:
    """``name.png`` -> ``name.zh.png``: the Chinese figure beside the English one."""
    path = Path(path)
    return path.with_name(f"{path.stem}.zh{path.suffix}")


def both_languages(plot, path, **kwargs) -> dict[str, Path]:
    """Draw ``plot`` (one of this module's functions) in English to ``path`` and in Chinese
    to ``zh_path(path)``, with the same keyword arguments."""
    paths = {"en": Path(path), "zh": zh_path(path)}
    for lang, target in paths.items():
        plot(path=target, lang=lang, **kwargs)
    return paths
