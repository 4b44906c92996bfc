"""FAKE records for the report tests, in the schemas the notebooks, experiments and benchmarks
write: both model folders (metrics.json with its insight figures, step logs), the experiments
shelf (summary.json, numpy_sweep, ablation_full, robustness), the benchmarks, executed notebooks.

``make_inputs(root)`` writes them all under ``root`` and returns their paths.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import nbformat
import numpy as np
from scipy.special import softmax

from fashion_mnist import insight, plots
from fashion_mnist.data import NUM_CLASSES
from fashion_mnist.files import write_json
from fashion_mnist.metrics import classification_summary
from fashion_mnist.runlog import RunLog

MYSELF_LAYERS = [
    {"layer": "Conv2D 1->6, 5x5, pad 2", "output": "(6, 28, 28)", "params": 156},
    {"layer": "BatchNorm", "output": "(6, 28, 28)", "params": 12},
    {"layer": "ReLU", "output": "(6, 28, 28)", "params": 0},
    {"layer": "MaxPool 2x2/2", "output": "(6, 14, 14)", "params": 0},
    {"layer": "Conv2D 6->16, 5x5", "output": "(16, 10, 10)", "params": 2416},
    {"layer": "BatchNorm", "output": "(16, 10, 10)", "params": 32},
    {"layer": "ReLU, MaxPool 2x2/2", "output": "(16, 5, 5)", "params": 0},
    {"layer": "FullyConnected 400->120, ReLU", "output": "(120,)", "params": 48120},
    {"layer": "FullyConnected 120->84, ReLU", "output": "(84,)", "params": 10164},
    {"layer": "FullyConnected 84->10, Softmax", "output": "(10,)", "params": 850},
]
TORCH_LAYERS = [
    {"layer": "Conv2d 1->32, 3x3, pad 1", "output": "(32, 28, 28)", "params": 320},
    {"layer": "BatchNorm2d", "output": "(32, 28, 28)", "params": 64},
    {"layer": "ReLU, MaxPool 2x2/2", "output": "(32, 14, 14)", "params": 0},
    {"layer": "Conv2d 32->64, 3x3, pad 1", "output": "(64, 14, 14)", "params": 18496},
    {"layer": "BatchNorm2d", "output": "(64, 14, 14)", "params": 128},
    {"layer": "ReLU, MaxPool 2x2/2", "output": "(64, 7, 7)", "params": 0},
    {"layer": "Flatten", "output": "(3136,)", "params": 0},
    {"layer": "Linear 3136->512, ReLU", "output": "(512,)", "params": 1606144},
    {"layer": "Dropout 0.5", "output": "(512,)", "params": 0},
    {"layer": "Linear 512->10", "output": "(10,)", "params": 5130},
]
PROVENANCE = {
    "git_commit": "0123456789abcdef0123456789abcdef01234567", "git_dirty": False,
    "date": "2026-11-27T06:00:00+00:00", "cpu": "Fake CPU @ 2.0GHz", "cpu_cores": 2,
    "gpu": None, "platform": "Linux-fake", "python": "3.11.2", "numpy": "2.4.6",
    "torch": "2.13.0", "wall_seconds": 1234.5,
}  # fmt: skip
HARDWARE = "Fake CPU @ 2.0GHz (2 cores)"


def _summary(y, pred) -> dict:
    """classification_summary as plain JSON types (its per-class 'class' may be a NumPy int)."""
    return json.loads(json.dumps(classification_summary(y, pred), default=int))


def _predictions(seed: int, n: int = 500, error: float = 0.15):
    """Labels and predictions with errors biased towards Shirt -> T-shirt/top."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % NUM_CLASSES
    pred = y.copy()
    wrong = rng.random(n) < error
    pred[wrong] = rng.integers(0, NUM_CLASSES, wrong.sum())
    shirts = np.flatnonzero(y == 6)[: n // 40]
    pred[shirts] = 0
    return y, pred


class _Figures:
    """Draws each kind of figure once, then copies it (drawing is the slow part)."""

    def __init__(self, cache: Path):
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)

    def get(self, kind: str, target: Path) -> None:
        source = self.cache / f"{kind}.png"
        if not source.is_file():
            rng = np.random.default_rng(0)
            if kind == "steps":
                records = [{"step": s, "loss": 2.3 / s**0.3, "accuracy": 1 - 0.9 / s**0.3}
                           for s in range(1, 201)]  # fmt: skip
                plots.plot_step_curves(records, source)
            elif kind == "epochs":
                records = [
                    {
                        "epoch": e,
                        "train_loss": 1 / e,
                        "train_acc": 1 - 0.2 / e,
                        "val_loss": 1.1 / e,
                        "val_acc": 1 - 0.25 / e,
                    }
                    for e in (1, 2, 3)
                ]
                plots.plot_epoch_curves(records, source)  # fmt: skip
            elif kind == "confusion":
                y, p = _predictions(0)
                plots.plot_confusion(classification_summary(y, p)["confusion_matrix"], source)
            elif kind == "images":
                images = rng.integers(0, 256, (10, 784), dtype=np.uint8)
                plots.plot_images(images, [str(i) for i in range(10)], source, cols=5)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def _numpy_run(folder: Path, name: str, seed: int, figs: _Figures, steps: int = 200) -> dict:
    rng = np.random.default_rng(seed)
    with RunLog(folder / "logs", f"{name}_train", kind="step") as log:
        for s in range(1, steps + 1):
            log.append(
                step=s,
                max_steps=steps,
                loss=float(2.3 / s**0.3 + rng.random() * 0.05),
                accuracy=float(min(1.0, 0.1 + s / steps * 0.7 + rng.random() * 0.05)),
            )
    checkpoints = []
    for k, step in enumerate(range(40, steps + 1, 40)):
        checkpoints.append({
            "step": step, "path": f"checkpoints/{name}/model_step{step}.npz",
            "val_accuracy": round(0.70 + 0.03 * k + 0.001 * seed, 4) - (0.02 if k == 4 else 0),
            "test_accuracy": round(0.69 + 0.031 * k + 0.001 * seed, 4),
        })  # fmt: skip
    selected = max(checkpoints, key=lambda c: c["val_accuracy"])
    return {
        **_run_record(folder, name, figs, _predictions(seed),
                      (("curves", "steps"), ("curves_first_1000", "steps"),
                       ("confusion", "confusion"), ("misclassified", "images"))),
        "params": 61750, "layers": MYSELF_LAYERS,
        "config": {"steps": steps, "batch_size": 64, "lr": 0.0005 * (1 + seed), "momentum": 0.9,
                   "seed": seed, "translate": int(name == "tuned")},
        "checkpoint": selected["path"],
        "val_accuracy": selected["val_accuracy"], "test_accuracy": selected["test_accuracy"],
        "train_seconds": 321.25 + seed, "images_per_second": 40.5 + seed,
        "checkpoints": checkpoints, "selected_step": selected["step"],
    }  # fmt: skip


