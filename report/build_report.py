#!/usr/bin/env python3
"""Build the report (English and Chinese Markdown, self-contained HTML, PDF) from both runs.

Reads only what the two notebooks saved (``metrics.json``, ``logs/``, ``figures/`` of each model
folder, and the executed notebooks) and the speed benchmarks' ``benchmarks/bench_lenet.json``
and ``bench_epoch.json`` beside it (``make bench``); nothing is retrained or re-measured. Every number in the report comes from
those files or from ``fashion_mnist.original``, which cites ``ORIGINAL_REPORT.md``.

    python report/build_report.py            # full build: model folders -> report/ (+ README)
    python report/build_report.py --quick    # runs/quick/<model>/ -> runs/quick/report/
    python report/build_report.py --myself DIR --pytorch DIR --out DIR --notebooks DIR
    python report/build_report.py --bench FILE   # another bench_lenet JSON (bench_epoch.json beside it)

A missing input (a model that has not run, an experiment that was skipped) is printed, naming
what is missing, and its section is marked "not run"; the report is built all the same.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jinja2

from fashion_mnist import REPO_ROOT, original
from fashion_mnist.data import CLASS_NAMES, CLASS_NAMES_ZH, COLS, NUM_CLASSES, ROWS, SHA256
from fashion_mnist.files import read_json, write_text
from fashion_mnist.runlog import read_csv

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"

MODELS = ("cnn-by-myself", "cnn-by-pytorch")
DEFAULT_BENCH = REPO_ROOT / "benchmarks" / "bench_lenet.json"  # written by `make bench`
FIGURE_KEYS = ("curves", "curves_first_1000", "confusion", "misclassified")
NOTEBOOK_SOURCES = {"cnn-by-myself": "cnn-by-myself/demo.ipynb",
                    "cnn-by-pytorch": "cnn-by-pytorch/demo.ipynb"}  # fmt: skip


class ReportInputError(RuntimeError):
    """An input exists but cannot be read (corrupt JSON, wrong schema)."""


# --- Formatting (Jinja filters) ---------------------------------------------------------------


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x, digits: int = 2) -> str:
    """0.8612 -> '86.12' (tables say '%' in their header)."""
    return "–" if _missing(x) else f"{100 * x:.{digits}f}"


def pct_s(x, digits: int = 2) -> str:
    return "–" if _missing(x) else f"{100 * x:.{digits}f}%"


def fixed(x, digits: int = 4) -> str:
    return "–" if _missing(x) else f"{x:.{digits}f}"


def intc(x) -> str:
    return "–" if _missing(x) else f"{int(x):,}"


def secs(x) -> str:
    return "–" if _missing(x) else f"{x:,.1f}"


def duration(x) -> str:
    """Seconds in words: '52.3 s', '12.4 min', '2.05 h'."""
    if _missing(x):
        return "–"
    if x < 120:
        return f"{x:.1f} s"
    if x < 7200:
        return f"{x / 60:.1f} min"
    return f"{x / 3600:.2f} h"


def cell(x) -> str:
    """A value as a Markdown table cell: pipes escaped, newlines flattened."""
    if _missing(x):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:g}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def pp(x) -> str:
    """A difference of two accuracies in percentage points, signed."""
    return "–" if _missing(x) else f"{100 * x:+.2f}"


def points(x) -> str:
    """A spread of accuracies (a standard deviation) in percentage points."""
    return "–" if _missing(x) else f"{100 * x:.2f}"


# --- Reading the inputs -----------------------------------------------------------------------


class Notes:
    """Messages about missing or odd inputs, each in English and Chinese: printed (in English)
    and listed in the report of each language. ``items`` holds ``{"en": ..., "zh": ...}``."""

    def __init__(self):
        self.items: list[dict[str, str]] = []

    def add(self, en: str, zh: str) -> None:
        self.items.append({"en": en, "zh": zh})
        print(f"report: {en}", file=sys.stderr)


def _rel(target: Path, out: Path) -> str:
    return Path(os.path.relpath(target, out)).as_posix()


def _load_metrics(model: str, folder: Path, notes: Notes) -> dict | None:
    path = folder / "metrics.json"
    if not path.is_file():
        notes.add(
            f"missing input: {model}: no metrics.json at {path} (run {NOTEBOOK_SOURCES[model]}, "
            "e.g. `make run`); its sections are marked 'not run'",
            f"缺少输入：{model}：{path} 处没有 metrics.json（请运行 {NOTEBOOK_SOURCES[model]}，"
            "例如 `make run`）；相关章节标注为“未运行”",
        )
        return None
    try:
        metrics = read_json(path)
    except ValueError as e:
        raise ReportInputError(f"{path}: not valid JSON: {e}") from None
    for key in ("test_accuracy", "params", "test_report"):
        if key not in metrics:
            raise ReportInputError(f"{path}: no '{key}' (not a run's metrics.json?)")
    return _with_defaults(metrics, MODEL_DEFAULTS)


BENCH_COMMAND = "python benchmarks/bench_lenet.py --record benchmarks/bench_lenet.json"
EPOCH_BENCH_COMMAND = "python benchmarks/bench_epoch.py --record benchmarks/bench_epoch.json"


def _read_bench(path: Path, notes: Notes, parse: Callable[[dict], dict], what: tuple[str, str],
                command: str, left: tuple[str, str]) -> dict | None:  # fmt: skip
    """A benchmark's recorded results (``make bench``): ``parse(data)`` of the JSON at ``path``
    with its provenance, or None with a note, in English and Chinese, when the file is missing or
    unreadable (``parse`` raises), naming the results (``what``), the ``command`` that makes them,
    and what the report leaves out (``left``)."""
    how_en, how_zh = f"run `make bench`, i.e. `{command}`", f"请运行 `make bench`，即 `{command}`"
    if not path.is_file():
        notes.add(f"missing input: no {what[0]} at {path} ({how_en}); {left[0]}",
                  f"缺少输入：{path} 处没有{what[1]}（{how_zh}）；{left[1]}")  # fmt: skip
        return None
    try:
        data = read_json(path)
        parsed = parse(data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        reason = f"no {e}" if isinstance(e, KeyError) else str(e) or type(e).__name__
        notes.add(f"{what[0]} at {path} could not be read ({reason}); {how_en} again; {left[0]}",
                  f"无法读取 {path} 处的{what[1]}（{reason}）；{how_zh} 重新生成；{left[1]}")  # fmt: skip
        return None
    provenance = data.get("provenance") if isinstance(data.get("provenance"), dict) else {}
    return {**parsed, "provenance": provenance}


def _load_bench(path: Path, notes: Notes) -> dict | None:
    """The speed benchmark's results (``make bench``), one row per batch size, or None with a
    note when the file is missing or unreadable. Settings an older file lacks are None."""
    def parse(data: dict) -> dict:
        rows = [{"batch_size": int(batch),
                 **{k: _number(r.get(k)) for k in ("numpy_images_per_s", "torch_images_per_s",
                                                    "ratio")}}
                for batch, r in sorted(data["results"].items(), key=lambda item: int(item[0]))]  # fmt: skip
        if not rows:
            raise ValueError("no results")
        settings = {k: _number(data.get(k)) for k in ("rounds", "steps", "warmup", "threads")}
        return {"path": str(path), "rows": rows, **settings}

    return _read_bench(path, notes, parse, ("speed benchmark results", "速度基准测试结果"),
                       BENCH_COMMAND, ("the speed section is marked 'not run'",
                                       "“训练速度”一节标注为“未运行”"))  # fmt: skip


def _load_epoch_bench(path: Path, notes: Notes) -> dict | None:
    """One epoch of the PyTorch reproduction, ours against a plain loop (``make bench``:
    ``benchmarks/bench_epoch.py``), or None with a note when the file is missing or unreadable."""
    def parse(data: dict) -> dict:
        results = data["results"]
        row = {"ours": _number(results["ours"]["seconds"]),
               "plain": _number(results["plain"]["seconds"]), "ratio": _number(results["ratio"])}
        if None in row.values():
            raise ValueError("a figure is not a number")
        return {**row, **{k: _number(data.get(k)) for k in ("rounds", "steps", "threads")}}

    return _read_bench(path, notes, parse, ("epoch benchmark results", "单轮训练基准测试结果"),
                       EPOCH_BENCH_COMMAND, ("the comparison of our epoch with a plain PyTorch "
                                             "loop is left out",
                                             "省略我们的训练循环与朴素 PyTorch 循环的对比"))  # fmt: skip


def _shown_path(path: Path) -> str:
    """``path`` relative to the repository when inside it (as the report shows it), else as is."""
    try:
        return path.resolve().relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return str(path)


def _number(x):
    """``x`` if it is a number (not a bool), else None."""
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _reproduction_speed(run: dict | None) -> dict | None:
    """Our NumPy reproduction run's seconds per step beside the original's (original.NUMPY_SPEED),
    from its metrics: train_seconds over its configured steps; None when it has not run."""
    if not run:
        return None
    config = run.get("config") or {}
    steps, seconds = config.get("steps"), run.get("train_seconds")
    per_step = seconds / steps if steps and seconds else None
    return {
        "train_seconds": seconds, "steps": steps, "batch_size": config.get("batch_size"),
        "images_per_second": run.get("images_per_second"), "hardware": run.get("hardware"),
        "seconds_per_step": per_step,
        "speedup": original.NUMPY_SPEED["seconds_per_step"] / per_step if per_step else None,
    }  # fmt: skip


RUN_DEFAULTS = {
    "name": "run", "params": None, "layers": [], "config": {}, "checkpoint": None,
    "val_accuracy": None, "test_accuracy": None, "train_seconds": None,
    "images_per_second": None, "hardware": None, "test_report": None, "figures": {}, "logs": {},
    "checkpoints": [], "selected_step": None, "epochs": None, "selected_epoch": None,
    "recorded_from_log": False,
}  # fmt: skip
MODEL_DEFAULTS = {
    "model": None, "implementation": None, "quick": False, "model_code_lines": None,
    "first_images_figure": None, "class_counts": None, "data": None, "gradient_check": None,
    "reproduction": None, "provenance": {}, "ablation": None, "ensemble": None, "resnet": None,
    "gpu_runs": None, "seeds": None, "init_seeds": None,
}  # fmt: skip
REPORT_DEFAULTS = {"accuracy": None, "n": None, "confusion_matrix": None, "per_class": [],
                   "most_confused": []}  # fmt: skip


def _with_defaults(obj: dict, defaults: dict) -> dict:
    """``obj`` with every optional key present (None when absent), so templates can be strict."""
    out = {**defaults, **obj}
    for key, value in defaults.items():
        if out[key] is None and isinstance(value, (dict, list)):
            out[key] = type(value)()
    return out


def _log_summary(records: list[dict]) -> dict | None:
    """What the step log says: steps logged, first loss, mean loss/accuracy of the last 100."""
    steps = [r for r in records if r.get("step") is not None and r.get("loss") is not None]
    if not steps:
        return None
    tail = steps[-min(100, len(steps)) :]
    return {
        "steps": len(steps),
        "last_step": steps[-1]["step"],
        "first_loss": steps[0]["loss"],
        "tail": len(tail),
        "tail_loss": sum(r["loss"] for r in tail) / len(tail),
        "tail_accuracy": sum(r["accuracy"] for r in tail) / len(tail),
    }


def _prepare_run(run: dict, model: str, folder: Path, out: Path, notes: Notes,
                 figure_keys: tuple[str, ...] = FIGURE_KEYS) -> dict:  # fmt: skip
    """A run object plus what the templates need: figures copied (those of ``figure_keys``, the
    ones the report shows), log links, log summary."""
    view = _with_defaults(run, RUN_DEFAULTS)
    if view["test_report"]:
        view["test_report"] = _with_defaults(view["test_report"], REPORT_DEFAULTS)
    name = view["name"]
    view["model"] = model
    view["figure_files"] = dict.fromkeys(FIGURE_KEYS)
    for key, relpath in (run.get("figures") or {}).items():
        if not relpath or key not in figure_keys:
            continue
        source = folder / relpath
        if not source.is_file():
            notes.add(f"missing input: {model} ({name}): figure '{key}' not found at {source}",
                      f"缺少输入：{model}（{name}）：在 {source} 找不到图像 '{key}'")  # fmt: skip
            continue
        target = out / "figures" / f"{model}-{name}-{key}{Path(relpath).suffix}"
        shutil.copyfile(source, target)
        view["figure_files"][key] = f"figures/{target.name}"
    view["log_links"] = {}
    view["log_summary"] = None
    logs = run.get("logs") or {}
    for kind in ("log", "csv"):
        if logs.get(kind):
            path = folder / logs[kind]
            if path.is_file():
                view["log_links"][kind] = {"name": Path(logs[kind]).name, "href": _rel(path, out)}
            else:
                notes.add(f"missing input: {model} ({name}): log file not found at {path}",
                          f"缺少输入：{model}（{name}）：在 {path} 找不到日志文件")  # fmt: skip
    if "csv" in view["log_links"]:
        records = read_csv(folder / logs["csv"])
        if "epochs" not in run and records and "step" in records[0]:
            view["log_summary"] = _log_summary(records)
        if "epochs" not in run and records and "epoch" in records[0]:
            view["epochs"] = records
    layers = run.get("layers") or []
    total = sum(int(layer.get("params", 0)) for layer in layers)
    if layers and total != run.get("params"):
        notes.add(f"{model} ({name}): layer parameters sum to {total}, metrics say "
                  f"{run.get('params')}",
                  f"{model}（{name}）：各层参数之和为 {total}，而 metrics.json 记录的参数量为 "
                  f"{run.get('params')}")  # fmt: skip
    return view


def _beside_the_original(seeds: dict) -> dict:
    """A spread over seeds (torch_run.over_seeds, or a group of torch_run.seeds_by_init) with the
    original's mean test accuracy over the same later epochs, when it ran them, and its last
    epoch's when the runs were as long. Groups recorded before ``hold_out_validation`` held out
    validation."""
    first, last = seeds["later_half"]["first_epoch"], seeds["later_half"]["last_epoch"]
    as_long = last == len(original.TORCH_TEST_ACC)
    return {"hold_out_validation": True, **seeds,
            "original_later_half": original.torch_mean_test_acc(first, last),
            "original_last_epoch": original.TORCH_TEST_ACC[-1] if as_long else None}  # fmt: skip


# What the report's sentences on the groups over seeds say already: how they were trained.
_IMPLIED = ("hold_out_validation=False", "cuda_graphs=True")


def _init_and_changes(group: dict) -> str:
    """A group of torch_run.seeds_by_init named by its initialisation and whatever else it changes
    from the reproduction, but for what its sentence says (_IMPLIED), e.g. 'init=he_xavier'."""
    changes = [change for change in group["description"].split(", ")
               if change != f"init={group['init']}" and change not in _IMPLIED]
    return ", ".join([f"init={group['init']}", *changes])


def _replayed_as_graphs(group: dict) -> bool:
    """Whether a group of torch_run.seeds_by_init replayed its steps as CUDA graphs (make gpu)."""
    return "cuda_graphs=True" in group["description"].split(", ")


def _reproduction_times(gpu_runs: dict) -> dict | None:
    """The slowest and the fastest of the reproduction's full-length GPU runs (gpu_runs.sh times
    each alone), when there are two or more."""
    full_length = len(original.TORCH_TEST_ACC)  # the original's 20 epochs
    rows = [r for r in gpu_runs["rows"]
            if r.get("preset") == "reproduction" and r["epochs"] == full_length]
    if len(rows) < 2:
        return None
    slowest = max(rows, key=lambda r: r["train_seconds"])
    fastest = min(rows, key=lambda r: r["train_seconds"])
    return {"slowest": slowest, "fastest": fastest,
            "speedup": slowest["train_seconds"] / fastest["train_seconds"]}  # fmt: skip


def _checkpoint_rows(run: dict) -> list[dict]:
    selected = run.get("selected_step")
    return [{**c, "selected": c.get("step") == selected} for c in run.get("checkpoints") or []]


def _epoch_rows(run: dict) -> list[dict]:
    selected = run.get("selected_epoch")
    return [{**e, "selected": e.get("epoch") == selected} for e in run.get("epochs") or []]


def _class_rows(metrics: dict | None) -> list[dict]:
    counts = (metrics or {}).get("class_counts") or {}
    rows = []
    for i in range(NUM_CLASSES):
        row = {"class": i, "name": CLASS_NAMES[i], "name_zh": CLASS_NAMES_ZH[i]}
        for split in ("train", "val", "test"):
            values = counts.get(split)
            row[split] = values[i] if values and len(values) == NUM_CLASSES else None
        rows.append(row)
    return rows


def _confusion_verdict(report: dict | None) -> dict | None:
    """Does our largest confusion match the original's (Shirt predicted as T-shirt/top)?"""
    if not report or not report.get("most_confused"):
        return None
    pairs = report["most_confused"]
    t, p = original.LARGEST_CONFUSION
    rank = next((i + 1 for i, q in enumerate(pairs) if (q["true"], q["predicted"]) == (t, p)), None)
    top = pairs[0]
    return {
        "agrees": (top["true"], top["predicted"]) == (t, p),
        "rank": rank,
        "listed": len(pairs),
        "top": {
            **top,
            "true_zh": CLASS_NAMES_ZH[top["true"]],
            "predicted_zh": CLASS_NAMES_ZH[top["predicted"]],
        },  # fmt: skip
        "pair": (t, p),
        "pair_count": report["confusion_matrix"][t][p] if report.get("confusion_matrix") else None,
    }


