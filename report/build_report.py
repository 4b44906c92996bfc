#!/usr/bin/env python3
"""Build the course report (English and Chinese; Markdown, self-contained HTML, PDF) from the records.

Reads what the notebooks, experiments and benchmarks saved, and nothing else: each model folder's
``metrics.json`` (with its ``insight`` figures) and step log, ``experiments/`` (``summary.json``,
``numpy_sweep/``, ``ablation_full/``, ``robustness/``) and ``benchmarks/`` (``bench_lenet.json``,
``bench_layers.json``, ``bench_epoch.json``). Every number comes from those files or from
``fashion_mnist.original`` (the original report's). They are read once into a typed context
(``Report``); both languages' templates render the same context with the same section tree.

    python report/build_report.py                 # model folders -> report/ (and README's results)
    python report/build_report.py --quick         # runs/quick/<model>/ -> runs/quick/report/
    python report/build_report.py --out /tmp/r    # anywhere else (README left alone)

Every record is required: a missing one stops the build with an error naming the file.
"""

from __future__ import annotations

import argparse
import base64
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

sys.path.insert(0, str(Path(__file__).resolve().parent))  # charts.py beside this file
import charts  # noqa: E402

from fashion_mnist import REPO_ROOT, original  # noqa: E402
from fashion_mnist.data import CLASS_NAMES, CLASS_NAMES_ZH, SHA256  # noqa: E402
from fashion_mnist.files import read_json, write_text  # noqa: E402
from fashion_mnist.runlog import read_csv  # noqa: E402

TEMPLATES = Path(__file__).resolve().parent / "templates"
MODELS = ("cnn-by-myself", "cnn-by-pytorch")
INSIGHT_FIGURES = {"cnn-by-myself": ("filters", "feature_maps", "embedding", "saliency",
                                     "confusion_errors", "confident_mistakes", "reliability"),
                   "cnn-by-pytorch": ("filters", "feature_maps", "embedding", "grad_cam",
                                      "confusion_errors", "confident_mistakes", "reliability")}  # fmt: skip


class ReportInputError(RuntimeError):
    """A record is missing or lacks a field the report needs."""


# --- Formatting ---------------------------------------------------------------------------------