def _run_record(folder: Path, name: str, figs: _Figures, predictions, figure_kinds) -> dict:
    """The fields both kinds of run record share; draws each figure of figure_kinds."""
    figures = {}
    for key, kind in figure_kinds:
        figures[key] = f"figures/{name}_{key}.png"
        figs.get(kind, folder / figures[key])
    return {"name": name, "hardware": HARDWARE, "test_report": _summary(*predictions),
            "figures": figures,
            "logs": {"csv": f"logs/{name}_train.csv", "log": f"logs/{name}_train.log"}}


def _torch_run(folder: Path, name: str, seed: int, figs: _Figures, epochs: int = 3) -> dict:
    records = []
    with RunLog(folder / "logs", f"{name}_train", kind="epoch") as log:
        for e in range(1, epochs + 1):
            r = {"epoch": e, "epochs": epochs, "train_loss": 0.5 / e, "train_acc": 0.85 + 0.02 * e,
                 "val_loss": 0.4 / e, "val_acc": 0.86 + 0.02 * e - (0.05 if e == epochs else 0),
                 "test_loss": 0.41 / e, "test_acc": 0.855 + 0.021 * e + 0.001 * seed,
                 "lr": 0.001 / e, "seconds": 12.5 * e}  # fmt: skip
            log.append(**r)
            records.append(r)
    selected = max(records, key=lambda r: r["val_acc"])
    return {
        **_run_record(folder, name, figs, _predictions(seed + 10, error=0.08),
                      (("curves", "epochs"), ("confusion", "confusion"), ("misclassified", "images"))),
        "params": 1630282, "layers": TORCH_LAYERS,
        "config": {"epochs": epochs, "batch_size": 128, "optimizer": "adam", "lr": 0.001,
                   "label_smoothing": 0.1 if name == "improved" else 0.0},
        "checkpoint": f"checkpoints/{name}/epoch{selected['epoch']}.pt",
        "val_accuracy": selected["val_acc"], "test_accuracy": selected["test_acc"],
        "train_seconds": 75.5 + seed, "images_per_second": 2500.25 + seed,
        "epochs": records, "selected_epoch": selected["epoch"],
    }  # fmt: skip