# --- Derived figures --------------------------------------------------------------------------


def _plot_class_balance(rows: list[dict], path: Path) -> bool:
    if any(r["train"] is None for r in rows):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from fashion_mnist.plots import save

    x = np.arange(NUM_CLASSES)
    splits = [s for s in ("train", "val", "test") if all(r[s] is not None for r in rows)]
    width = 0.8 / len(splits)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    for k, split in enumerate(splits):
        ax.bar(x + (k - (len(splits) - 1) / 2) * width, [r[split] for r in rows], width,
               label=split)  # fmt: skip
    ax.set_xticks(x, CLASS_NAMES, rotation=30, ha="right")
    ax.set(ylabel="images", title="Images per class and split")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return True


def _plot_accuracy_ladder(entries: list[tuple[str, float, str]], path: Path) -> bool:
    """Horizontal bars: public reference points, the original's results and ours."""
    if not entries:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fashion_mnist.plots import save

    entries = sorted(entries, key=lambda e: e[1])
    colors = {"reference": "tab:gray", "original": "tab:orange", "ours": "tab:blue"}
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(entries) + 1.2))
    ax.barh([e[0] for e in entries], [100 * e[1] for e in entries],
            color=[colors[e[2]] for e in entries])  # fmt: skip
    for i, e in enumerate(entries):
        ax.text(100 * e[1] + 0.1, i, f"{100 * e[1]:.2f}", va="center", fontsize=8)
    low = min(100 * e[1] for e in entries)
    ax.set_xlim(max(0.0, low - 3), 100)
    ax.set(xlabel="test accuracy (%)", title="Test accuracy: ours (blue), the original (orange), "
           "public reference points (grey)")  # fmt: skip
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return True