def pct(x, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def pts(x, digits: int = 2) -> str:
    return f"{100 * x:+.{digits}f}".replace("-", "−")


def intc(x) -> str:
    return f"{int(x):,}"


def secs(x) -> str:
    return f"{x:.0f} s" if x < 120 else f"{x / 60:.1f} min"


@dataclass(frozen=True)
class Bi:
    """A text in English and in Chinese."""

    en: str
    zh: str

    def __call__(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


FULL_ABLATION = (  # (record in experiments/ablation_full, the 4-epoch ablation's row, ingredient)
    ("no_translate", "translate", Bi("random shifts", "随机平移")),
    ("no_flips", "hflip", Bi("random horizontal flips", "随机水平翻转")),
    ("tta_off", "tta_flip", Bi("flip test-time augmentation", "测试时翻转增强（TTA）")),
)


@dataclass
class Table:
    """A Markdown table announced by ``<!-- table: ID -->`` (tests find it by that); header
    and cells are text or ``Bi``; ``caption`` is numbered when rendered."""

    id: str
    caption: Bi
    header: list
    rows: list[list]
    align: str = ""

    def markdown(self, lang: str) -> str:
        def line(cells) -> str:
            return "| " + " | ".join(c(lang) if isinstance(c, Bi) else str(c) for c in cells) + " |"

        align = self.align or "l" + "r" * (len(self.header) - 1)
        rule = "|" + "|".join({"l": "---", "r": "---:", "c": ":---:"}[a] for a in align) + "|"
        return "\n".join([f"<!-- table: {self.id} -->", "", line(self.header), rule, *map(line, self.rows)])


# --- The context --------------------------------------------------------------------------------


@dataclass
class Run:
    """One training run's record (metrics.json, an experiment's JSON)."""

    label: Bi
    params: int
    test_accuracy: float
    val_accuracy: float | None
    train_seconds: float
    hardware: str
    config: dict
    layers: list = field(default_factory=list)
    epochs: list = field(default_factory=list)  # PyTorch: one dict per epoch
    checkpoints: list = field(default_factory=list)  # NumPy: one dict per checkpoint
    steps: list = field(default_factory=list)  # NumPy: the step log
    selected: int | None = None  # the step or epoch kept
    report: dict | None = None  # test_report: confusion matrix, per-class metrics
    validation: bool = True  # False: trained on all 60,000 images, the last epoch kept
    images_per_second: float | None = None

    @property
    def f1(self) -> list[float]:
        return [c["f1"] for c in self.report["per_class"]]


@dataclass
class Model:
    name: str
    implementation: str
    main: Run
    reproduction: Run
    figures: dict[str, Bi]  # insight figures, copied into out/figures
    calibration: dict
    mistakes: list[dict]
    embedding: dict
    provenance: dict
    class_counts: dict
    data: dict
    gradient_error: float | None


@dataclass
class Report:
    """Everything the templates read."""

    quick: bool
    myself: Model
    pytorch: Model
    ensemble: dict
    resnet: Run
    seeds: dict  # the reproduction trained as the original was, over seeds
    ablation: dict  # the 4-epoch ablation (summary.json), rows by name
    full: dict  # the full-budget ablation: records by name
    sweep: dict  # experiments/numpy_sweep
    speed: dict
    layers: dict
    epoch_bench: dict
    robustness: dict
    figures: dict[str, Bi]
    tables: dict[str, Table]
    facts: dict  # numbers derived from the records for the prose
    notebooks: dict[str, str | None]


# --- Reading the records ------------------------------------------------------------------------


def _read(path: Path, how: str) -> dict:
    if not path.is_file():
        raise ReportInputError(f"missing record {_shown(path)} ({how})")
    try:
        return read_json(path)
    except ValueError as e:
        raise ReportInputError(f"{_shown(path)}: not valid JSON ({e})") from None


def _need(record: dict, keys, where: Path):
    missing = [k for k in keys if k not in record]
    if missing:
        raise ReportInputError(f"{_shown(where)}: no {', '.join(map(repr, missing))}")
    return record


def _shown(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return Path(path).name


def _run(d: dict, label: Bi, where: Path, folder: Path | None = None) -> Run:
    _need(d, ("params", "test_accuracy", "train_seconds", "hardware", "config"), where)
    steps = []
    if folder is not None and d.get("checkpoints"):  # the NumPy run's step log, for its curves
        steps = read_csv(folder / _need(d, ("logs",), where)["logs"]["csv"])
    return Run(label, d["params"], d["test_accuracy"], d.get("val_accuracy"), d["train_seconds"],
               d["hardware"], d["config"], d.get("layers") or [], d.get("epochs") or [],
               d.get("checkpoints") or [], steps, d.get("selected_step", d.get("selected_epoch")),
               d.get("test_report"), d.get("validation", True), d.get("images_per_second"))  # fmt: skip


LABELS = {"cnn-by-myself": (Bi("NumPy tuned", "NumPy 调优版"), Bi("NumPy reproduction", "NumPy 复现")),
          "cnn-by-pytorch": (Bi("PyTorch improved", "PyTorch 改进版"),
                             Bi("PyTorch reproduction", "PyTorch 复现"))}  # fmt: skip


def _model(name: str, folder: Path, out: Path) -> tuple[Model, dict]:
    path = folder / "metrics.json"
    m = _need(_read(path, f"run {name}/demo.ipynb: make run"), ("reproduction", "insight", "provenance"), path)
    insight = _need(m["insight"], ("figures", "calibration", "confident_mistakes", "embedding"), path)
    figures = {}
    for key in INSIGHT_FIGURES[name]:
        paths = _need(insight["figures"], (key,), path)[key]
        for lang in ("en", "zh"):
            if not (folder / paths[lang]).is_file():
                raise ReportInputError(f"{_shown(path)}: insight figure {key} ({lang}) not found at {paths[lang]}")
            shutil.copyfile(folder / paths[lang], out / "figures" / f"{name}-{key}.{lang}.png")
        figures[key] = Bi(f"figures/{name}-{key}.en.png", f"figures/{name}-{key}.zh.png")
    main, repro = LABELS[name]
    model = Model(name, m.get("implementation", name), _run(m, main, path, folder),
                  _run(m["reproduction"], repro, path, folder), figures, insight["calibration"],
                  insight["confident_mistakes"], insight["embedding"], m["provenance"],
                  m.get("class_counts") or {}, m.get("data") or {},
                  (m.get("gradient_check") or {}).get("max_relative_error"))  # fmt: skip
    return model, m


def _seeds(summary: dict, where: Path) -> dict:
    """The reproduction trained as the original was (all 60,000 images, the original's marked
    initialisation, last epoch kept), over seeds."""
    groups = [g for g in _need(summary, ("init_seeds",), where)["init_seeds"]["groups"]
              if g["init"] == "as_marked" and g.get("validation") is False]  # fmt: skip
    if not groups:
        raise ReportInputError(f"{_shown(where)}: no init_seeds group with init 'as_marked' and validation false")
    g = groups[0]
    return {"n": len(g["rows"]), **g["test_accuracy"], "hardware": g["rows"][0]["hardware"],
            "epoch_1": g["epoch_1"]}  # fmt: skip


def _sweep(path: Path) -> dict:
    """experiments/numpy_sweep: the staircase (each step changes the one before it), the
    one-factor variants, each with its gain in validation accuracy over its base, and the run the
    sweep chose on validation (the tuned recipe)."""
    s = _need(_read(path, "make -C experiments numpy-sweep"), ("runs", "chosen", "hardware", "provenance"), path)
    by_name = {r["name"]: r for r in s["runs"]}
    stairs, variants = [], []
    for r in s["runs"]:
        base = by_name.get(r["base"]) if r["base"] else None
        gain = r["val_accuracy"] - base["val_accuracy"] if base else None
        (stairs if r["group"] == "staircase" else variants).append((r, base, gain))
    return {"stairs": stairs, "variants": variants, "hardware": s["hardware"],
            "commit": s["provenance"].get("git_commit", "")[:7], "first": stairs[0][0], "last": stairs[-1][0],
            "chosen": by_name[s["chosen"]["name"]],
            "largest": max(stairs[1:], key=lambda x: x[2], default=None)}  # fmt: skip


EMBEDDINGS = {"tsne": "t-SNE", "pca": "PCA"}  # insight.embed's method, as the prose names it


def _changes(changes: dict) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in changes.items()) or "–"


def _full_ablation(folder: Path, four: dict) -> dict:
    records = {n: _read(folder / f"{n}.json", "make -C experiments ablation-full")
               for n in ("improved", "no_translate", "no_flips", "tta_off")}  # fmt: skip
    improved = records["improved"]
    rows = []
    for name, short, what in FULL_ABLATION:
        without = records[name]
        base4, row4 = four["baseline"], four[short]
        rows.append({"what": what, "with": improved["val_accuracy"], "without": without["val_accuracy"],
                     "gain": improved["val_accuracy"] - without["val_accuracy"],
                     "test_gain": improved["test_accuracy"] - without["test_accuracy"],
                     "gain4": row4["val_accuracy"] - base4["val_accuracy"], "change4": row4["description"],
                     "name": name})  # fmt: skip
    return {"improved": improved, "rows": rows, "records": records}


def _speed(bench: Path) -> tuple[dict, dict, dict]:
    lenet = _need(_read(bench / "bench_lenet.json", "make bench"), ("results", "provenance"), bench)
    layers = _read(bench / "bench_layers.json", "make bench")
    epoch = _read(bench / "bench_epoch.json", "make bench")
    rows = [{"batch": int(b), "cpu": r.get("cpu") or lenet["provenance"]["cpu"], **r}
            for b, r in sorted(lenet["results"].items(), key=lambda x: int(x[0]))]  # fmt: skip
    per_layer = {k: sum(v["numpy"].values()) / sum(v["torch"].values()) for k, v in layers["results"]["layers"].items()}
    totals = {impl: sum(sum(v[impl].values()) for v in layers["results"]["layers"].values()) for impl in ("numpy", "torch")}
    speed = {"rows": rows, "threads": lenet.get("threads"), "commit": lenet["provenance"]["git_commit"][:7],
             "cpus": sorted({r["cpu"] for r in rows}),
             "faster": [r["batch"] for r in rows if r["ratio"] >= 1],
             "slower": [r["batch"] for r in rows if r["ratio"] < 1]}  # fmt: skip
    slowest = max(per_layer, key=per_layer.get)
    return speed, {**layers["results"], "ratio": per_layer, "totals": totals, "slowest": slowest}, epoch


def _robustness(path: Path) -> tuple[dict, Table]:
    from fashion_mnist.corruptions import robustness_table

    record = _read(path, "make -C experiments robustness")
    full = robustness_table(record)
    corrupted = full.drop(index=["clean", "mean corrupted"], level=0)
    per = corrupted.groupby(level=0, sort=False).mean()
    clean, mean = full.loc[("clean", 0)], full.loc[("mean corrupted", "")]
    table = Table("robustness", Bi("Test accuracy (%) under each corruption at severities 1 / 2 / 3",
                                   "各种损坏在强度 1 / 2 / 3 下的测试准确率 (%)"),
                  [Bi("Corruption", "损坏类型"), *full.columns],
                  [[Bi("clean", "干净图像"), *(f"{100 * v:.2f}" for v in clean)]]
                  + [[f"`{c}`", *("\u00a0/\u00a0".join(f"{100 * v:.1f}" for v in corrupted.loc[c][m])
                                  for m in full.columns)] for c in per.index]
                  + [[Bi(f"mean of {len(corrupted)} sets", f"{len(corrupted)} 个损坏集平均"),
                      *(f"{100 * v:.2f}" for v in mean)]])  # fmt: skip
    best = mean.idxmax()
    return {"per": per, "clean": clean, "mean": mean, "sets": len(corrupted), "best": best,
            "worst": mean.idxmin(), "drop": {m: clean[m] - mean[m] for m in full.columns},
            "hardest": per.mean(axis=1).idxmin(), "hardest_acc": per.mean(axis=1).min()}, table  # fmt: skip


def smoothing_floor(eps: float, k: int = 10) -> float:
    """The lowest cross-entropy a model can reach against labels smoothed by ``eps`` over ``k``
    classes: the entropy of the smoothed target."""
    on, off = 1 - eps + eps / k, eps / k
    return -(on * math.log(on) + (k - 1) * off * math.log(off)) if eps else 0.0


def _facts(r: Report, summary: dict) -> dict:
    """Numbers the prose states, derived from the records in one place."""
    repro, improved = r.pytorch.reproduction, r.pytorch.main
    held = "val_loss" if repro.validation else "test_loss"
    low = min(repro.epochs, key=lambda e: e[held])
    last = repro.epochs[-1]
    eps = improved.config.get("label_smoothing", 0.0)
    numpy_repro = r.myself.reproduction
    cps = numpy_repro.checkpoints
    best_cpu = max((r.myself.main, improved, r.pytorch.reproduction), key=lambda x: x.test_accuracy)
    tuned = r.myself.main.checkpoints
    resnets = [x for x in summary["gpu_runs"]["rows"] if x.get("preset") == "resnet"]
    labels = {x.label.en: x.label for m in (r.myself, r.pytorch) for x in (m.main, m.reproduction)}
    all_data = [g for g in summary["init_seeds"]["groups"] if not g.get("validation", True)]
    means = [g["test_accuracy"]["mean"] for g in all_data]
    start_gap = {g["init"]: abs(g["epoch_1"]["train_loss"] - original.TORCH_EPOCH_1["train_loss"])
                 for g in all_data}  # fmt: skip
    ablation = [x for x in r.ablation["rows"].values() if x["name"] != "baseline"]
    base4 = r.ablation["rows"]["baseline"]["val_accuracy"]
    p_val, n_val = r.full["improved"]["val_accuracy"], sum(r.myself.class_counts.get("val", []))
    return {
        "held": held, "loss_low": low, "loss_last": last,
        "floor": smoothing_floor(eps), "eps": eps, "improved_last": improved.epochs[-1],
        "numpy_still_rising": cps[-1]["val_accuracy"] >= max(c["val_accuracy"] for c in cps),
        "tuned_gap": max(abs(c["val_accuracy"] - c["test_accuracy"]) for c in tuned),
        "tuned_best_agree": max(tuned, key=lambda c: c["val_accuracy"])["step"]
        == max(tuned, key=lambda c: c["test_accuracy"])["step"],
        "torch_last": last["test_acc"], "original_last": original.TORCH_TEST_ACC[-1],
        "original_best": max(original.TORCH_TEST_ACC), "original_epoch1": original.TORCH_EPOCH_1,
        "ours_epoch1": repro.epochs[0], "best_cpu": best_cpu,
        "resnet_gain": r.resnet.test_accuracy - best_cpu.test_accuracy,
        "claim_gap": r.pytorch.reproduction.test_accuracy - r.myself.main.test_accuracy,
        "param_ratio": r.pytorch.main.params / r.myself.main.params,
        "ensemble_best": max(r.ensemble["member_test_accuracies"].items(), key=lambda x: x[1]),
        "shirt": [m.main.report["per_class"][6]["f1"] for m in (r.myself, r.pytorch)],
        "largest": [m.main.report["most_confused"][0] for m in (r.myself, r.pytorch)],
        "resnet_variant": max(resnets, key=lambda x: x["val_accuracy"], default=None),
        "stairs_ranked": sorted(r.sweep["stairs"][1:], key=lambda x: -x[2]),
        "ablation_ranked": sorted(({**x, "gain": x["val_accuracy"] - base4} for x in ablation),
                                  key=lambda x: -x["gain"]),
        "val_se": math.sqrt(p_val * (1 - p_val) / n_val) if n_val else None,  # one accuracy's
        "init_all_data": all_data,
        "init_spread": max(means) - min(means) if len(all_data) > 1 else None,  # needs two
        "wd_stair": next((s for s in r.sweep["stairs"] if "weight_decay" in s[0]["changes"]), None),
        "wd_variant": any("weight_decay" in v[0]["changes"] for v in r.sweep["variants"]),
        "test_against": [x for x in r.full["rows"] if x["test_gain"] < 0],
        "init_closest": min(start_gap, key=start_gap.get) if len(all_data) > 1 else None,
        "label": lambda name: labels.get(name, Bi(name, name)),
        "embedding": EMBEDDINGS.get(r.myself.embedding["method"], r.myself.embedding["method"]),
    }  # fmt: skip


# --- Tables -------------------------------------------------------------------------------------


def _tables(r: Report, original_numpy: dict) -> dict[str, Table]:
    m, p = r.myself, r.pytorch
    t = {}
    for key, model in (("numpy", m), ("pytorch", p)):
        t[f"layers-{key}"] = Table(f"layers/{key}", Bi(f"The layers of {model.name}", f"{model.name} 的网络结构"),
                                   [Bi("Layer", "层"), Bi("Output", "输出形状"), Bi("Parameters", "参数量")],
                                   [[x["layer"], x["output"], intc(x["params"])] for x in model.main.layers]
                                   + [[Bi("**Total**", "**合计**"), "", f"**{intc(model.main.params)}**"]], "llr")  # fmt: skip
    counts = m.class_counts
    t["classes"] = Table("classes", Bi("The ten classes and the images per split", "十个类别及各划分的图像数"),
                         [Bi("Label", "标签"), Bi("Class", "类别"), Bi("Train", "训练"), Bi("Validation", "验证"), Bi("Test", "测试")],
                         [[i, Bi(CLASS_NAMES[i], f"{CLASS_NAMES_ZH[i]}（{CLASS_NAMES[i]}）"),
                           *(intc(counts[s][i]) for s in ("train", "val", "test"))] for i in range(10)], "rlrrr")  # fmt: skip
    t["numpy-repro"] = Table("numpy/checkpoints", Bi("NumPy reproduction beside the original, test accuracy per checkpoint (%)",
                                                     "NumPy 复现与原报告各检查点的测试准确率 (%)"),
                             [Bi("Step", "步数"), Bi("Original", "原报告"), Bi("Ours: validation", "我们：验证集"),
                              Bi("Ours: test", "我们：测试集")],
                             [[intc(c["step"]), f"{100 * original_numpy[c['step']]:.2f}" if c["step"] in original_numpy else "–",
                               f"{100 * c['val_accuracy']:.2f}", f"{100 * c['test_accuracy']:.2f}"]
                              for c in m.reproduction.checkpoints])  # fmt: skip
    t["sweep"] = Table("sweep", Bi("The NumPy sweep: from the original's settings to the tuned recipe (staircase), then one change at a time",
                                   "NumPy 调参实验：从原报告设置逐步走到调优配置（阶梯），以及单因素变体"),
                       [Bi("Run", "运行"), Bi("Changes from its base", "相对基准的改动"), Bi("Val. (%)", "验证 (%)"),
                        Bi("Gain (points)", "提升（百分点）"), Bi("Test (%)", "测试 (%)"), Bi("Time (s)", "用时 (s)")],
                       [[f"{'' if k < len(r.sweep['stairs']) else '↳ '}`{row['name']}`",
                         _changes(row.get("changes") or {}), f"{100 * row['val_accuracy']:.2f}",
                         pts(gain) if gain is not None else "–", f"{100 * row['test_accuracy']:.2f}",
                         f"{row['train_seconds']:.0f}"]
                        for k, (row, _, gain) in enumerate(r.sweep["stairs"] + r.sweep["variants"])], "llrrrr")  # fmt: skip
    t["calibration"] = Table("calibration", Bi("Calibration on the test set before and after temperature scaling (fitted on validation)",
                                               "温度缩放（在验证集上拟合）前后测试集上的校准情况"),
                             [Bi("Model", "模型"), Bi("Temperature", "温度 T"), Bi("ECE before (%)", "缩放前 ECE (%)"),
                              Bi("ECE after (%)", "缩放后 ECE (%)"), Bi("NLL before", "缩放前 NLL"), Bi("NLL after", "缩放后 NLL")],
                             [[x.main.label, f"{x.calibration['temperature']:.3f}", f"{100 * x.calibration['ece_before']:.2f}",
                               f"{100 * x.calibration['ece_after']:.2f}", f"{x.calibration['nll_before']:.4f}",
                               f"{x.calibration['nll_after']:.4f}"] for x in (m, p)])  # fmt: skip
    t["full-ablation"] = Table("ablation-full", Bi("Each contested ingredient left out of the improved recipe for its full budget",
                                                   "在完整训练预算下从改进配置中去掉单个有争议的做法"),
                               [Bi("Ingredient", "做法"), Bi("Val. with (%)", "保留时验证 (%)"),
                                Bi("Val. without (%)", "去掉后验证 (%)"), Bi("It adds (val. points)", "贡献（验证，百分点）"),
                                Bi("It adds (test points)", "贡献（测试，百分点）"), Bi("At 4 epochs (val. points)", "4 轮消融中（验证，百分点）")],
                               [[x["what"], f"{100 * x['with']:.2f}", f"{100 * x['without']:.2f}", pts(x["gain"]),
                                 pts(x["test_gain"]), f"{pts(x['gain4'])} (`{x['change4']}`)"]
                                for x in r.full["rows"]])  # fmt: skip
    t["speed"] = Table("speed", Bi("The same LeNet trained in NumPy and in PyTorch, side by side (images/s)",
                                   "同一个 LeNet 分别用 NumPy 与 PyTorch 训练的吞吐量对比（图像/秒）"),
                       [Bi("CPU", "CPU"), Bi("Batch", "批大小"), "NumPy", "PyTorch", Bi("NumPy / PyTorch", "NumPy / PyTorch")],
                       [[x["cpu"], x["batch"], f"{x['numpy_images_per_s']:,.0f}", f"{x['torch_images_per_s']:,.0f}",
                         f"{x['ratio']:.2f}"] for x in r.speed["rows"]], "lrrrr")  # fmt: skip
    names = [x.label for x in (m.main, m.reproduction, p.main, p.reproduction)]
    t["per-class"] = Table("per-class", Bi("F1 per class on the test set (%)", "各类别测试集 F1 (%)"),
                           [Bi("Class", "类别"), *names],
                           [[Bi(CLASS_NAMES[i], CLASS_NAMES_ZH[i]),
                             *(f"{100 * x.f1[i]:.1f}" for x in (m.main, m.reproduction, p.main, p.reproduction))]
                            for i in range(10)])  # fmt: skip
    return t


def _appendix_tables(r: Report, summary: dict, robustness: Table) -> dict[str, Table]:
    t = {"robustness": robustness}
    for key, run in (("reproduction", r.pytorch.reproduction), ("improved", r.pytorch.main), ("resnet", r.resnet)):
        t[f"epochs-{key}"] = Table(f"epochs/{key}", Bi(f"{run.label.en}: every epoch", f"{run.label.zh}：逐轮记录"),
                                   [Bi("Epoch", "轮次"), Bi("Train loss", "训练损失"), Bi("Train acc. (%)", "训练准确率 (%)"),
                                    Bi("Val. loss", "验证损失"), Bi("Val. acc. (%)", "验证准确率 (%)"),
                                    Bi("Test loss", "测试损失"), Bi("Test acc. (%)", "测试准确率 (%)")]
                                   + ([Bi("Original test acc. (%)", "原报告测试准确率 (%)")] if run is r.pytorch.reproduction else []),
                                   [[f"{e['epoch']}{' ✓' if e['epoch'] == run.selected else ''}", f"{e['train_loss']:.4f}",
                                     f"{100 * e['train_acc']:.2f}", *(f"{e[k]:.4f}" if e.get(k) is not None else "–" for k in ("val_loss",)),
                                     f"{100 * e['val_acc']:.2f}" if e.get("val_acc") is not None else "–",
                                     f"{e['test_loss']:.4f}", f"{100 * e['test_acc']:.2f}"]
                                    + ([f"{100 * original.TORCH_TEST_ACC[e['epoch'] - 1]:.2f}"] if run is r.pytorch.reproduction else [])
                                    for e in run.epochs])  # fmt: skip
    t["checkpoints"] = Table("checkpoints", Bi("NumPy tuned run: every checkpoint", "NumPy 调优版：各检查点"),
                             [Bi("Step", "步数"), Bi("Val. acc. (%)", "验证准确率 (%)"), Bi("Test acc. (%)", "测试准确率 (%)")],
                             [[f"{intc(c['step'])}{' ✓' if c['step'] == r.myself.main.selected else ''}",
                               f"{100 * c['val_accuracy']:.2f}", f"{100 * c['test_accuracy']:.2f}"]
                              for c in r.myself.main.checkpoints])  # fmt: skip
    runs = [r.myself.main, r.myself.reproduction, r.pytorch.main, r.pytorch.reproduction, r.resnet]
    keys = list(dict.fromkeys(k for x in runs for k in x.config))
    t["config"] = Table("config", Bi("Every hyper-parameter of every run", "各运行的全部超参数"),
                        [Bi("Setting", "参数"), *(x.label for x in runs)],
                        [[f"`{k}`", *(f"`{x.config[k]}`" if k in x.config else "–" for x in runs)] for k in keys],
                        "l" * (len(runs) + 1))  # fmt: skip
    gpu = summary["gpu_runs"]["rows"]
    t["gpu"] = Table("gpu", Bi("Runs on a GPU (experiments/gpu)", "GPU 上的运行（experiments/gpu）"),
                     [Bi("Run", "运行"), Bi("Configuration", "配置"), Bi("Epochs", "轮数"), Bi("Val. (%)", "验证 (%)"),
                      Bi("Test (%)", "测试 (%)"), Bi("Time (s)", "用时 (s)")],
                     [[f"`{x['name']}`", x["description"], x["epochs"], f"{100 * x['val_accuracy']:.2f}",
                       f"{100 * x['test_accuracy']:.2f}", f"{x['train_seconds']:.1f}"] for x in gpu], "llrrrr")  # fmt: skip
    groups = summary["init_seeds"]["groups"]
    t["init"] = Table("init-seeds", Bi("The PyTorch reproduction over seeds, by initialisation and training set",
                                       "PyTorch 复现在多个随机种子下的结果（按初始化方式与训练集划分）"),
                      [Bi("Initialisation", "初始化"), Bi("Validation held out", "留出验证集"), Bi("Hardware", "硬件"),
                       Bi("Seeds", "种子数"), Bi("Test acc. (%)", "测试准确率 (%)"), Bi("Epoch 1 train loss", "第 1 轮训练损失")],
                      [[f"`{g['init']}`", Bi("yes", "是") if g.get("validation", True) else Bi("no", "否"),
                        g["rows"][0]["hardware"], len(g["rows"]),
                        f"{100 * g['test_accuracy']['mean']:.2f} ± {100 * g['test_accuracy']['std']:.2f}",
                        f"{g['epoch_1']['train_loss']:.4f}"] for g in groups]
                      + [[Bi("the original", "原报告"), Bi("no", "否"), "–", 1, f"{100 * original.TORCH_TEST_ACC[-1]:.2f}",
                          f"{original.TORCH_EPOCH_1['train_loss']:.4f}"]], "llllrr")  # fmt: skip
    t["ablation4"] = Table("ablation4", Bi("The 4-epoch ablation (experiments/ablation)", "4 轮消融实验（experiments/ablation）"),
                           [Bi("Variant", "变体"), Bi("Change", "改动"), Bi("Val. (%)", "验证 (%)"), Bi("Test (%)", "测试 (%)")],
                           [[f"`{x['name']}`", x["description"], f"{100 * x['val_accuracy']:.2f}", f"{100 * x['test_accuracy']:.2f}"]
                            for x in r.ablation["rows"].values()], "llrr")  # fmt: skip
    prov = [("cnn-by-myself", r.myself.provenance), ("cnn-by-pytorch", r.pytorch.provenance)]
    t["provenance"] = Table("provenance", Bi("Where and at which commit each notebook ran", "各 notebook 的运行环境与提交"),
                            [Bi("Field", "项目"), *(n for n, _ in prov)],
                            [[f"`{k}`", *(str(v.get(k))[:12] if k == "git_commit" else str(v.get(k, "–")) for _, v in prov)]
                             for k in ("git_commit", "date", "cpu", "cpu_cores", "python", "numpy", "torch", "wall_seconds")],
                            "lll")  # fmt: skip
    t["stages"] = Table("stages", Bi("Training time of each run", "各运行的训练用时"),
                        [Bi("Run", "运行"), Bi("Hardware", "硬件"), Bi("Training time", "训练用时")],
                        [[x.label, x.hardware, secs(x.train_seconds)] for x in runs], "llr")  # fmt: skip
    return t


# --- Figures ------------------------------------------------------------------------------------


def _draw(out: Path, name: str, draw) -> Bi:
    """``draw(lang)`` saved as figures/NAME.en.png and NAME.zh.png."""
    from fashion_mnist.plots import save

    for lang in ("en", "zh"):
        fig = draw(lang)
        save(fig, out / "figures" / f"{name}.{lang}.png")
        charts.plt.close(fig)
    return Bi(f"figures/{name}.en.png", f"figures/{name}.zh.png")


def _figures(r: Report, out: Path) -> dict[str, Bi]:
    m, p = r.myself, r.pytorch
    models = (m.main, m.reproduction, p.main, p.reproduction)
    stairs = [(row["name"], row["val_accuracy"], row["test_accuracy"]) for row, _, _ in r.sweep["stairs"]]
    return {
        "numpy_curves": _draw(out, "numpy-curves", lambda lang: charts.numpy_curves(
            [m.reproduction, m.main], original.NUMPY_TEST_ACC, lang)),
        "sweep": _draw(out, "numpy-sweep", lambda lang: charts.sweep(stairs, lang)),
        "torch_repro": _draw(out, "torch-reproduction", lambda lang: charts.torch_reproduction(
            p.reproduction.epochs, original.TORCH_TEST_ACC, lang)),
        "torch_losses": _draw(out, "torch-losses", lambda lang: charts.torch_losses([p.reproduction, p.main], lang)),
        "confusion": _draw(out, "confusion-errors", lambda lang: charts.confusion_errors(
            [(x.main.label(lang), x.main.report["confusion_matrix"]) for x in (m, p)], lang)),
        "f1": _draw(out, "per-class-f1", lambda lang: charts.per_class_f1(
            [(x.label(lang), x.f1) for x in models], lang)),
        "layers": _draw(out, "layer-profile", lambda lang: charts.layer_profile(r.layers["layers"], lang)),
        "robustness": _draw(out, "robustness", lambda lang: charts.robustness(
            r.robustness["per"], r.robustness["clean"], lang)),
    }  # fmt: skip


# --- Reading everything once --------------------------------------------------------------------


def read_inputs(myself: Path, pytorch: Path, experiments: Path, bench: Path, notebooks: Path | None,
                out: Path, quick: bool) -> Report:  # fmt: skip
    (out / "figures").mkdir(parents=True, exist_ok=True)
    numpy_model, _ = _model("cnn-by-myself", Path(myself), out)
    torch_model, torch_metrics = _model("cnn-by-pytorch", Path(pytorch), out)
    where = Path(experiments) / "summary.json"
    summary = _need(_read(where, "make -C experiments summary"), ("ablation", "resnet", "gpu_runs", "init_seeds"), where)
    ablation = {**summary["ablation"], "rows": {x["name"]: x for x in summary["ablation"]["rows"]}}
    speed, layers, epoch = _speed(Path(bench))
    robustness, robustness_table = _robustness(Path(experiments) / "robustness" / "robustness.json")
    ensemble = _need(torch_metrics, ("ensemble",), Path(pytorch) / "metrics.json")["ensemble"]
    r = Report(quick, numpy_model, torch_model, ensemble,
               _run(summary["resnet"], Bi("ResNet (GPU)", "ResNet（GPU）"), where), _seeds(summary, where),
               ablation, _full_ablation(Path(experiments) / "ablation_full", ablation["rows"]),
               _sweep(Path(experiments) / "numpy_sweep" / "numpy_sweep.json"), speed, layers, epoch,
               robustness, {}, {}, {}, _export_notebooks(notebooks, out))  # fmt: skip
    r.facts = _facts(r, summary)
    r.tables = {**_tables(r, original.NUMPY_TEST_ACC), **_appendix_tables(r, summary, robustness_table)}
    r.figures = _figures(r, out)
    return r


def _export_notebooks(folder: Path | None, out: Path) -> dict[str, str | None]:
    """Each executed notebook as HTML in out/notebooks/ when it is there (a full or quick run
    leaves them in runs/); a fresh clone has none and the report says so."""
    links = dict.fromkeys(MODELS)
    for model in MODELS:
        source = Path(folder or "-") / f"{model}.ipynb"
        if not source.is_file():
            print(f"report: no executed notebook {_shown(source)}: not linked", file=sys.stderr)
            continue
        import nbformat
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nbformat.read(source, as_version=4))
        write_text(out / "notebooks" / f"{model}.html", body)
        links[model] = f"notebooks/{model}.html"
    return links


# --- Rendering ----------------------------------------------------------------------------------

CJK = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)  # fmt: skip
    env.filters.update(pct=pct, pts=pts, intc=intc, secs=secs, changes=_changes)
    env.globals.update(original=original, sha256=SHA256, class_names=CLASS_NAMES, class_names_zh=CLASS_NAMES_ZH)
    return env