# What experiments/robustness/run.py writes (its schema; fashion_mnist.corruptions.robustness_table
# reads it): clean accuracy per model, a row per model, corruption and severity, seconds, provenance.
# Each model loses DROP[corruption] per severity; the augmented runs lose less on the corruptions
# their augmentation covers (shift, hflip) and more on a few others, so their gains differ.
ROBUSTNESS_MODELS = {"numpy_tuned": ("NumPy tuned", 0.9133), "numpy_reproduction": ("NumPy reproduction", 0.9050),
                     "pytorch_reproduction": ("PyTorch reproduction", 0.9150),
                     "pytorch_improved": ("PyTorch improved", 0.9378)}  # fmt: skip
ROBUSTNESS_DROP = {"gaussian_noise": 0.08, "shot_noise": 0.05, "gaussian_blur": 0.03, "rotate": 0.12,
                   "shift": 0.15, "scale": 0.1, "contrast": 0.04, "brightness": 0.06, "hflip": 0.2,
                   "occlusion": 0.07}  # fmt: skip
ROBUSTNESS_KEPT = {"numpy_tuned": {"shift": 0.5, "contrast": -0.5},
                   "pytorch_improved": {"shift": 0.6, "hflip": 1.0, "rotate": 0.2, "gaussian_noise": -0.3}}


def _robustness_record() -> dict:
    from fashion_mnist.corruptions import all_corruptions

    def accuracy(model, corruption, severity):
        clean, kept = ROBUSTNESS_MODELS[model][1], ROBUSTNESS_KEPT.get(model, {}).get(corruption, 0.0)
        return round(clean - ROBUSTNESS_DROP[corruption] * severity * (1 - kept), 4)

    return {"question": "test accuracy of each trained model under common corruptions",
            "test_images": 10000, "seed": 0, "run_dir": ".",
            "models": {k: {"label": label, "checkpoint": f"{k}.npz", "clean_accuracy": clean,
                           "recorded_test_accuracy": clean} for k, (label, clean) in ROBUSTNESS_MODELS.items()},
            "left_out": [{"model": "pytorch_resnet", "reason": "not recorded in its metrics.json"}],
            "rows": [{"model": k, "corruption": c, "severity": s, "accuracy": accuracy(k, c, s)}
                     for c, s in all_corruptions() for k in ROBUSTNESS_MODELS],
            "seconds": {"corrupting": 58.0, **dict.fromkeys(ROBUSTNESS_MODELS, 100.0)},
            "provenance": {**PROVENANCE, "cpu": "Robust CPU", "cpu_cores": 2,
                           "git_commit": "abcdef0123456789abcdef0123456789abcdef01", "wall_seconds": 1643.2}}  # fmt: skip


