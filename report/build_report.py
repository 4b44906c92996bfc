#!/usr/bin/env python3
"""Build the report (English and Chinese Markdown, self-contained HTML, PDF) from both runs.

Reads only what the notebooks and experiments saved: ``metrics.json``, ``logs/`` and
``figures/`` of each model folder, the executed notebooks, the benchmarks of ``make bench``
(``benchmarks/bench_lenet.json`` and, beside it, ``bench_epoch.json`` and ``bench_layers.json``)
and ``experiments/robustness/robustness.json``; nothing is retrained or re-measured. Every number
in the report comes from those files or from ``fashion_mnist.original``, which cites
``ORIGINAL_REPORT.md``. They are read once into a typed context (``Report``), which both
languages' templates render.

    python report/build_report.py            # full build: model folders -> report/ (+ README)
    python report/build_report.py --quick    # runs/quick/<model>/ -> runs/quick/report/
    python report/build_report.py --myself DIR --pytorch DIR --out DIR --notebooks DIR
    python report/build_report.py --bench FILE   # another bench_lenet JSON (the others beside it)

A missing input (a model that has not run, an experiment that was skipped) is printed, naming
what is missing, and its section is marked "not run"; the report is built all the same.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, make_dataclass
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
DEFAULT_ROBUSTNESS = REPO_ROOT / "experiments" / "robustness" / "robustness.json"
FIGURE_KEYS = ("curves", "curves_first_1000", "confusion", "misclassified")
NOTEBOOK_SOURCES = {m: f"{m}/demo.ipynb" for m in MODELS}
PROVENANCE_KEYS = ("git_commit", "git_dirty", "date", "cpu", "cpu_cores", "gpu", "platform",
                   "python", "numpy", "torch")  # fmt: skip


class ReportInputError(RuntimeError):
    """An input exists but cannot be read (corrupt JSON, wrong schema)."""


# --- Formatting (Jinja filters) ---------------------------------------------------------------


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _fmt(template: str, scale: float = 1):
    return lambda x, digits=None: "–" if _missing(x) else template.format(scale * x, d=digits)


pct, pct_s, pp, points = (_fmt("{:.2f}", 100), _fmt("{:.2f}%", 100), _fmt("{:+.2f}", 100),
                          _fmt("{:.2f}", 100))  # fmt: skip
secs = _fmt("{:,.1f}")


def fixed(x, digits: int = 4) -> str:
    return "–" if _missing(x) else f"{x:.{digits}f}"


def intc(x) -> str:
    return "–" if _missing(x) else f"{int(x):,}"


def duration(x) -> str:
    """Seconds in words: '52.3 s', '12.4 min', '2.05 h'."""
    if _missing(x):
        return "–"
    return f"{x:.1f} s" if x < 120 else f"{x / 60:.1f} min" if x < 7200 else f"{x / 3600:.2f} h"


def cell(x) -> str:
    """A value as a Markdown table cell: pipes escaped, newlines flattened."""
    if _missing(x):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    return f"{x:g}" if isinstance(x, float) else str(x).replace("|", "\\|").replace("\n", " ")


# --- The context: what the templates receive ------------------------------------------------------


@dataclass(frozen=True)
class Bi:
    """A text in English and in Chinese."""

    en: str
    zh: str


@dataclass
class Table:
    """A Markdown table, announced by ``<!-- table: ID -->``; a cell is text, a ``Bi``, or
    None for a cell left bare (``| |``)."""

    id: str
    header: tuple[list, list]  # English, Chinese
    align: str  # one letter a column: l(eft), r(ight), c(entre)
    rows: list[list]

    def markdown(self, lang: str) -> str:
        def line(cells) -> str:
            return "|" + "".join(" |" if c is None else f" {getattr(c, lang, c)} |" for c in cells)

        rule = "|" + "".join({"l": "---|", "r": "---:|", "c": ":---:|"}[a] for a in self.align)
        rows = [line(self.header[lang == "zh"]), rule, *map(line, self.rows)]
        return "\n".join([f"<!-- table: {self.id} -->", "", *rows])


class Notes(list):
    """Messages about missing or odd inputs (``Bi``): printed in English, listed in each report."""

    def add(self, en: str, zh: str) -> None:
        self.append(Bi(en, zh))
        print(f"report: {en}", file=sys.stderr)


@dataclass
class Provenance:
    """Where and with what a run or benchmark ran (``fashion_mnist.runlog.provenance``)."""

    values: dict

    def __getattr__(self, key):
        return self.__dict__["values"].get(key)

    @property
    def commit(self) -> str:
        return f"`{self.git_commit[:12]}`" if self.git_commit else "–"


# Small records of the context: dataclasses made in a line each (their typed fields are what the
# templates read).
LogSummary = make_dataclass("LogSummary", [("steps", int), ("last_step", int), ("first_loss", float),
                                       ("tail", int), ("tail_loss", float), ("tail_accuracy", float)])
# Our largest confusion against the original's (Shirt predicted as T-shirt/top): (true, predicted)
Verdict = make_dataclass("Verdict", [("agrees", bool), ("rank", "int | None"), ("listed", int),
                                 ("top", "tuple[Bi, Bi]"), ("count", int), ("rate", float),
                                 ("pair", "tuple[Bi, Bi]"), ("pair_count", "int | None")])


@dataclass
class Run:
    """One training run of a model (its main run, its reproduction, the ResNet)."""

    model: str
    name: str
    label: Bi
    params: int
    test_accuracy: float
    val_accuracy: float | None
    train_seconds: float | None  # None when resumed: what the record holds is a part
    images_per_second: float | None
    hardware: str | None
    resumed_from: Bi | None  # "step 3,000" / "第 3,000 步", when resumed
    recorded_from_log: bool
    n_test: int | None
    figures: dict[str, str | None]
    logs: list[tuple[str, str]]  # (file name, link)
    log_summary: LogSummary | None
    layers: Table | None  # None when it trains the main run's network
    progress: Table | None  # per checkpoint (NumPy) or per epoch (PyTorch)
    confusion: Table | None
    per_class: Table | None
    confused: Table | None
    verdict: Verdict | None
    config: dict = field(repr=False, default_factory=dict)


@dataclass
class Model:
    """A model folder's metrics.json: its runs and what its notebook recorded."""

    name: str
    implementation: str | None
    code_lines: int | None
    runs: list[Run]
    reproduction: Run | None
    first_images: str | None
    data: dict | None
    class_counts: dict  # split: images per class (only splits with every class)
    class_totals: dict | None
    gradient_error: float | None
    provenance: Provenance
    notebook_resumed: bool
    config: Table

    @property
    def main(self) -> Run:
        return self.runs[0]


Spread = make_dataclass("Spread", [("mean", float), ("std", float), ("min", float), ("max", float)])
# The reproduction over seeds (make -C experiments seeds), beside the original's later epochs.
Seeds = make_dataclass("Seeds", [("seeds", list), ("test", Spread), ("later", Spread), ("first_epoch", int),
                             ("last_epoch", int), ("original_later_half", "float | None")])
# A group of experiments/summarise.py's seeds_by_init (one initialisation over seeds), and the
# groups by origin.
InitGroup = make_dataclass("InitGroup", [("label", str), ("n", int), ("test", Spread),
                                     ("original_last_epoch", "float | None")])
InitSeeds = make_dataclass("InitSeeds", [("graphed", list), ("held_out", list), ("all_data", list),
                                     ("left_out", list), ("table", Table)])  # make -C experiments gpu/init-seeds/all-data
Ablation = make_dataclass("Ablation", [("epochs", int), ("hardware", str), ("table", Table), ("best", dict),
                                   ("baseline", "dict | None")])
Ensemble = make_dataclass("Ensemble", [("members", int), ("test_accuracy", float),
                                   ("best_member", "tuple[str, float] | None"), ("table", Table)])
# times: the slowest and fastest full-length reproduction, timed alone
GpuRuns = make_dataclass("GpuRuns", [("table", Table), ("times", "dict | None")])
# settings: rounds, steps, warmup, threads (None where an older file lacks them)
SpeedBench = make_dataclass("SpeedBench", [("settings", dict), ("table", Table), ("provenance", Provenance),
                                       ("host", Bi), ("ratios", list), ("before", "BeforeAfter | None")])