# --- Notebooks, rendering, PDF ----------------------------------------------------------------


def _export_notebooks(folder: Path, out: Path, notes: Notes) -> dict:
    """Each executed notebook as HTML (nbconvert) in ``out/notebooks/``; a note when it cannot."""
    result = {}
    for model in MODELS:
        source = folder / f"{model}.ipynb"
        result[model] = {"href": None, "missing": str(source)}
        if not source.is_file():
            notes.add(f"missing input: executed notebook {source} not found: not exported",
                      f"缺少输入：找不到已执行的 notebook {source}，未导出")  # fmt: skip
            continue
        try:
            import nbformat
            from nbconvert import HTMLExporter

            body, _ = HTMLExporter().from_notebook_node(nbformat.read(source, as_version=4))
        except Exception as e:  # a damaged notebook costs its link, not the report
            notes.add(f"executed notebook {source} could not be exported: {e}",
                      f"已执行的 notebook {source} 无法导出：{e}")  # fmt: skip
            continue
        target = out / "notebooks" / f"{model}.html"
        write_text(target, body)
        result[model] = {"href": f"notebooks/{target.name}", "missing": None}
    return result


def _data_uri(path: Path) -> str:
    kind = {".png": "image/png", ".jpg": "image/jpeg", ".svg": "image/svg+xml"}
    mime = kind.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.do"],
    )
    env.filters.update(pct=pct, pct_s=pct_s, fixed=fixed, intc=intc, secs=secs,
                       duration=duration, cell=cell, pp=pp, points=points)  # fmt: skip
    env.globals["src"] = lambda rel: rel  # figures are referenced relative to the report
    return env