ROBUSTNESS = _robustness_record()


def _calibration(seed: int) -> dict:
    """What insight.calibration records (as JSON gives it back), on over-confident predictions."""
    rng = np.random.default_rng(seed)

    def predictions(n: int):
        labels = rng.integers(0, NUM_CLASSES, n)
        logits = rng.normal(size=(n, NUM_CLASSES))
        logits[np.arange(n), labels] += 1.5
        return softmax(3 * logits, axis=1), labels

    record = insight.calibration(*predictions(500), *predictions(1000))
    return json.loads(json.dumps(record, default=lambda array: array.tolist()))


def _insight(folder: Path, figs: _Figures, model: str) -> dict:
    """The ``insight`` block of a metrics.json, its figures drawn once and copied."""
    keys = ("filters", "feature_maps", "embedding", "saliency" if model == "cnn-by-myself" else "grad_cam",
            "confusion_errors", "confident_mistakes", "reliability")  # fmt: skip
    figures = {}
    for key in keys:
        figures[key] = {lang: f"figures/insight_{key}.{lang}.png" for lang in ("en", "zh")}
        for path in figures[key].values():
            figs.get("images", folder / path)
    seed = 1 if model == "cnn-by-myself" else 2
    return {"figures": figures,
            "calibration": _calibration(seed),
            "confident_mistakes": [{"index": 1000 + k, "label": 6, "predicted": k % 10,
                                    "probability": 0.99 - k / 100} for k in range(5)],
            "embedding": {"method": "tsne", "n": 2000, "seconds": 12.5}}  # fmt: skip


def _sweep_record() -> dict:
    def run(name, group, base, changes, val, test):
        return {"name": name, "group": group, "base": base, "changes": changes,
                "config": {"lr": 0.1, **changes}, "val_accuracy": val, "test_accuracy": test,
                "selected_step": 5000, "train_seconds": 50.0 + 10 * val,
                "images_per_second": 10000.0}  # fmt: skip

    return {"hardware": HARDWARE, "provenance": PROVENANCE,
            "chosen": {"name": "steps_10000", "is_tuned_default": True}, "runs": [
        run("original", "staircase", None, {}, 0.8604, 0.8598),
        run("+lr", "staircase", "original", {"lr": 0.05}, 0.9004, 0.8951),
        run("+batch", "staircase", "+lr", {"batch_size": 128}, 0.9102, 0.9050),
        run("+cosine", "staircase", "+batch", {"schedule": "cosine"}, 0.9226, 0.9156),
        run("no_wd", "around +cosine", "+cosine", {"weight_decay": 0.0}, 0.9190, 0.9121),
        run("steps_10000", "around +cosine", "+cosine", {"steps": 10000}, 0.9284, 0.9190)]}  # fmt: skip


def _ablation_full() -> dict:
    def run(name, val, test):
        return {"name": name, "config": {"epochs": 30, "translate": 1, "hflip": True}, "val_accuracy": val,
                "test_accuracy": test, "selected_epoch": 29, "epochs": 30, "train_seconds": 600.5,
                "hardware": HARDWARE, "provenance": PROVENANCE}  # fmt: skip

    return {"improved": run("improved", 0.9444, 0.9378), "no_translate": run("no_translate", 0.9401, 0.9342),
            "no_flips": run("no_flips", 0.9452, 0.9360),
            "tta_off": {"val_accuracy": 0.9420, "test_accuracy": 0.9342, "checkpoint": "x.pt",
                        "provenance": PROVENANCE}}  # fmt: skip