# A benchmark before and after the NumPy speed-up (NAME_before.json beside NAME.json).
BeforeAfter = make_dataclass("BeforeAfter", [("table", Table), ("provenance", Provenance)])
EpochBench = make_dataclass("EpochBench", [("ours", float), ("plain", float), ("ratio", float),
                                       ("settings", dict), ("provenance", Provenance)])
# Our NumPy reproduction's seconds per step, beside the original's (original.NUMPY_SPEED).
OurSpeed = make_dataclass("OurSpeed", [("batch_size", int), ("steps", int), ("train_seconds", float),
                                   ("hardware", "str | None"), ("images_per_second", "float | None"),
                                   ("seconds_per_step", float), ("speedup", float)])
# The per-layer profile (bench_layers.json) and the robustness experiment: figure, table, summary.
LayerBench = make_dataclass("LayerBench", [("batch_size", int), ("host", Bi), ("figure", str),
                                       ("table", Table), ("slower", list), ("faster", list),
                                       ("numpy_ms", float), ("torch_ms", float),
                                       ("before", "BeforeAfter | None"),
                                       ("provenance", Provenance)])
Robustness = make_dataclass("Robustness", [("figure", "str | None"), ("table", Table), ("gains", list),
                                       ("test_images", int), ("sets", int), ("left_out", list),
                                       ("seconds", "float | None"), ("provenance", Provenance)])
Stage = make_dataclass("Stage", [("en", str), ("zh", str), ("seconds", float)])


@dataclass
class Report:
    """Everything the templates render, read once from the inputs."""

    quick: bool
    models: dict[str, Model | None]
    folders: dict[str, str]
    notes: Notes
    notebooks: dict[str, dict]
    figures: dict[str, str | None]
    tables: dict[str, Table | None]
    summary: dict
    ablation: Ablation | None
    ensemble: Ensemble | None
    resnet: Run | None
    gpu_runs: GpuRuns | None
    seeds: Seeds | None
    init_seeds: InitSeeds | None
    bench: SpeedBench | None
    bench_path: str
    epoch_bench: EpochBench | None
    layer_bench: LayerBench | None
    robustness: Robustness | None
    our_speed: OurSpeed | None
    builder: dict
    stages: list = field(default_factory=list)

    @property
    def myself(self) -> Model | None:
        return self.models["cnn-by-myself"]

    @property
    def pytorch(self) -> Model | None:
        return self.models["cnn-by-pytorch"]


# --- Reading the inputs -----------------------------------------------------------------------


def _rel(target: Path, out: Path) -> str:
    return Path(os.path.relpath(target, out)).as_posix()


def _shown_path(path: Path) -> str:
    """``path`` relative to the repository when inside it (as the report shows it), else as is."""
    try:
        return path.resolve().relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return str(path)