def render_markdown(r: Report, lang: str, env: jinja2.Environment | None = None) -> str:
    """One language's Markdown; figures and tables are numbered in the order they appear."""
    env = env or _environment()
    count = {"figure": 0, "table": 0}

    def caption(kind: str, text: str) -> str:
        count[kind] += 1
        word = {"figure": ("Figure", "图"), "table": ("Table", "表")}[kind][lang == "zh"]
        return f"**{word} {count[kind]}.** {text}" if lang == "en" else f"**{word} {count[kind]}** {text}"

    def figure(paths, text: str) -> str:
        images = " ".join(f"![{text}]({p(lang)})" for p in (paths if isinstance(paths, list) else [paths]))
        return f"{images}\n\n{caption('figure', text)}"

    def table(t: Table) -> str:
        return f"{caption('table', t.caption(lang))}\n\n{t.markdown(lang)}"

    suffix = ".zh" if lang == "zh" else ""
    text = env.get_template(f"report{suffix}.md.j2").render(r=r, f=r.facts, lang=lang, figure=figure,
                                                            table=table, caption=caption)  # fmt: skip
    text = re.sub(r"\n{3,}", "\n\n", text)
    if lang == "zh":  # a line break or space between two CJK characters would show as a space
        text = re.sub(rf"(?<=[{CJK}])(\*\*)?[ \n](?=[{CJK}])", r"\1", text)
        # CommonMark closes ** only before a space or punctuation, so "**结论。**我们" would keep
        # its asterisks (here and on GitHub): Chinese bold is written as HTML instead.
        text = re.sub(r"\*\*([^*\n]+?)\*\*", r"<strong>\1</strong>", text)
    return text