ABLATION_4 = {"epochs": 4, "hardware": HARDWARE, "provenance": {**PROVENANCE, "git_commit": "374c6fa" + "0" * 33},
              "rows": [{"name": n, "description": d, "selected_epoch": 4, "val_accuracy": v, "test_accuracy": t,
                        "train_seconds": 200.0} for n, d, v, t in (
                  ("baseline", "the reproduction configuration", 0.9044, 0.8980), ("translate", "translate=2", 0.8896, 0.8873),
                  ("hflip", "hflip=True", 0.8980, 0.8920), ("onecycle", "lr=0.002, schedule=onecycle", 0.9178, 0.9088),
                  ("label_smoothing", "label_smoothing=0.1", 0.9130, 0.9002),
                  ("sgd_nesterov", "optimizer=sgd, nesterov=True", 0.8984, 0.8915),
                  ("tta_flip", "tta_flip=True", 0.8708, 0.8613), ("se", "model=se", 0.9098, 0.9021))]}  # fmt: skip
SEEDS_AS_MARKED = [0.9263, 0.9300, 0.9248, 0.9285]


def _summary_record(folder: Path, figs: _Figures) -> dict:
    def group(init, validation, tests, hardware):
        return {"init": init, "validation": validation, "description": f"init={init}",
                "rows": [{"seed": k, "test_accuracy": t, "hardware": hardware} for k, t in enumerate(tests)],
                "test_accuracy": {"mean": statistics.fmean(tests), "std": statistics.stdev(tests),
                                  "min": min(tests), "max": max(tests)},
                "epoch_1": {"train_loss": 0.4689, "train_acc": 0.8309, "test_acc": 0.8802}}  # fmt: skip

    resnet = _torch_run(folder, "resnet", 3, figs)
    resnet.update(params=2_776_522, hardware="NVIDIA Fake GPU", test_report=None, recorded_from_log=True)
    return {"ablation": ABLATION_4, "resnet": resnet,
            "gpu_runs": {"folder": "gpu", "rows": [{"name": "reproduction_graphs", "description": "reproduction with cuda_graphs=True",
                                                    "epochs": 20, "selected_epoch": 15, "val_accuracy": 0.9322,
                                                    "test_accuracy": 0.9205, "train_seconds": 5.93, "hardware": "NVIDIA Fake GPU"}]},
            "init_seeds": {"groups": [group("pytorch", True, [0.9205, 0.9256], "NVIDIA Fake GPU"),
                                      group("as_marked", False, SEEDS_AS_MARKED, HARDWARE)], "left_out": []}}  # fmt: skip