def _number(x):
    """``x`` if it is a number (not a bool), else None."""
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _need(record: dict, keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if key not in record:
            raise ReportInputError(f"{where}: no '{key}' (not a run's metrics.json?)")


def _run_label(name: str) -> Bi:
    labels = {"tuned": ("tuned", "调优"), "improved": ("improved", "改进"),
              "reproduction": ("reproduction (the original's settings)", "复现（原报告设置）")}  # fmt: skip
    return Bi(*labels.get(name, (name, name)))


def _copy_figure(source: Path, out: Path, name: str) -> str:
    shutil.copyfile(source, out / "figures" / name)
    return f"figures/{name}"


def _log_summary(records: list[dict]) -> LogSummary | None:
    """What the step log says: steps logged, first loss, mean loss/accuracy of the last 100."""
    steps = [r for r in records if r.get("step") is not None and r.get("loss") is not None]
    if not steps:
        return None
    tail = steps[-min(100, len(steps)) :]
    return LogSummary(len(steps), steps[-1]["step"], steps[0]["loss"], len(tail),
                      sum(r["loss"] for r in tail) / len(tail),
                      sum(r["accuracy"] for r in tail) / len(tail))  # fmt: skip


def _verdict(report: dict | None) -> Verdict | None:
    """Does our largest confusion match the original's (Shirt predicted as T-shirt/top)?"""
    if not report or not report.get("most_confused"):
        return None
    pairs, (t, p) = report["most_confused"], original.LARGEST_CONFUSION
    rank = next((i + 1 for i, q in enumerate(pairs) if (q["true"], q["predicted"]) == (t, p)), None)
    top = pairs[0]
    matrix = report.get("confusion_matrix")
    return Verdict((top["true"], top["predicted"]) == (t, p), rank, len(pairs),
                   (_class(top["true"]), _class(top["predicted"])), top["count"], top["rate"],
                   (_class(t), _class(p)), matrix[t][p] if matrix else None)  # fmt: skip


def _class(i: int) -> Bi:
    return Bi(CLASS_NAMES[i], CLASS_NAMES_ZH[i])


def _report_tables(report: dict, key: str) -> tuple[Table, Table, Table]:
    """The test report of a run: confusion matrix, per-class metrics, most-confused pairs."""
    confusion = Table(f"confusion/{key}", (["true \\ predicted"] + [str(i) for i in range(10)],
                                           ["真实 \\ 预测"] + [str(i) for i in range(10)]),
                      "l" + "r" * NUM_CLASSES,
                      [[Bi(f"{i} {CLASS_NAMES[i]}", f"{i} {CLASS_NAMES_ZH[i]}")]
                       + [f"**{v}**" if j == i else v for j, v in enumerate(row)]
                       for i, row in enumerate(report.get("confusion_matrix") or [])])  # fmt: skip
    per_class = Table(f"per-class/{key}", (
        ["Label", "Class", "Precision (%)", "Recall (%)", "F1 (%)", "Support"],
        ["标签", "类别", "精确率 (%)", "召回率 (%)", "F1 (%)", "样本数"]), "rlrrrr",
        [[r["class"], Bi(r["name"], f"{CLASS_NAMES_ZH[r['class']]} {r['name']}"), pct(r["precision"]),
          pct(r["recall"]), pct(r["f1"]), intc(r["support"])] for r in report.get("per_class", [])])  # fmt: skip
    confused = Table(f"confused/{key}", (
        ["True class", "Predicted as", "Count", "Share of the true class (%)"],
        ["真实类别", "被预测为", "次数", "占该类比例 (%)"]), "llrr",
        [[Bi(p["true_name"], CLASS_NAMES_ZH[p["true"]]),
          Bi(p["predicted_name"], CLASS_NAMES_ZH[p["predicted"]]), intc(p["count"]), pct(p["rate"])]
         for p in report.get("most_confused", [])])  # fmt: skip
    return confusion, per_class, confused


EPOCH_HEADER = (["Epoch", "Train loss", "Train acc. (%)", "Val. loss", "Val. acc. (%)", "Test loss",
                 "Test acc. (%)", "Learning rate", "Seconds", "Selected by validation"],
                ["轮次", "训练损失", "训练准确率 (%)", "验证损失", "验证准确率 (%)", "测试损失",
                 "测试准确率 (%)", "学习率", "用时 (s)", "按验证集选中"])  # fmt: skip


def _progress_table(run: dict, key: str, epochs: list | None) -> Table | None:
    """Per checkpoint (NumPy, ``checkpoints``) or per epoch (PyTorch), validation's choice ✓."""
    if epochs:
        return Table(f"epochs/{key}", EPOCH_HEADER, "rrrrrrrrrc", [
            [e["epoch"], fixed(e.get("train_loss")), pct(e.get("train_acc")), fixed(e.get("val_loss")),
             pct(e.get("val_acc")), fixed(e.get("test_loss")), pct(e.get("test_acc")), cell(e.get("lr")),
             secs(e.get("seconds")), "✓" if e.get("epoch") == run.get("selected_epoch") else ""]
            for e in epochs])  # fmt: skip
    if run.get("checkpoints"):
        return Table(f"checkpoints/{key}", (
            ["Checkpoint (step)", "File", "Validation accuracy (%)", "Test accuracy (%)",
             "Selected by validation"],
            ["检查点（步）", "文件", "验证准确率 (%)", "测试准确率 (%)", "按验证集选中"]), "rlrrc",
            [[c["step"], f"`{cell(c['path'])}`", pct(c.get("val_accuracy")), pct(c.get("test_accuracy")),
              "✓" if c.get("step") == run.get("selected_step") else ""] for c in run["checkpoints"]])  # fmt: skip
    return None


def _run(run: dict, model: str, folder: Path, out: Path, notes: Notes, where: str,
         main: dict | None = None, figure_keys: tuple[str, ...] = FIGURE_KEYS) -> Run:  # fmt: skip
    """A run record as the report shows it: figures (of ``figure_keys``) copied, logs linked and
    summarised, tables made. ``main``: the model's main run, when this is another of its runs."""
    _need(run, ("name", "params", "test_accuracy"), where)
    name = run["name"]
    figures = dict.fromkeys(FIGURE_KEYS)
    for key, relpath in (run.get("figures") or {}).items():
        if not relpath or key not in figure_keys:
            continue
        if (folder / relpath).is_file():
            figures[key] = _copy_figure(folder / relpath, out, f"{model}-{name}-{key}{Path(relpath).suffix}")
        else:
            notes.add(f"missing input: {model} ({name}): figure '{key}' not found at {folder / relpath}",
                      f"缺少输入：{model}（{name}）：在 {folder / relpath} 找不到图像 '{key}'")  # fmt: skip
    links, records = [], []
    for kind in ("log", "csv"):
        relpath = (run.get("logs") or {}).get(kind)
        if relpath and (folder / relpath).is_file():
            links.append((Path(relpath).name, _rel(folder / relpath, out)))
            records = read_csv(folder / relpath) if kind == "csv" else records
        elif relpath:
            notes.add(f"missing input: {model} ({name}): log file not found at {folder / relpath}",
                      f"缺少输入：{model}（{name}）：在 {folder / relpath} 找不到日志文件")  # fmt: skip
    epochs = run.get("epochs")
    if epochs is None and records and "epoch" in records[0]:
        epochs = records
    layers = run.get("layers") or []
    total = sum(int(layer.get("params", 0)) for layer in layers)
    if layers and total != run["params"]:
        notes.add(f"{model} ({name}): layer parameters sum to {total}, metrics say {run['params']}",
                  f"{model}（{name}）：各层参数之和为 {total}，而 metrics.json 记录的参数量为 "
                  f"{run['params']}")  # fmt: skip
    resumed = _number(run.get("resumed_from_step")) or _number(run.get("resumed_from_epoch"))
    if resumed:
        unit = ("step", "步") if run.get("resumed_from_step") else ("epoch", "轮")
        resumed = Bi(f"{unit[0]} {resumed:,}", f"第 {resumed:,} {unit[1]}")
    key = f"{model}/{name}" if name != "resnet" else "resnet"
    tables = _report_tables(run["test_report"], key) if run.get("test_report") else (None,) * 3
    return Run(
        model, name, _run_label(name), run["params"], run["test_accuracy"],
        run.get("val_accuracy"), None if resumed else run.get("train_seconds"),
        run.get("images_per_second"), run.get("hardware"), resumed or None,
        bool(run.get("recorded_from_log")), (run.get("test_report") or {}).get("n"), figures,
        links, None if run.get("epochs") is not None or not records or "step" not in records[0]
        else _log_summary(records),
        None if main is not None and layers == main.get("layers") else Table(
            f"layers/{model}/{name}", (["Layer", "Output", "Parameters"], ["层", "输出形状", "参数量"]),
            "llr", [[cell(x["layer"]), cell(x["output"]), intc(x["params"])] for x in layers]
            + [[Bi("**Total**", "**合计**"), None, f"**{intc(run['params'])}**"]]),
        _progress_table(run, key, epochs), *tables, _verdict(run.get("test_report")),
        run.get("config") or {})  # fmt: skip


def _model(model: str, folder: Path, out: Path, notes: Notes) -> tuple[Model | None, dict]:
    """A model folder's metrics.json as a ``Model`` (None with a note when it has not run), and
    the raw metrics (the PyTorch model's extras are read from them)."""
    path = folder / "metrics.json"
    if not path.is_file():
        notes.add(f"missing input: {model}: no metrics.json at {path} (run {NOTEBOOK_SOURCES[model]}, "
                  "e.g. `make run`); its sections are marked 'not run'",
                  f"缺少输入：{model}：{path} 处没有 metrics.json（请运行 {NOTEBOOK_SOURCES[model]}，"
                  "例如 `make run`）；相关章节标注为“未运行”")  # fmt: skip
        return None, {}
    try:
        metrics = read_json(path)
    except ValueError as e:
        raise ReportInputError(f"{path}: not valid JSON: {e}") from None
    _need(metrics, ("test_accuracy", "params", "test_report"), str(path))
    runs = [_run(metrics, model, folder, out, notes, str(path))]
    reproduction = None
    if metrics.get("reproduction"):
        reproduction = _run(metrics["reproduction"], model, folder, out, notes,
                            f"{path} ('reproduction')", metrics,
                            ("curves", "curves_first_1000", "confusion"))  # fmt: skip
        runs.append(reproduction)
    else:
        notes.add(f"missing input: {model}: no 'reproduction' run in its metrics.json "
                  "(the original's settings): marked 'not run'",
                  f"缺少输入：{model}：metrics.json 中没有 'reproduction' 运行"
                  "（原报告设置的复现）；标注为“未运行”")  # fmt: skip
    first = metrics.get("first_images_figure")
    if first and not (folder / first).is_file():
        notes.add(f"missing input: {model}: figure {folder / first} not found",
                  f"缺少输入：{model}：找不到图像 {folder / first}")  # fmt: skip
    if first and (folder / first).is_file():
        first = _copy_figure(folder / first, out, f"{model}-{Path(first).name}")
    counts = metrics.get("class_counts")
    provenance = Provenance(metrics.get("provenance") or {})
    trained = sum(r.train_seconds or 0 for r in runs)
    keys = list(dict.fromkeys(k for r in runs for k in r.config))
    config = Table(f"config/{model}", (["Hyper-parameter"] + [r.label.en for r in runs],
                                       ["超参数"] + [r.label.zh for r in runs]), "l" * (len(runs) + 1),
                   [[f"**`{k}`**" if len(set(v)) > 1 else f"`{k}`", *v]
                    for k in keys for v in [[cell(r.config.get(k)) for r in runs]]])  # fmt: skip
    return Model(
        model, metrics.get("implementation"), metrics.get("model_code_lines"), runs, reproduction,
        first or None, metrics.get("data"),
        {s: v for s, v in (counts or {}).items() if v and len(v) == NUM_CLASSES},
        {s: sum(counts.get(s) or []) for s in ("train", "val", "test")} if counts else None,
        (metrics.get("gradient_check") or {}).get("max_relative_error"), provenance,
        # a notebook that ran for less time than its runs trained had resumed them
        any(r.resumed_from for r in runs) or (provenance.wall_seconds or math.inf) < trained,
        config), metrics  # fmt: skip


def _spread(d: dict) -> Spread:
    return Spread(d["mean"], d["std"], d["min"], d["max"])


# What the report's sentences on the groups over seeds say already: how they were trained.
_IMPLIED = ("hold_out_validation=False", "cuda_graphs=True")


def _init_and_changes(group: dict) -> str:
    """A group of summarise.seeds_by_init (experiments/) named by its initialisation and whatever
    else it changes from the reproduction, but for what its sentence says (_IMPLIED), e.g. 'init=he_xavier'."""
    changes = [change for change in group["description"].split(", ")
               if change != f"init={group['init']}" and change not in _IMPLIED]
    return ", ".join([f"init={group['init']}", *changes])


def _replayed_as_graphs(group: dict) -> bool:
    """Whether a group of summarise.seeds_by_init replayed its steps as CUDA graphs
    (make -C experiments gpu)."""
    return "cuda_graphs=True" in group["description"].split(", ")


def _original_later(later: dict) -> tuple[float | None, float | None]:
    """The original's mean test accuracy over the same later epochs (when it ran them), and its
    last epoch's when the runs were as long."""
    first, last = later["first_epoch"], later["last_epoch"]
    as_long = last == len(original.TORCH_TEST_ACC)
    return original.torch_mean_test_acc(first, last), original.TORCH_TEST_ACC[-1] if as_long else None


def _seeds(s: dict) -> Seeds:
    later = s["later_half"]
    return Seeds([r["seed"] for r in s["rows"]], _spread(s["test_accuracy"]), _spread(later),
                 later["first_epoch"], later["last_epoch"], _original_later(later)[0])  # fmt: skip


def _init_seeds(s: dict) -> InitSeeds:
    """The reproduction over seeds with each initialisation; groups recorded before
    ``hold_out_validation`` held out validation."""
    later = s["groups"][0]["later_half"]
    e1 = original.TORCH_EPOCH_1
    rows, groups = [], {"graphed": [], "held_out": [], "all_data": []}
    for g in s["groups"]:
        test, lh = _spread(g["test_accuracy"]), _spread(g["later_half"])
        kind = ("all_data" if not g.get("hold_out_validation", True)
                else "graphed" if _replayed_as_graphs(g) else "held_out")  # fmt: skip
        groups[kind].append(InitGroup(_init_and_changes(g), len(g["rows"]), test,
                                      _original_later(g["later_half"])[1]))  # fmt: skip
        rows.append([f"`{g['init']}`", cell(g["description"]),
                     cell(", ".join(dict.fromkeys(r["hardware"] for r in g["rows"]))), len(g["rows"]),
                     f"{pct(test.mean)} ± {points(test.std)}", f"{pct(lh.mean)} ± {points(lh.std)}",
                     fixed(g["epoch_1"]["train_loss"]), pct(g["epoch_1"]["train_acc"]),
                     pct(g["epoch_1"]["test_acc"])])  # fmt: skip
    rows.append([Bi("the original", "原报告"), Bi("one run, selected on test", "单次运行，按测试集选择"),
                 None, 1, pct(original.RESULTS["cnn-by-pytorch"]), pct(_original_later(later)[0]),
                 fixed(e1["train_loss"]), pct(e1["train_acc"]), pct(e1["test_acc"])])  # fmt: skip
    epochs = f"{later['first_epoch']}-{later['last_epoch']}"
    table = Table("init-seeds", (
        ["Initialisation", "Trained as", "Hardware", "Seeds", "Test accuracy at the selected epoch (%)",
         f"Mean test accuracy, epochs {epochs} (%)", "Epoch 1 train loss",
         "Epoch 1 train accuracy (%)", "Epoch 1 test accuracy (%)"],
        ["初始化", "训练方式", "硬件", "种子数", "所选轮次的测试准确率 (%)", f"第 {epochs} 轮平均测试准确率 (%)",
         "第 1 轮训练损失", "第 1 轮训练准确率 (%)", "第 1 轮测试准确率 (%)"]), "lllrrrrrr", rows)  # fmt: skip
    return InitSeeds(**groups, left_out=s.get("left_out") or [], table=table)


def _ablation(a: dict) -> Ablation:
    rows = a["rows"]
    best = max(rows, key=lambda r: r["val_accuracy"])
    named = [r for r in rows if "baseline" in str(r.get("name", "")).lower()]
    baseline = named[0] if named else rows[0]
    table = Table("ablation", (
        ["Variant", "What changes", "Validation accuracy (%)", "Test accuracy (%)", "Training time (s)"],
        ["变体", "说明", "验证准确率 (%)", "测试准确率 (%)", "训练用时 (s)"]), "llrrr",
        [[cell(r["name"]), cell(r.get("description")), pct(r["val_accuracy"]), pct(r.get("test_accuracy")),
          secs(r.get("train_seconds"))] for r in rows])  # fmt: skip
    return Ablation(a["epochs"], a["hardware"], table, best, None if baseline is best else baseline)


def _ensemble(e: dict) -> Ensemble:
    accs = e.get("member_test_accuracies") or {}
    best = max(accs, key=accs.get) if accs else None
    table = Table("ensemble", (["Member", "Test accuracy (%)"], ["成员", "测试准确率 (%)"]), "lr",
                  [[cell(n), pct(accs.get(n))] for n in e["members"]]
                  + [[Bi("**Ensemble**", "**集成**"), f"**{pct(e['test_accuracy'])}**"]])  # fmt: skip
    return Ensemble(len(e["members"]), e["test_accuracy"], best and (best, accs[best]), table)


def _gpu_runs(g: dict) -> GpuRuns:
    rows = g["rows"]
    table = Table("gpu-runs", (
        ["Run", "Configuration", "Epochs", "Selected epoch", "Validation accuracy (%)",
         "Test accuracy (%)", "Training time (s)", "Hardware"],
        ["运行", "配置", "轮数", "选出的轮次", "验证准确率 (%)", "测试准确率 (%)", "训练用时 (s)", "硬件"]),
        "llrrrrrl", [[cell(r["name"]), cell(r["description"]), r["epochs"], r["selected_epoch"],
                      pct(r["val_accuracy"]), pct(r["test_accuracy"]), secs(r["train_seconds"]),
                      cell(r["hardware"])] for r in rows])  # fmt: skip
    # the reproduction's full-length runs, each timed alone by experiments/gpu_runs.sh
    alone = [r for r in rows if r.get("preset") == "reproduction"
             and r["epochs"] == len(original.TORCH_TEST_ACC)]  # fmt: skip
    times = None
    if len(alone) >= 2:
        slow, fast = (f(alone, key=lambda r: r["train_seconds"]) for f in (max, min))
        times = {"slowest": slow, "fastest": fast, "speedup": slow["train_seconds"] / fast["train_seconds"],
                 "graphs": "cuda_graphs=True" in fast["description"]}  # fmt: skip
    return GpuRuns(table, times)


EXTRAS = {  # key in cnn-by-pytorch/metrics.json: (parse, what in English, in Chinese)
    "ablation": (_ablation, "ablation study (make -C experiments ablation)",
                 "消融实验（make -C experiments ablation）"),
    "ensemble": (_ensemble, "ensemble", "模型集成"),
    "resnet": (None, "ResNet run (needs a GPU; make -C experiments resnet)",
               "ResNet（需要 GPU；make -C experiments resnet）"),
    "gpu_runs": (_gpu_runs, "runs on a GPU (make -C experiments gpu)", "GPU 上的运行（make -C experiments gpu）"),
    "seeds": (_seeds, "the reproduction with other seeds (make -C experiments seeds)",
              "其他随机种子的复现（make -C experiments seeds）"),
    "init_seeds": (_init_seeds, "the reproduction over seeds with each initialisation (make -C "
                   "experiments gpu, init-seeds, all-data)",
                   "各初始化方式在多个随机种子下的复现（make -C experiments gpu、init-seeds、all-data）"),
}  # fmt: skip


def _extras(metrics: dict, folder: Path, out: Path, notes: Notes) -> dict:
    """The PyTorch model's optional parts, each parsed or None with a note when it did not run."""
    extras = dict.fromkeys(EXTRAS)
    if not metrics:
        return extras
    path = folder / "metrics.json"
    for key, (parse, en, zh) in EXTRAS.items():
        value = metrics.get(key)
        if value is None:
            notes.add(f"not run: {en}: cnn-by-pytorch/metrics.json has '{key}': null",
                      f"未运行：{zh}：cnn-by-pytorch/metrics.json 中 '{key}' 为 null")  # fmt: skip
        elif key == "resnet":
            extras[key] = _run(value, "cnn-by-pytorch", folder, out, notes, f"{path} ('resnet')",
                               figure_keys=("curves",))  # fmt: skip
        else:
            try:
                extras[key] = parse(value)
            except (KeyError, TypeError, IndexError) as e:
                raise ReportInputError(f"{path}: '{key}' has no {e} ({type(e).__name__})") from None
    return extras


BENCH_COMMANDS = {name: f"python benchmarks/{name}.py --record benchmarks/{name}.json"
                  for name in ("bench_lenet", "bench_epoch")}  # fmt: skip
BENCH_COMMANDS["bench_layers"] = "python benchmarks/bench_lenet.py --profile --record benchmarks/bench_layers.json"


def _read_optional(path: Path, notes: Notes, parse, what: tuple[str, str], how: tuple[str, str],
                   left: tuple[str, str], note_missing: bool = True):  # fmt: skip
    """``parse(path)`` of an optional input, or None: with a note, in English and Chinese, when
    the file is unreadable (``parse`` raises), or missing (if ``note_missing``), naming the
    results (``what``), how to make them (``how``), and what the report leaves out (``left``)."""
    if not path.is_file():
        if note_missing:
            notes.add(f"missing input: no {what[0]} at {path} ({how[0]}); {left[0]}",
                      f"缺少输入：{path} 处没有{what[1]}（{how[1]}）；{left[1]}")  # fmt: skip
        return None
    try:
        return parse(path)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
        reason = f"no {e}" if isinstance(e, KeyError) else str(e) or type(e).__name__
        notes.add(f"{what[0]} at {path} could not be read ({reason}); {how[0]} again; {left[0]}",
                  f"无法读取 {path} 处的{what[1]}（{reason}）；{how[1]} 重新生成；{left[1]}")  # fmt: skip
        return None


def _bench(path: Path, notes: Notes, name: str, parse, what: tuple[str, str],
           left: tuple[str, str], note_missing: bool = True):  # fmt: skip
    """A benchmark of ``make bench`` (``benchmarks/NAME.py``): ``parse(data, provenance)``."""
    command = BENCH_COMMANDS[name]
    how = (f"run `make bench`, i.e. `{command}`", f"请运行 `make bench`，即 `{command}`")

    def read(p: Path):
        data = read_json(p)
        prov = data.get("provenance") if isinstance(data.get("provenance"), dict) else {}
        return parse(data, Provenance(prov))

    return _read_optional(path, notes, read, what, how, left, note_missing)


def _settings(data: dict, keys=("rounds", "steps", "warmup", "threads")) -> dict:
    return {k: _number(data.get(k)) for k in keys}


def speed_frame(data: dict):
    """``bench_lenet.json``'s results as a DataFrame: a row per batch size (ascending), columns
    numpy, torch (images/s) and ratio (the median of the per-round NumPy/PyTorch ratios)."""
    import pandas as pd

    rows = {int(b): {"numpy": _number(r.get("numpy_images_per_s")), "torch": _number(r.get("torch_images_per_s")),
                     "ratio": _number(r.get("ratio"))} for b, r in data["results"].items()}  # fmt: skip
    if not rows:
        raise ValueError("no results")
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


def _speed_bench(data: dict, prov: Provenance, path: Path | None = None, notes: Notes | None = None) -> SpeedBench:
    """The speed benchmark's results, one row per batch size; settings an older file lacks: None.
    With ``path``: beside the same benchmark before the NumPy speed-up, when recorded."""
    frame = speed_frame(data)
    table = Table("speed", (["Batch size", "NumPy images/s", "PyTorch images/s", "Ratio NumPy/PyTorch"],
                            ["批大小", "NumPy 图像/秒", "PyTorch 图像/秒", "比值 NumPy/PyTorch"]), "rrrr",
                  [[b, secs(r["numpy"]), secs(r["torch"]), fixed(r["ratio"], 3)] for b, r in frame.iterrows()])  # fmt: skip
    before = path and _before(path, notes, "bench_lenet", speed_frame)
    before = before and _before_after("speed/before-after", Bi("Batch size", "批大小"), " (images/s)", before, frame,
                                    lambda c, v: fixed(v, 3) if c == "ratio" else secs(v))
    settings = _settings(data)
    return SpeedBench(settings, table, prov, _host(prov, settings["threads"]),
                      [(b, r["ratio"]) for b, r in frame.iterrows() if not _missing(r["ratio"])], before)  # fmt: skip


def _epoch_bench(data: dict, prov: Provenance) -> EpochBench:
    """One epoch of the PyTorch reproduction, ours against a plain loop (bench_epoch.py)."""
    r = data["results"]
    row = [_number(r["ours"]["seconds"]), _number(r["plain"]["seconds"]), _number(r["ratio"])]
    if None in row:
        raise ValueError("a figure is not a number")
    return EpochBench(*row, _settings(data), prov)


def layer_times(data: dict):
    """A per-layer profile (``benchmarks/bench_layers.json``, written by ``bench_lenet.py
    --profile --record``) as a DataFrame: a row per layer, columns (implementation, phase), ms
    per step; and per layer each implementation's forward + backward. The one place that knows
    the record's layout: ``{"threads", "results": {"batch", "cpu", "layers": {layer: {"numpy":
    {"forward", "backward"}, "torch": {...}}}}, "provenance"}``."""
    import pandas as pd

    layers = data["results"]["layers"]
    frame = pd.DataFrame({(impl, phase): [float(row[impl][phase]) for row in layers.values()]
                          for impl in ("numpy", "torch") for phase in ("forward", "backward")},
                         index=list(layers))  # fmt: skip
    if frame.empty or frame.isna().any().any():
        raise ValueError("no layers, or a time is missing")
    return frame, frame.T.groupby(level=0, sort=False).sum().T


def _host(prov: Provenance, threads) -> Bi:
    """Where a benchmark ran: CPU, cores, BLAS/torch threads (the record's ``threads``)."""
    cores = f", {prov.cpu_cores} cores" if prov.cpu_cores else ""
    zh_cores = f"，{prov.cpu_cores} 核" if prov.cpu_cores else ""
    return Bi(f"{cell(prov.cpu)}{cores}, {intc(threads)} BLAS/torch thread{'s' if threads != 1 else ''}",
              f"{cell(prov.cpu)}{zh_cores}，BLAS/torch 线程数 {intc(threads)}")  # fmt: skip


def _before(path: Path, notes: Notes, name: str, frame):
    """``NAME_before.json`` beside ``path``, the benchmark ``name`` run on the code before the
    NumPy speed-up: (``frame(data)``, its provenance), or None."""
    return _bench(path.with_name(f"{path.stem}_before.json"), notes, name,
                  lambda data, prov: (frame(data), prov),
                  ("benchmark before the NumPy speed-up", "NumPy 提速前的基准测试"),
                  ("its before/after table is left out", "省略提速前后对比表"), note_missing=False)  # fmt: skip


# The columns of a before/after table: key, English, Chinese, digits.
BEFORE_AFTER = {"numpy": ("NumPy", "NumPy"), "torch": ("PyTorch", "PyTorch"),
                "ratio": ("ratio NumPy/PyTorch", "NumPy/PyTorch 比值")}  # fmt: skip


def _before_after(id: str, first: Bi, unit: str, before: tuple, after, fmt, total: bool = False) -> BeforeAfter:
    """Each row of ``after`` (a DataFrame) beside the same row of ``before`` ((DataFrame,
    Provenance)), column by column (``BEFORE_AFTER``), each formatted by ``fmt(column, value)``;
    a total row of the sums if ``total``."""
    old, prov = before
    keys = list(dict.fromkeys([*old.index, *after.index]))
    cols = [c for c in BEFORE_AFTER if c in after.columns]
    rows = [[cell(k), *(fmt(c, f[c].get(k)) for c in cols for f in (old, after))] for k in keys]
    if total:
        rows.append([Bi("**Total**", "**合计**"),
                     *(f"**{fmt(c, f[c].sum())}**" for c in cols for f in (old, after))])  # fmt: skip
    head = [(f"{BEFORE_AFTER[c][0]} {w}{unit * (c != 'ratio')}", f"{BEFORE_AFTER[c][1]} {z}{unit * (c != 'ratio')}")
            for c in cols for w, z in (("before", "提速前"), ("after", "提速后"))]  # fmt: skip
    return BeforeAfter(Table(id, ([first.en, *(h[0] for h in head)], [first.zh, *(h[1] for h in head)]),
                             "l" + "r" * len(head), rows), prov)  # fmt: skip


def _layer_bench(path: Path, out: Path, notes: Notes) -> LayerBench | None:
    def parse(data: dict, prov: Provenance) -> LayerBench:
        frame, total = layer_times(data)
        ratio = total["numpy"] / total["torch"]
        table = Table("layer-profile", (
            ["Layer", "NumPy forward (ms)", "NumPy backward (ms)", "PyTorch forward (ms)",
             "PyTorch backward (ms)", "Ratio NumPy/PyTorch"],
            ["层", "NumPy 前向 (ms)", "NumPy 反向 (ms)", "PyTorch 前向 (ms)", "PyTorch 反向 (ms)",
             "比值 NumPy/PyTorch"]), "lrrrrr",
            [[cell(layer), *(fixed(v, 3) for v in row), fixed(ratio[layer], 2)]
             for layer, row in frame.iterrows()]
            + [[Bi("**Total**", "**合计**"), None, None, None, None,
                f"**{fixed(total['numpy'].sum() / total['torch'].sum(), 2)}**"]])  # fmt: skip
        figure = out / "figures" / "layer-profile.png"
        _pyplot()  # the Agg backend, before fashion_mnist.plots imports pyplot
        from fashion_mnist.plots import plot_layer_profile

        plot_layer_profile(data, figure)
        slower, faster = ratio[ratio > 1].sort_values(ascending=False), ratio[ratio <= 1].sort_values()
        before = _before(path, notes, "bench_layers", lambda d: layer_times(d)[1])
        before = before and _before_after("layer-profile/before-after", Bi("Layer", "层"), " (ms)",
                                          before, total, lambda _, v: fixed(v, 3), total=True)  # fmt: skip
        return LayerBench(int(data["results"]["batch"]), _host(prov, data.get("threads")),
                          "figures/layer-profile.png", table, [(x, slower[x]) for x in slower.index],
                          [(x, faster[x]) for x in faster.index], total["numpy"].sum(),
                          total["torch"].sum(), before, prov)  # fmt: skip

    return _bench(path, notes, "bench_layers", parse, ("per-layer profile", "逐层耗时剖析"),
                  ("the per-layer profile is left out", "省略逐层耗时剖析"), note_missing=False)  # fmt: skip


# The robustness experiment's models compared: the run trained with augmentation, its baseline.
AUGMENTED = (
    ("pytorch_improved", "pytorch_reproduction",
     Bi("random shifts and flips, flip test-time augmentation", "随机平移与翻转，测试时翻转增强"),
     Bi("no augmentation", "无数据增强")),
    ("numpy_tuned", "numpy_reproduction", Bi("random 1-pixel shifts", "随机 1 像素平移"),
     Bi("no augmentation", "无数据增强")),
)  # fmt: skip
Gain = make_dataclass("Gain", [("model", str), ("how", Bi), ("baseline", str), ("baseline_how", Bi),
                               ("mean", float), ("baseline_mean", float), ("clean_gain", float),
                               ("largest", "tuple[str, float]"), ("smallest", "tuple[str, float]")])


def _robustness(path: Path, out: Path, notes: Notes) -> Robustness | None:
    """``experiments/robustness/robustness.json`` through ``fashion_mnist.corruptions
    .robustness_table`` (a row per corruption and severity, a column per model): per corruption
    its accuracy at each severity, with clean and the mean over the corrupted sets; the sentences
    compare the mean over each corruption's severities."""

    def parse(p: Path) -> Robustness:
        from fashion_mnist.corruptions import robustness_table

        record = read_json(p)
        full = robustness_table(record)
        if full.empty or full.isna().any().any():
            raise ValueError("no results, or a model lacks a corrupted set")
        corrupted = full.drop(index=["clean", "mean corrupted"], level=0)
        per = corrupted.groupby(level=0, sort=False).mean()
        clean, mean = full.loc[("clean", 0)], full.loc[("mean corrupted", "")]
        severities = corrupted.groupby(level=0, sort=False).size()
        def by_severity(c: str, model: str) -> str:  # "87.7 / 76.8 / 38.0" for severities 1-3
            # no-break spaces: a PDF line break inside a cell would part a value from its severity
            return "\u00a0/\u00a0".join(f"{100 * v:.1f}" for v in corrupted.loc[c][model])

        table = Table("robustness", (
            ["Accuracy (%) at severity 1 / 2 / 3", *full.columns],
            ["各强度下的测试准确率 (%)", *full.columns]),
            "l" + "r" * len(full.columns),
            [[Bi("clean", "干净图像"), *(pct(v) for v in clean)]]
            + [[f"`{c}` ({severities[c]})", *(by_severity(c, m) for m in full.columns)]
               for c in per.index]
            + [[Bi(f"**mean over the {len(corrupted)} corrupted sets**", f"**{len(corrupted)} 个损坏集的平均**"),
                *(f"**{pct(v)}**" for v in mean)]])  # fmt: skip
        labels = {key: model["label"] for key, model in record["models"].items()}
        gains = []
        for key, base, how, base_how in AUGMENTED:
            if key in labels and base in labels:
                a, b = labels[key], labels[base]
                gain = (per[a] - per[b]).sort_values()
                gains.append(Gain(a, how, b, base_how, mean[a], mean[b], clean[a] - clean[b],
                                  (gain.index[-1], gain.iloc[-1]), (gain.index[0], gain.iloc[0])))  # fmt: skip
        figure = p.with_suffix(".png")
        prov = Provenance(record.get("provenance") or {})
        return Robustness(_copy_figure(figure, out, "robustness.png") if figure.is_file() else None,
                          table, gains, int(record["test_images"]), len(corrupted),
                          [f"{labels.get(x['model'], x['model'])}: {x['reason']}" for x in record.get("left_out") or []],
                          prov.wall_seconds, prov)  # fmt: skip

    how = ("run `make -C experiments robustness`", "请运行 `make -C experiments robustness`")
    return _read_optional(path, notes, parse, ("robustness results", "鲁棒性实验结果"), how,
                          ("the robustness section is marked 'not run'", "“鲁棒性”一节标注为“未运行”"),
                          note_missing=False)  # fmt: skip


def _our_speed(repro: Run | None) -> OurSpeed | None:
    """Our NumPy reproduction's seconds per step (train_seconds over its configured steps);
    None when it has not run or was resumed (then its time covers only a part)."""
    steps = repro.config.get("steps") if repro else None
    if not steps or not repro.train_seconds:
        return None
    per_step = repro.train_seconds / steps
    return OurSpeed(repro.config.get("batch_size"), steps, repro.train_seconds, repro.hardware,
                    repro.images_per_second, per_step,
                    original.NUMPY_SPEED["seconds_per_step"] / per_step)  # fmt: skip


# --- Tables across the models -------------------------------------------------------------------


def _summary_tables(models: dict[str, Model | None], extras: dict) -> tuple[dict, dict]:
    """Tables that gather the models (classes, comparison, the original's, references,
    provenance), and the summary figures the conclusions quote."""
    myself = models["cnn-by-myself"]
    counts = myself.class_counts if myself else {}
    classes = Table("classes", (["Label", "Name", "Chinese name", "Train", "Validation", "Test"],
                                ["标签", "英文名", "中文名", "训练", "验证", "测试"]), "rllrrr",
                    [[i, CLASS_NAMES[i], CLASS_NAMES_ZH[i],
                      *(intc(counts[s][i]) if s in counts else "–" for s in ("train", "val", "test"))]
                     for i in range(NUM_CLASSES)])  # fmt: skip
    present = [m for m in models.values() if m]
    runs = [(m, r) for m in present for r in m.runs]
    if extras["resnet"]:
        runs.append((models["cnn-by-pytorch"], extras["resnet"]))
    comparison = Table("comparison/all", (
        ["Model", "Run", "Implementation", "Parameters", "Test accuracy (%) (validation-selected)",
         "Validation accuracy (%)", "Training time (s)", "Images/s", "Hardware", "Lines of model code"],
        ["模型", "运行", "实现", "参数量", "测试准确率 (%)（按验证集选出）", "验证准确率 (%)", "训练用时 (s)",
         "图像/秒", "硬件", "模型代码行数"]), "lllrrrrrlr",
        [[m.name, r.label, cell(m.implementation), intc(r.params), pct(r.test_accuracy),
          pct(r.val_accuracy), _train_time(r, secs), secs(r.images_per_second), cell(r.hardware),
          intc(m.code_lines)] for m, r in runs]) if runs else None  # fmt: skip
    original_table = Table("original", (
        ["Model", "Original report, test accuracy (%)", "Our reproduction (%)",
         "Ours, tuned/improved (%)", "Difference (points, ours − original)"],
        ["模型", "原报告测试准确率 (%)", "我们的复现 (%)", "我们的调优/改进版 (%)",
         "差值（百分点，调优/改进 − 原报告）"]), "lrrrr",
        [[name, pct(original.RESULTS[name]), pct(m and m.reproduction and m.reproduction.test_accuracy),
          pct(m and m.main.test_accuracy), pp(m and m.main.test_accuracy - original.RESULTS[name])]
         for name, m in models.items()])  # fmt: skip
    ours = [Bi(f"**ours: {m.name} ({m.main.label.en})**", f"**我们的 {m.name}（{m.main.label.zh}）**")
            for m in present]  # fmt: skip
    refs = sorted([(Bi(en, zh), v) for en, zh, v in original.REFERENCE_POINTS]
                  + [(b, m.main.test_accuracy) for b, m in zip(ours, present, strict=True)],
                  key=lambda r: r[1])  # fmt: skip
    references = Table("references", (["Method", "Test accuracy (%)"], ["方法", "测试准确率 (%)"]), "lr",
                       [[name, pct(v)] for name, v in refs])  # fmt: skip
    provenance = Table("provenance", (["Field", *models], ["项目", *models]), "l" * (len(models) + 1),
                       [[f"`{k}`", *(cell(getattr(m.provenance, k) if m else None) for m in models.values())]
                        for k in PROVENANCE_KEYS])  # fmt: skip
    best = max(present, key=lambda m: m.main.test_accuracy, default=None)
    standing = None
    if best:
        acc = best.main.test_accuracy
        below = [r for r in original.REFERENCE_POINTS if r[2] <= acc]
        above = [r for r in original.REFERENCE_POINTS if r[2] > acc]
        standing = {"model": best.name, "accuracy": acc, "below": below[-1] if below else None,
                    "above": above[0] if above else None}  # fmt: skip
    mm, tm = (m and m.main for m in models.values())
    speedup = (tm.images_per_second / mm.images_per_second
               if mm and tm and mm.images_per_second and tm.images_per_second else None)  # fmt: skip
    tables = {"classes": classes, "comparison": comparison, "original": original_table,
              "references": references, "provenance": provenance}  # fmt: skip
    return tables, {"standing": standing, "speedup": speedup}


def _train_time(run: Run, fmt) -> str | Bi:
    """A run's training time, or what replaces it for a resumed run."""
    return fmt(run.train_seconds) if not run.resumed_from else Bi("resumed", "续跑")


def _stage_table(report: Report, total: float) -> Table:
    rows = []
    for m in filter(None, report.models.values()):
        for r in m.runs:
            rows.append([Bi(f"{m.name}: training ({r.label.en})", f"{m.name}: 训练（{r.label.zh}）"),
                         _train_time(r, secs), _train_time(r, duration)])  # fmt: skip
        wall = None if m.notebook_resumed else m.provenance.wall_seconds
        what = (Bi("the whole notebook (training, evaluation, figures)", "整个 notebook（含评估与绘图）")
                if not m.notebook_resumed else
                Bi("the whole notebook: resumed, so its wall time is not the training time",
                   "整个 notebook：从检查点续跑，其用时不是训练用时"))  # fmt: skip
        rows.append([Bi(f"{m.name}: {what.en}", f"{m.name}: {what.zh}"), secs(wall), duration(wall)])
    if report.resnet:
        rows.append([Bi("ResNet training", "ResNet 训练"), _train_time(report.resnet, secs),
                     _train_time(report.resnet, duration)])  # fmt: skip
    rows += [[Bi(f"report: {s.en}", f"报告: {s.zh}"), secs(s.seconds), duration(s.seconds)]
             for s in report.stages]  # fmt: skip
    rows.append([Bi("**report build, total (until this file was written)**", "**报告构建合计（至写出本文件）**"),
                 f"**{secs(total)}**", f"**{duration(total)}**"])  # fmt: skip
    return Table("stages", (["Stage", "Seconds", "Duration"], ["阶段", "用时 (s)", "用时"]), "lrr", rows)


# --- Derived figures --------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path: Path) -> bool:
    from fashion_mnist.plots import save

    fig.tight_layout()
    save(fig, path)
    _pyplot().close(fig)
    return True


def _plot_class_balance(counts: dict, path: Path) -> bool:
    if "train" not in counts:
        return False
    import numpy as np

    x = np.arange(NUM_CLASSES)
    splits = [s for s in ("train", "val", "test") if s in counts]
    width = 0.8 / len(splits)
    fig, ax = _pyplot().subplots(figsize=(10, 3.6))
    for k, split in enumerate(splits):
        ax.bar(x + (k - (len(splits) - 1) / 2) * width, counts[split], width, label=split)
    ax.set_xticks(x, CLASS_NAMES, rotation=30, ha="right")
    ax.set(ylabel="images", title="Images per class and split")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _finish(fig, path)


def _plot_accuracy_ladder(entries: list[tuple[str, float, str]], path: Path) -> bool:
    """Horizontal bars: public reference points, the original's results and ours."""
    entries = sorted(entries, key=lambda e: e[1])
    colors = {"reference": "tab:gray", "original": "tab:orange", "ours": "tab:blue"}
    fig, ax = _pyplot().subplots(figsize=(9, 0.38 * len(entries) + 1.2))
    ax.barh([e[0] for e in entries], [100 * e[1] for e in entries],
            color=[colors[e[2]] for e in entries])  # fmt: skip
    for i, e in enumerate(entries):
        ax.text(100 * e[1] + 0.1, i, f"{100 * e[1]:.2f}", va="center", fontsize=8)
    ax.set_xlim(max(0.0, min(100 * e[1] for e in entries) - 3), 100)
    ax.set(xlabel="test accuracy (%)", title="Test accuracy: ours (blue), the original (orange), "
           "public reference points (grey)")  # fmt: skip
    ax.grid(axis="x", alpha=0.3)
    return _finish(fig, path)


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
        write_text(out / "notebooks" / f"{model}.html", body)
        result[model] = {"href": f"notebooks/{model}.html", "missing": None}
    return result


def _data_uri(path: Path) -> str:
    kind = {".png": "image/png", ".jpg": "image/jpeg", ".svg": "image/svg+xml"}
    mime = kind.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@jinja2.pass_context
def _table(context, table: Table | None) -> str:
    return table.markdown(context["lang"]) if table else ""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)  # fmt: skip
    env.filters.update(pct=pct, pct_s=pct_s, fixed=fixed, intc=intc, secs=secs, duration=duration,
                       cell=cell, pp=pp, points=points)  # fmt: skip
    env.filters["trained"] = lambda run: getattr(_train_time(run, duration), "en", duration(run.train_seconds))
    env.globals.update(table=_table, sha256=SHA256, n_classes=NUM_CLASSES, image_shape=(ROWS, COLS),
                       original=original.RESULTS, original_speed=original.NUMPY_SPEED)  # fmt: skip
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