def _markdown_to_html(markdown: str, out: Path) -> dict:
    """The title (h1), the body after it and a table of contents; images embedded as data URIs."""
    import mistune
    from mistune.toc import add_toc_hook, render_toc_ul

    md = mistune.create_markdown(escape=False, plugins=["table", "strikethrough"])
    add_toc_hook(md, min_level=2, max_level=2)
    html, state = md.parse(markdown)

    def embed(match: re.Match) -> str:
        path = out / match[1]
        return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'

    html = re.sub(r'src="((?:figures)/[^"]+\.png)"', embed, html)
    head, _, body = html.partition("</h1>")
    return {"heading": head + "</h1>", "body": body, "toc": render_toc_ul(state.env["toc_items"])}


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


# A link to a file beside the report (not a web address, not an anchor in the page).
LOCAL_LINK = re.compile(r'<a href="(?![a-z]+:|#)[^"]*">(.*?)</a>', re.S)


def print_pdf(html: str, pdf: Path) -> str | None:
    """The page ``html`` to ``pdf`` with headless Chromium (page numbers come from the CSS @page
    rules); returns why not, or None on success. Links to files beside the report keep only their
    text: Chromium would write them as this machine's absolute file:// paths, which no reader of
    the PDF can follow (its figures are embedded, its anchors and web links stay)."""
    binary = find_chromium()
    if binary is None:
        return "chromium not found (Debian: apt-get install chromium fonts-noto-cjk): no PDF"
    tmp = pdf.with_name(f".{pdf.name}.tmp")
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        page = Path(profile) / "page.html"
        page.write_text(LOCAL_LINK.sub(r"\1", html), encoding="utf-8")
        proc = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-background-networking", "--disable-dev-shm-usage",
                               f"--user-data-dir={profile}", "--no-pdf-header-footer",
                               "--generate-pdf-document-outline",
                               f"--print-to-pdf={tmp}", page.as_uri()],
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip
    if not tmp.is_file() or tmp.stat().st_size == 0:
        return f"chromium failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
    os.replace(tmp, pdf)
    return None


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(readme: Path, block: str) -> None:
    """Replace only what lies between the results markers of ``readme``."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ReportInputError(f"{_shown(readme)}: no {README_START} ... {README_END} block")
    new = pattern.sub(lambda _: f"{README_START}\n{block.strip()}\n{README_END}", text, count=1)
    if new != text:
        write_text(readme, new)


TITLES = Bi("Fashion-MNIST clothing classification: a CNN from scratch in NumPy and one in PyTorch",
            "Fashion-MNIST 服装图像分类：NumPy 手写 CNN 与 PyTorch CNN")


def build(myself: Path, pytorch: Path, out: Path, *, experiments: Path = REPO_ROOT / "experiments",
          bench: Path = REPO_ROOT / "benchmarks", notebooks: Path | None = None, quick: bool = False,
          readme: Path | None = None, pdf: bool = True) -> Report:  # fmt: skip
    """Read every record, write report{,.zh}.{md,html,pdf} into ``out``; returns the context."""
    out = Path(out)
    for folder in ("figures", "notebooks"):  # nothing an earlier build left stays behind
        shutil.rmtree(out / folder, ignore_errors=True)
    r = read_inputs(myself, pytorch, experiments, bench, notebooks, out, quick)
    env = _environment()
    for lang, suffix in (("en", ""), ("zh", ".zh")):
        markdown = render_markdown(r, lang, env)
        write_text(out / f"report{suffix}.md", markdown)
        title = ("QUICK: " if quick else "") + TITLES(lang)
        html = env.get_template("report.html.j2").render(lang=lang, title=title, quick=quick,
                                                         **_markdown_to_html(markdown, out))  # fmt: skip
        write_text(out / f"report{suffix}.html", html)
        if pdf:
            why = print_pdf(html, out / f"report{suffix}.pdf")
            if why:
                print(f"report: {why}", file=sys.stderr)
                pdf = False
    if readme is not None and not quick:
        update_readme(Path(readme), env.get_template("readme_results.md.j2").render(
            r=r, f=r.facts, report_dir=Path(os.path.relpath(out, Path(readme).parent)).as_posix()))
    print(f"report: built {_shown(out)}/report.md, report.zh.md, HTML{' and PDF' if pdf else ''}")
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add = parser.add_argument
    add("--quick", action="store_true", help="read runs/quick/<model>/, write runs/quick/report/")
    add("--myself", type=Path, help="the NumPy model's folder (metrics.json, logs/, figures/)")
    add("--pytorch", type=Path, help="the PyTorch model's folder")
    add("--experiments", type=Path, default=REPO_ROOT / "experiments", help="the experiments shelf")
    add("--bench", type=Path, default=REPO_ROOT / "benchmarks", help="folder of the benchmark records")
    add("--notebooks", type=Path, help="folder of the executed notebooks (default: runs/full|quick/notebooks)")
    add("--out", type=Path, help="where the report goes (default: report/; the README is updated only then)")
    add("--no-pdf", action="store_true", help="skip the PDF")
    args = parser.parse_args(argv)
    base = REPO_ROOT / "runs" / "quick" if args.quick else REPO_ROOT
    out = args.out or (base / "report" if args.quick else REPO_ROOT / "report")
    try:
        build(args.myself or base / "cnn-by-myself", args.pytorch or base / "cnn-by-pytorch", out,
              experiments=args.experiments, bench=args.bench, quick=args.quick, pdf=not args.no_pdf,
              notebooks=args.notebooks or REPO_ROOT / "runs" / ("quick" if args.quick else "full") / "notebooks",
              readme=None if args.out or args.quick else REPO_ROOT / "README.md")  # fmt: skip
    except ReportInputError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