def _markdown_to_html(markdown: str, out: Path) -> dict:
    """Markdown to HTML parts: the title (h1), the body after it, and a table of contents.

    Tables and raw HTML comments are kept; every local image is embedded as a data URI, so the
    HTML stands alone.
    """
    import mistune
    from mistune.toc import add_toc_hook, render_toc_ul

    class EmbeddingRenderer(mistune.HTMLRenderer):
        def image(self, text: str, url: str, title: str | None = None) -> str:
            if not re.match(r"^(https?:|data:)", url) and (out / url).is_file():
                url = _data_uri(out / url)
            return super().image(text, url, title)

    md = mistune.create_markdown(escape=False, renderer=EmbeddingRenderer(escape=False),
                                 plugins=["table", "strikethrough"])  # fmt: skip
    add_toc_hook(md, min_level=2, max_level=2)
    html, state = md.parse(markdown)
    head, sep, body = html.partition("</h1>")
    if not sep:
        head, body = "", html
    return {"heading": head + sep, "body": body, "toc": render_toc_ul(state.env["toc_items"])}


def find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def chromium(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    """Run headless Chromium (as root too) with a throwaway profile and a timeout."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium not found")
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        command = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
            f"--user-data-dir={profile}", *args,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)  # fmt: skip


def print_pdf(html: Path, pdf: Path) -> str | None:
    """Render ``html`` to ``pdf`` with headless Chromium; returns why not, or None on success."""
    if find_chromium() is None:
        return "chromium not found (Debian: apt-get install chromium fonts-noto-cjk): no PDF"
    tmp = pdf.with_name(f".{pdf.name}.tmp")
    try:
        proc = chromium(["--no-pdf-header-footer", "--print-to-pdf-no-header",
                         f"--print-to-pdf={tmp}", html.resolve().as_uri()])  # fmt: skip
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        return "chromium timed out: no PDF"
    if not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        return f"chromium failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
    os.replace(tmp, pdf)
    return None


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(readme: Path, block: str) -> None:
    """Replace only what lies between the results markers of ``readme``, atomically."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ReportInputError(f"{readme}: no {README_START} ... {README_END} block")
    new = pattern.sub(lambda _: f"{README_START}\n{block.strip()}\n{README_END}", text, count=1)
    if new != text:
        write_text(readme, new)


# --- The build --------------------------------------------------------------------------------


def _run_label(name: str) -> dict:
    labels = {
        "tuned": ("tuned", "调优"),
        "reproduction": ("reproduction (the original's settings)", "复现（原报告设置）"),
        "improved": ("improved", "改进"),
    }
    en, zh = labels.get(name, (name, name))
    return {"en": en, "zh": zh}


def build(myself: Path, pytorch: Path, out: Path, notebooks: Path, quick: bool = False,
          readme: Path | None = None, pdf: bool = True, bench: Path = DEFAULT_BENCH) -> dict:  # fmt: skip
    """Build everything into ``out``; returns a summary (paths, notes, stage times). ``bench``
    is the speed benchmark's JSON (``make bench``)."""
    started = time.perf_counter()
    stages: list[dict] = []

    def stage(label_en: str, label_zh: str, t0: float) -> None:
        stages.append({"en": label_en, "zh": label_zh, "seconds": time.perf_counter() - t0})

    out = Path(out)
    notes = Notes()
    (out / "figures").mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    folders = {"cnn-by-myself": Path(myself), "cnn-by-pytorch": Path(pytorch)}
    models = {}
    for model, folder in folders.items():
        metrics = _load_metrics(model, folder, notes)
        entry = {"model": model, "folder": str(folder), "present": metrics is not None,
                 "metrics": metrics or {}, "runs": [], "first_images": None}  # fmt: skip
        if metrics is not None:
            main = _prepare_run(metrics, model, folder, out, notes)
            main["label"] = _run_label(metrics.get("name", "main"))
            entry["main"] = main
            entry["runs"].append(main)
            if metrics.get("reproduction"):
                repro = _prepare_run(metrics["reproduction"], model, folder, out, notes,
                                     ("curves", "curves_first_1000", "confusion"))  # fmt: skip
                repro["label"] = _run_label(repro.get("name", "reproduction"))
                entry["reproduction"] = repro
                entry["runs"].append(repro)
            else:
                notes.add(f"missing input: {model}: no 'reproduction' run in its metrics.json "
                          "(the original's settings): marked 'not run'",
                          f"缺少输入：{model}：metrics.json 中没有 'reproduction' 运行"
                          "（原报告设置的复现）；标注为“未运行”")  # fmt: skip
                entry["reproduction"] = None
            for run in entry["runs"]:
                run["checkpoint_rows"] = _checkpoint_rows(run)
                run["epoch_rows"] = _epoch_rows(run)
                run["confusion_verdict"] = _confusion_verdict(run.get("test_report"))
            first = metrics.get("first_images_figure")
            if first:
                source = folder / first
                if source.is_file():
                    shutil.copyfile(source, out / "figures" / f"{model}-{Path(first).name}")
                    entry["first_images"] = f"figures/{model}-{Path(first).name}"
                else:
                    notes.add(f"missing input: {model}: figure {source} not found",
                              f"缺少输入：{model}：找不到图像 {source}")  # fmt: skip
        else:
            entry["main"] = entry["reproduction"] = None
        models[model] = entry
    stage("read metrics and logs, copy figures", "读取指标与日志、复制图像", t0)

    myself_m = models["cnn-by-myself"]["metrics"]
    torch_m = models["cnn-by-pytorch"]["metrics"]
    extras = {}
    for key, what, what_zh in (("ablation", "ablation study", "消融实验"),
                               ("ensemble", "ensemble", "模型集成"),
                               ("resnet", "ResNet run (needs a GPU)", "ResNet（需要 GPU）"),
                               ("gpu_runs", "runs on a GPU", "GPU 上的运行"),
                               ("seeds", "the reproduction with other seeds (make seeds)",
                                "其他随机种子的复现（make seeds）"),
                               ("init_seeds", "the reproduction over seeds with each "
                                "initialisation (make gpu, make init-seeds, make all-data)",
                                "各初始化方式在多个随机种子下的复现（make gpu、make init-seeds、"
                                "make all-data）")):  # fmt: skip
        value = torch_m.get(key) if models["cnn-by-pytorch"]["present"] else None
        if value is None and models["cnn-by-pytorch"]["present"]:
            notes.add(f"not run: {what}: cnn-by-pytorch/metrics.json has '{key}': null",
                      f"未运行：{what_zh}：cnn-by-pytorch/metrics.json 中 '{key}' 为 null")  # fmt: skip
        extras[key] = value
    if extras["seeds"]:
        extras["seeds"] = _beside_the_original(extras["seeds"])
    if extras["init_seeds"]:
        groups = [{**_beside_the_original(group), "label": _init_and_changes(group)}
                  for group in extras["init_seeds"]["groups"]]  # fmt: skip
        validated = [g for g in groups if g["hold_out_validation"]]
        extras["init_seeds"] = {
            **extras["init_seeds"], "groups": groups,
            "graphed": [g for g in validated if _replayed_as_graphs(g)],  # make gpu
            "held_out": [g for g in validated if not _replayed_as_graphs(g)],  # make init-seeds
            "all_data": [g for g in groups if not g["hold_out_validation"]],  # make all-data
        }  # fmt: skip
    if extras["gpu_runs"]:
        extras["gpu_runs"] = {**extras["gpu_runs"],
                              "reproduction_times": _reproduction_times(extras["gpu_runs"])}  # fmt: skip
    if extras["resnet"]:
        resnet = _prepare_run(extras["resnet"], "cnn-by-pytorch", folders["cnn-by-pytorch"],
                              out, notes, ("curves",))  # fmt: skip
        resnet["label"] = _run_label(resnet.get("name", "resnet"))
        resnet["epoch_rows"] = _epoch_rows(resnet)
        extras["resnet"] = resnet

    bench_results = _load_bench(Path(bench), notes)
    epoch_bench = _load_epoch_bench(Path(bench).parent / "bench_epoch.json", notes)
    our_speed = _reproduction_speed(models["cnn-by-myself"].get("reproduction"))

    t0 = time.perf_counter()
    class_rows = _class_rows(myself_m if models["cnn-by-myself"]["present"] else None)
    figures = {"class_balance": None, "ladder": None}
    if _plot_class_balance(class_rows, out / "figures" / "class-balance.png"):
        figures["class_balance"] = "figures/class-balance.png"
    ladder = [(en, value, "reference") for en, _, value in original.REFERENCE_POINTS]
    ladder += [(f"original: {m}", v, "original") for m, v in original.RESULTS.items()]
    for model, entry in models.items():
        for run in entry["runs"]:
            ladder.append((f"ours: {model} ({run.get('name')})", run["test_accuracy"], "ours"))
    if extras["ensemble"]:
        ladder.append(("ours: ensemble", extras["ensemble"]["test_accuracy"], "ours"))
    if extras["resnet"]:
        ladder.append(("ours: ResNet", extras["resnet"]["test_accuracy"], "ours"))
    if _plot_accuracy_ladder(ladder, out / "figures" / "accuracy-ladder.png"):
        figures["ladder"] = "figures/accuracy-ladder.png"
    stage("draw the class-balance and accuracy figures", "绘制类别分布与准确率对比图", t0)

    t0 = time.perf_counter()
    notebook_links = _export_notebooks(Path(notebooks), out, notes)
    stage("export the executed notebooks to HTML (nbconvert)", "导出已执行的 notebook 为 HTML", t0)

    quick = bool(quick or myself_m.get("quick") or torch_m.get("quick"))
    present = [e for e in models.values() if e["present"]]
    comparison = []
    for entry in present:
        for run in entry["runs"]:
            comparison.append({
                "model": entry["model"], "run": run, "label": run["label"],
                "implementation": entry["metrics"].get("implementation"),
                "code_lines": entry["metrics"].get("model_code_lines"),
            })  # fmt: skip
    if extras["resnet"]:
        comparison.append({"model": "cnn-by-pytorch", "run": extras["resnet"],
                           "label": extras["resnet"]["label"], "implementation": "PyTorch",
                           "code_lines": torch_m.get("model_code_lines")})  # fmt: skip
    references = sorted(
        [{"en": en, "zh": zh, "accuracy": v, "ours": False} for en, zh, v in original.REFERENCE_POINTS]
        + [{"en": f"**ours: {e['model']} ({e['main']['label']['en']})**",
            "zh": f"**我们的 {e['model']}（{e['main']['label']['zh']}）**",
            "accuracy": e["main"]["test_accuracy"], "ours": True} for e in present],
        key=lambda r: r["accuracy"],
    )  # fmt: skip
    best_ours = max(present, key=lambda e: e["main"]["test_accuracy"], default=None)
    if best_ours is not None:
        acc = best_ours["main"]["test_accuracy"]
        below = [r for r in original.REFERENCE_POINTS if r[2] <= acc]
        above = [r for r in original.REFERENCE_POINTS if r[2] > acc]
        standing = {
            "model": best_ours["model"],
            "accuracy": acc,
            "below": below[-1] if below else None,
            "above": above[0] if above else None,
        }
    else:
        standing = None
    ablation_best = ablation_baseline = None
    if extras["ablation"] and extras["ablation"].get("rows"):
        rows = extras["ablation"]["rows"]
        ablation_best = max(rows, key=lambda r: r["val_accuracy"])
        named = [r for r in rows if "baseline" in str(r.get("name", "")).lower()]
        ablation_baseline = named[0] if named else rows[0]
        if ablation_baseline is ablation_best:
            ablation_baseline = None
    ensemble_best_member = None
    if extras["ensemble"] and extras["ensemble"].get("member_test_accuracies"):
        accs = extras["ensemble"]["member_test_accuracies"]
        name = max(accs, key=accs.get)
        ensemble_best_member = {"name": name, "accuracy": accs[name]}
    speedup = None
    mm, tm = models["cnn-by-myself"]["main"], models["cnn-by-pytorch"]["main"]
    if mm and tm and mm.get("images_per_second") and tm.get("images_per_second"):
        speedup = tm["images_per_second"] / mm["images_per_second"]
    config_keys = {}
    for model, entry in models.items():
        keys: list[str] = []
        for run in entry["runs"]:
            keys += [k for k in (run.get("config") or {}) if k not in keys]
        config_keys[model] = keys

    context = {
        "quick": quick,
        "models": models,
        "myself": models["cnn-by-myself"],
        "pytorch": models["cnn-by-pytorch"],
        "extras": extras,
        "class_rows": class_rows,
        "figures": figures,
        "notebooks": notebook_links,
        "notebooks_dir": str(notebooks),
        "notes": notes.items,
        "original": original.RESULTS,
        "original_epoch_1": original.TORCH_EPOCH_1,
        "original_confusion": {
            "true": original.LARGEST_CONFUSION[0],
            "predicted": original.LARGEST_CONFUSION[1],
        },  # fmt: skip
        "class_names": CLASS_NAMES,
        "class_names_zh": CLASS_NAMES_ZH,
        "sha256": SHA256,
        "image_shape": (ROWS, COLS),
        "comparison": comparison,
        "references": references,
        "standing": standing,
        "ablation_best": ablation_best,
        "ablation_baseline": ablation_baseline,
        "ensemble_best_member": ensemble_best_member,
        "speedup": speedup,
        "bench": bench_results,
        "epoch_bench": epoch_bench,
        "bench_path": _shown_path(Path(bench)),
        "original_speed": original.NUMPY_SPEED,
        "our_speed": our_speed,
        "config_keys": config_keys,
        "stages": stages,
        "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_commit": _git_commit(),
        "python": sys.version.split()[0],
        "library_versions": _library_versions(),
        "pdf_note": "not printed yet",
    }

    def render(final: bool) -> None:
        context["final"] = final
        context["total_seconds"] = time.perf_counter() - started
        env = _environment()
        for lang, suffix in (("en", ""), ("zh", ".zh")):
            template = "report.md.j2" if lang == "en" else "report.zh.md.j2"
            markdown = re.sub(r"\n{3,}", "\n\n", env.get_template(template).render(context))
            write_text(out / f"report{suffix}.md", markdown)
            parts = _markdown_to_html(markdown, out)
            html = env.get_template("report.html.j2").render(
                lang=lang,
                quick=quick,
                title=_title(lang, quick),
                **parts,
                pdf=f"report{suffix}.pdf" if final and context["pdf_note"] is None else None,
            )
            write_text(out / f"report{suffix}.html", html)

    t0 = time.perf_counter()
    render(final=False)
    stage("render Markdown and HTML (Jinja2, mistune)", "渲染 Markdown 与 HTML", t0)

    pdf_note = "PDF not requested (--no-pdf)"
    if pdf:
        t0 = time.perf_counter()
        for suffix in ("", ".zh"):
            pdf_note = print_pdf(out / f"report{suffix}.html", out / f"report{suffix}.pdf")
            if pdf_note is not None:
                print(f"report: {pdf_note}", file=sys.stderr)
                break
        else:
            stage("print report.pdf and report.zh.pdf (headless Chromium)",
                  "用无头 Chromium 生成 PDF（中英文）", t0)  # fmt: skip
    context["pdf_note"] = pdf_note
    render(final=True)  # again, so the stage table holds every stage (the PDF keeps its own)

    _remove_stale(out)

    readme_updated = False
    if readme is not None and not present:
        print(f"report: no model has run: {readme} left as it is")
    elif readme is not None and quick:
        print(f"report: a QUICK build never writes the results into {readme}")
    elif readme is not None:
        block = (
            _environment()
            .get_template("readme_results.md.j2")
            .render(context, report_dir=_rel(out, Path(readme).parent))
        )
        update_readme(Path(readme), block)
        readme_updated = True
    total = time.perf_counter() - started
    print(f"report: built {out}/report.md, report.zh.md, report.html, report.zh.html"
          f"{', report.pdf, report.zh.pdf' if pdf_note is None else ''} in {total:.1f} s"
          f"{'; README results updated' if readme_updated else ''}")  # fmt: skip
    return {"out": out, "notes": notes.items, "stages": stages, "pdf": pdf_note is None,
            "readme_updated": readme_updated, "quick": quick}  # fmt: skip


def _remove_stale(out: Path) -> None:
    """Delete figures and notebook pages that an earlier build left and this one no longer uses."""
    used = set()
    for name in ("report.md", "report.zh.md"):
        text = (out / name).read_text(encoding="utf-8")
        used |= set(re.findall(r"\]\(((?:figures|notebooks)/[^)\s]+)\)", text))
    for folder in ("figures", "notebooks"):
        for path in sorted((out / folder).glob("*")) if (out / folder).is_dir() else []:
            if path.is_file() and f"{folder}/{path.name}" not in used:
                path.unlink()
                print(f"report: removed {path} (left by an earlier build, no longer used)")


def _title(lang: str, quick: bool) -> str:
    if lang == "zh":
        title = "Fashion-MNIST 服装图像分类：NumPy 手写 CNN 与 PyTorch CNN"
        return ("[QUICK 快速模式] " + title) if quick else title
    title = "Fashion-MNIST clothing classification: a CNN from scratch in NumPy and one in PyTorch"
    return ("QUICK run: " + title) if quick else title


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _library_versions() -> dict:
    from importlib import metadata

    versions = {}
    for package in ("jinja2", "mistune", "nbconvert", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="read runs/quick/, write runs/quick/report/, title says QUICK",
    )
    parser.add_argument("--myself", type=Path, help="the NumPy model's output folder")
    parser.add_argument("--pytorch", type=Path, help="the PyTorch model's output folder")
    parser.add_argument("--out", type=Path, help="where the report goes")
    parser.add_argument("--notebooks", type=Path, help="folder of the executed notebooks")
    parser.add_argument(
        "--readme",
        type=Path,
        help="README whose results block a full build rewrites (default: the "
        "repository's README.md when --out is left at its default)",
    )
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH,
                        help="the speed benchmark's results (default: %(default)s, written by "
                        "`make bench`)")  # fmt: skip
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    parser.add_argument("--no-pdf", action="store_true", help="skip the PDF")
    args = parser.parse_args(argv)  # fmt: skip
    base = REPO_ROOT / "runs" / "quick" if args.quick else REPO_ROOT
    try:
        build(
            myself=args.myself or base / "cnn-by-myself",
            pytorch=args.pytorch or base / "cnn-by-pytorch",
            out=args.out or (base / "report" if args.quick else REPO_ROOT / "report"),
            notebooks=args.notebooks
            or REPO_ROOT / "runs" / ("quick" if args.quick else "full") / "notebooks",
            quick=args.quick,
            readme=None
            if args.no_readme or (args.out and not args.readme)
            else args.readme or REPO_ROOT / "README.md",
            pdf=not args.no_pdf,
            bench=args.bench,
        )
    except ReportInputError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