def read_inputs(myself: Path, pytorch: Path, out: Path, notebooks: Path, quick: bool, bench: Path,
                robustness: Path, timed) -> Report:  # fmt: skip
    """Every input, read once into the report's context (figures copied into ``out/figures``)."""
    notes = Notes()
    folders = {"cnn-by-myself": Path(myself), "cnn-by-pytorch": Path(pytorch)}
    with timed("read metrics and logs, copy figures", "读取指标与日志、复制图像"):
        models, metrics = {}, {}
        for name, folder in folders.items():
            models[name], metrics[name] = _model(name, folder, out, notes)
        extras = _extras(metrics["cnn-by-pytorch"], folders["cnn-by-pytorch"], out, notes)
    bench = Path(bench)
    speed = _bench(bench, notes, "bench_lenet", lambda data, prov: _speed_bench(data, prov, bench, notes), ("speed benchmark results", "速度基准测试结果"),
                   ("the speed section is marked 'not run'", "“训练速度”一节标注为“未运行”"))  # fmt: skip
    epoch = _bench(bench.parent / "bench_epoch.json", notes, "bench_epoch", _epoch_bench,
                   ("epoch benchmark results", "单轮训练基准测试结果"),
                   ("the comparison of our epoch with a plain PyTorch loop is left out",
                    "省略我们的训练循环与朴素 PyTorch 循环的对比"))  # fmt: skip
    with timed("draw the class-balance and accuracy figures", "绘制类别分布与准确率对比图"):
        tables, summary = _summary_tables(models, extras)
        figures = dict.fromkeys(("class_balance", "ladder"))
        myself_counts = models["cnn-by-myself"].class_counts if models["cnn-by-myself"] else {}
        if _plot_class_balance(myself_counts, out / "figures" / "class-balance.png"):
            figures["class_balance"] = "figures/class-balance.png"
        ladder = [(en, value, "reference") for en, _, value in original.REFERENCE_POINTS]
        ladder += [(f"original: {m}", v, "original") for m, v in original.RESULTS.items()]
        ladder += [(f"ours: {m.name} ({r.name})", r.test_accuracy, "ours")
                   for m in models.values() if m for r in m.runs]  # fmt: skip
        if extras["ensemble"]:
            ladder.append(("ours: ensemble", extras["ensemble"].test_accuracy, "ours"))
        if extras["resnet"]:
            ladder.append(("ours: ResNet", extras["resnet"].test_accuracy, "ours"))
        if _plot_accuracy_ladder(ladder, out / "figures" / "accuracy-ladder.png"):
            figures["ladder"] = "figures/accuracy-ladder.png"
    with timed("draw the per-layer profile (plots.plot_layer_profile)", "绘制逐层耗时图"):
        layers = _layer_bench(bench.parent / "bench_layers.json", out, notes)
    with timed("export the executed notebooks to HTML (nbconvert)", "导出已执行的 notebook 为 HTML"):
        notebook_links = _export_notebooks(Path(notebooks), out, notes)
    from importlib import metadata

    versions = {}
    for package in ("jinja2", "mistune", "nbconvert", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    builder = {"built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "commit": _git_commit(), "python": sys.version.split()[0], "versions": versions,
               "pdf_note": "not printed yet", "final": False, "total_seconds": 0.0}  # fmt: skip
    return Report(
        quick=bool(quick or any(metrics[m].get("quick") for m in MODELS)), models=models,
        folders={m: str(f) for m, f in folders.items()}, notes=notes, notebooks=notebook_links,
        figures=figures, tables=tables, summary=summary, **extras, bench=speed,
        bench_path=_shown_path(bench), epoch_bench=epoch, layer_bench=layers,
        robustness=_robustness(Path(robustness), out, notes),
        our_speed=_our_speed(models["cnn-by-myself"] and models["cnn-by-myself"].reproduction),
        builder=builder)  # fmt: skip


def build(myself: Path, pytorch: Path, out: Path, notebooks: Path, quick: bool = False,
          readme: Path | None = None, pdf: bool = True, bench: Path = DEFAULT_BENCH,
          robustness: Path = DEFAULT_ROBUSTNESS) -> dict:  # fmt: skip
    """Build everything into ``out``; returns a summary (paths, notes, stage times). ``bench``
    is the speed benchmark's JSON (``make bench``), ``robustness`` the robustness experiment's."""
    started = time.perf_counter()
    stages: list[Stage] = []
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def timed(en: str, zh: str):  # a stage of the build, timed
        t0 = time.perf_counter()
        yield
        stages.append(Stage(en, zh, time.perf_counter() - t0))

    report = read_inputs(myself, pytorch, out, notebooks, quick, bench, robustness, timed)
    report.stages = stages
    env = _environment()

    def render(final: bool) -> None:
        report.builder.update(final=final, total_seconds=time.perf_counter() - started)
        report.tables["stages"] = _stage_table(report, report.builder["total_seconds"])
        for lang, suffix in (("en", ""), ("zh", ".zh")):
            template = env.get_template(f"report{suffix}.md.j2")
            markdown = re.sub(r"\n{3,}", "\n\n", template.render(r=report, lang=lang))
            write_text(out / f"report{suffix}.md", markdown)
            pdf_link = f"report{suffix}.pdf" if final and report.builder["pdf_note"] is None else None
            html = env.get_template("report.html.j2").render(
                lang=lang, quick=report.quick, title=_title(lang, report.quick), pdf=pdf_link,
                **_markdown_to_html(markdown, out))  # fmt: skip
            write_text(out / f"report{suffix}.html", html)

    with timed("render Markdown and HTML (Jinja2, mistune)", "渲染 Markdown 与 HTML"):
        render(final=False)
    pdf_note = "PDF not requested (--no-pdf)"
    if pdf:
        with timed("print report.pdf and report.zh.pdf (headless Chromium)", "用无头 Chromium 生成 PDF（中英文）"):
            for suffix in ("", ".zh"):
                pdf_note = print_pdf(out / f"report{suffix}.html", out / f"report{suffix}.pdf")
                if pdf_note is not None:
                    print(f"report: {pdf_note}", file=sys.stderr)
                    break
        if pdf_note is not None:
            stages.pop()
    report.builder["pdf_note"] = pdf_note
    render(final=True)  # again, so the stage table holds every stage (the PDF keeps its own)
    _remove_stale(out)

    readme_updated = False
    present = any(report.models.values())
    if readme is not None and not present:
        print(f"report: no model has run: {readme} left as it is")
    elif readme is not None and report.quick:
        print(f"report: a QUICK build never writes the results into {readme}")
    elif readme is not None:
        block = env.get_template("readme_results.md.j2").render(
            r=report, lang="en", report_dir=_rel(out, Path(readme).parent))  # fmt: skip
        update_readme(Path(readme), block)
        readme_updated = True
    total = time.perf_counter() - started
    print(f"report: built {out}/report.md, report.zh.md, report.html, report.zh.html"
          f"{', report.pdf, report.zh.pdf' if pdf_note is None else ''} in {total:.1f} s"
          f"{'; README results updated' if readme_updated else ''}")  # fmt: skip
    return {"out": out, "notes": [n.__dict__ for n in report.notes], "stages": stages,
            "pdf": pdf_note is None, "readme_updated": readme_updated, "quick": report.quick,
            "report": report}  # fmt: skip


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add = parser.add_argument
    add("--quick", action="store_true", help="read runs/quick/, write runs/quick/report/, title says QUICK")
    add("--myself", type=Path, help="the NumPy model's output folder")
    add("--pytorch", type=Path, help="the PyTorch model's output folder")
    add("--out", type=Path, help="where the report goes")
    add("--notebooks", type=Path, help="folder of the executed notebooks")
    add("--readme", type=Path, help="README whose results block a full build rewrites (default: the "
        "repository's README.md when --out is left at its default)")
    add("--bench", type=Path, default=DEFAULT_BENCH, help="the speed benchmark's results (default: "
        "%(default)s, written by `make bench`; bench_epoch.json and bench_layers.json beside it)")
    add("--robustness", type=Path, default=DEFAULT_ROBUSTNESS,
        help="the robustness experiment's results (default: %(default)s)")
    add("--no-readme", action="store_true", help="leave the README alone")
    add("--no-pdf", action="store_true", help="skip the PDF")
    args = parser.parse_args(argv)
    base = REPO_ROOT / "runs" / "quick" if args.quick else REPO_ROOT
    readme = None if args.no_readme or (args.out and not args.readme) else args.readme or REPO_ROOT / "README.md"
    try:
        build(myself=args.myself or base / "cnn-by-myself", pytorch=args.pytorch or base / "cnn-by-pytorch",
              out=args.out or (base / "report" if args.quick else REPO_ROOT / "report"),
              notebooks=args.notebooks or REPO_ROOT / "runs" / ("quick" if args.quick else "full") / "notebooks",
              quick=args.quick, readme=readme, pdf=not args.no_pdf, bench=args.bench,
              robustness=args.robustness)  # fmt: skip
    except ReportInputError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