def _notebook(path: Path, title: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}")]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def make_inputs(root: Path, figure_cache: Path | None = None, *, quick: bool = False) -> dict:
    """Every record the report reads, fake, under ``root``; returns the folders by role and the
    records written."""
    root = Path(root)
    figs = _Figures(figure_cache or root / "_figure_cache")
    paths = {"myself": root / "cnn-by-myself", "pytorch": root / "cnn-by-pytorch", "experiments": root / "experiments",
             "bench": root / "benchmarks", "notebooks": root / "notebooks"}  # fmt: skip
    numpy_tuned = _numpy_run(paths["myself"], "tuned", 1, figs)
    numpy_tuned["config"].update(translate=1, lr=0.1)
    myself = {**numpy_tuned, "model": "cnn-by-myself", "implementation": "NumPy (from scratch)", "quick": quick,
              "class_counts": {"train": [5500] * 10, "val": [500] * 10, "test": [1000] * 10},
              "data": {"source": "data", "sha256_verified": True}, "gradient_check": {"max_relative_error": 3.2e-8},
              "reproduction": _numpy_run(paths["myself"], "reproduction", 0, figs), "provenance": PROVENANCE}  # fmt: skip
    repro = _torch_run(paths["pytorch"], "reproduction", 0, figs, epochs=20)
    for e in repro["epochs"]:
        e.update(val_loss=None, val_acc=None, test_loss=0.30 + abs(e["epoch"] - 8) / 100)
    repro.update(validation=False, val_accuracy=None, selected_epoch=20, test_accuracy=repro["epochs"][-1]["test_acc"])
    improved = _torch_run(paths["pytorch"], "improved", 2, figs)
    improved["config"].update(label_smoothing=0.1, hflip=True, translate=1)
    for e in improved["epochs"]:
        e.update(train_loss=0.6 + 0.1 / e["epoch"], val_loss=0.25 + 0.1 / e["epoch"])
    pytorch = {**improved, "model": "cnn-by-pytorch", "implementation": "PyTorch", "quick": quick,
               "reproduction": repro, "provenance": PROVENANCE,
               "ensemble": {"members": ["PyTorch improved", "NumPy tuned"], "test_accuracy": 0.9318,
                            "member_test_accuracies": {"PyTorch improved": 0.9378, "NumPy tuned": 0.9156}}}  # fmt: skip
    for folder, model, metrics in ((paths["myself"], "cnn-by-myself", myself),
                                   (paths["pytorch"], "cnn-by-pytorch", pytorch)):
        write_json(folder / "metrics.json", {**metrics, "insight": _insight(folder, figs, model)})
    summary = _summary_record(paths["experiments"] / "resnet", figs)
    write_json(paths["experiments"] / "summary.json", summary)
    write_json(paths["experiments"] / "robustness" / "robustness.json", ROBUSTNESS)
    write_json(paths["experiments"] / "numpy_sweep" / "numpy_sweep.json", _sweep_record())
    for name, record in _ablation_full().items():
        write_json(paths["experiments"] / "ablation_full" / f"{name}.json", record)
    provenance = {**PROVENANCE, "git_commit": "fedcba9876543210fedcba9876543210fedcba98", "cpu": "Bench CPU"}
    write_json(paths["bench"] / "bench_lenet.json", {"rounds": 5, "steps": 300, "threads": 2, "results": BENCH_RESULTS,
                                                     "provenance": provenance})  # fmt: skip
    write_json(paths["bench"] / "bench_layers.json", {**LAYER_BENCH, "provenance": provenance})
    write_json(paths["bench"] / "bench_epoch.json", {**EPOCH_BENCH, "provenance": provenance})
    for model in ("cnn-by-myself", "cnn-by-pytorch"):
        _notebook(paths["notebooks"] / f"{model}.ipynb", model)
    myself, pytorch = (json.loads((paths[k] / "metrics.json").read_text(encoding="utf-8")) for k in ("myself", "pytorch"))
    records = {"cnn-by-myself": myself, "cnn-by-pytorch": pytorch, "summary": summary, "sweep": _sweep_record(),
               "ablation_full": _ablation_full(), "robustness": ROBUSTNESS}  # fmt: skip
    return {**paths, "records": records}


BENCH_RESULTS = {
    "64": {"numpy_images_per_s": 13391.76, "torch_images_per_s": 8710.83, "ratio": 1.5497, "cpu": "Bench CPU (2 cores)"},
    "128": {"numpy_images_per_s": 13804.80, "torch_images_per_s": 10790.88, "ratio": 1.0880, "cpu": "Bench CPU (2 cores)"},
    "256": {"numpy_images_per_s": 8963.34, "torch_images_per_s": 12795.34, "ratio": 0.8252, "cpu": "Bench CPU (2 cores)"},
}  # fmt: skip
EPOCH_BENCH = {"rounds": 5, "steps": 430, "warmup": 5, "threads": 2, "results": {
    "ours": {"seconds": 37.81, "threads": 2}, "plain": {"seconds": 57.96, "threads": 2}, "ratio": 0.6704}}  # fmt: skip
LAYER_BENCH = {"rounds": 3, "steps": 100, "warmup": 20, "threads": 2, "results": {
    "batch": 128, "unit": "ms per step", "cpu": "Bench CPU (2 cores)", "layers": {
        "conv1": {"numpy": {"forward": 2.5, "backward": 5.25}, "torch": {"forward": 1.125, "backward": 2.0}},
        "relu1/pool1": {"numpy": {"forward": 0.75, "backward": 1.5}, "torch": {"forward": 0.25, "backward": 0.5}},
        "fc1": {"numpy": {"forward": 0.25, "backward": 0.5}, "torch": {"forward": 0.5, "backward": 1.0}}}}}  # fmt: skip
