"""A small FAKE pair of runs for the report tests: metrics.json files that follow the schema the
notebooks write, tiny logs, and real small PNGs drawn with ``fashion_mnist.plots``.

``make_fake_runs(root)`` writes ``root/cnn-by-myself/``, ``root/cnn-by-pytorch/`` and
``root/notebooks/``; a fixture built on a real quick run can later replace it (the report only
reads those folders).
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import nbformat
import numpy as np

from fashion_mnist import plots
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
    y, pred = _predictions(seed)
    figures = {}
    for key, kind in (("curves", "steps"), ("curves_first_1000", "steps"),
                      ("confusion", "confusion"), ("misclassified", "images")):  # fmt: skip
        figures[key] = f"figures/{name}_{key}.png"
        figs.get(kind, folder / figures[key])
    return {
        "name": name, "params": 61750, "layers": MYSELF_LAYERS,
        "config": {"steps": steps, "batch_size": 64, "learning_rate": 0.0005 * (1 + seed),
                   "momentum": 0.9, "seed": seed, "augment": name == "tuned"},
        "checkpoint": selected["path"],
        "val_accuracy": selected["val_accuracy"], "test_accuracy": selected["test_accuracy"],
        "train_seconds": 321.25 + seed, "images_per_second": 40.5 + seed, "hardware": HARDWARE,
        "test_report": _summary(y, pred),
        "figures": figures,
        "logs": {"csv": f"logs/{name}_train.csv", "log": f"logs/{name}_train.log"},
        "checkpoints": checkpoints, "selected_step": selected["step"],
    }  # fmt: skip


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
    y, pred = _predictions(seed + 10, error=0.08)
    figures = {}
    for key, kind in (("curves", "epochs"), ("confusion", "confusion"),
                      ("misclassified", "images")):  # fmt: skip
        figures[key] = f"figures/{name}_{key}.png"
        figs.get(kind, folder / figures[key])
    return {
        "name": name, "params": 1630282, "layers": TORCH_LAYERS,
        "config": {"epochs": epochs, "batch_size": 128, "optimizer": "adam", "lr": 0.001,
                   "label_smoothing": 0.1 if name == "improved" else 0.0},
        "checkpoint": f"checkpoints/{name}/epoch{selected['epoch']}.pt",
        "val_accuracy": selected["val_acc"], "test_accuracy": selected["test_acc"],
        "train_seconds": 75.5 + seed, "images_per_second": 2500.25 + seed, "hardware": HARDWARE,
        "test_report": _summary(y, pred),
        "figures": figures,
        "logs": {"csv": f"logs/{name}_train.csv", "log": f"logs/{name}_train.log"},
        "epochs": records, "selected_epoch": selected["epoch"],
    }  # fmt: skip


BENCH_RESULTS = {
    "64": {"numpy_images_per_s": 4681.163, "torch_images_per_s": 4401.118, "ratio": 1.00839},
    "128": {"numpy_images_per_s": 5610.581, "torch_images_per_s": 5022.246, "ratio": 1.04799},
    "256": {"numpy_images_per_s": 15139.87, "torch_images_per_s": 5543.326, "ratio": 0.93421},
}  # fmt: skip


# What ``bench_epoch.py --record`` writes, but the provenance (make_fake_bench adds it).
EPOCH_BENCH = {"rounds": 5, "steps": 430, "warmup": 5, "threads": 2, "results": {
    "ours": {"seconds": 37.81, "threads": 2}, "plain": {"seconds": 57.96, "threads": 2},
    "ratio": 0.6704}}  # fmt: skip


# What ``bench_lenet.py --profile --record`` writes, but the provenance (make_fake_bench adds it).
LAYER_BENCH = {"rounds": 3, "steps": 100, "warmup": 20, "threads": 3, "results": {
    "batch": 128, "unit": "ms per step", "cpu": "Bench CPU @ 3.1GHz (4 cores)", "layers": {
        "conv1": {"numpy": {"forward": 2.5, "backward": 5.25}, "torch": {"forward": 1.125, "backward": 2.0}},
        "relu1/pool1": {"numpy": {"forward": 0.75, "backward": 1.5}, "torch": {"forward": 0.25, "backward": 0.5}},
        "fc1": {"numpy": {"forward": 0.25, "backward": 0.5}, "torch": {"forward": 0.5, "backward": 1.0}},
        "sgd": {"numpy": {"forward": 0.0, "backward": 0.5}, "torch": {"forward": 0.0, "backward": 0.25}}}}}  # fmt: skip
# The same benchmarks on the code before the NumPy speed-up (bench_lenet_before.json, ...).
BENCH_BEFORE = {"rounds": 3, "steps": 150, "warmup": 20, "threads": 3, "results": {
    b: {**r, "numpy_images_per_s": r["numpy_images_per_s"] / 2, "ratio": r["ratio"] / 2}
    for b, r in BENCH_RESULTS.items()}}  # fmt: skip
LAYER_BENCH_BEFORE = {**LAYER_BENCH, "results": {**LAYER_BENCH["results"], "layers": {
    name: {"numpy": {k: 2 * v for k, v in row["numpy"].items()}, "torch": row["torch"]}
    for name, row in LAYER_BENCH["results"]["layers"].items()}}}  # fmt: skip
BEFORE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_fake_bench(path: Path, *, shape: str = "current") -> dict:
    """Write a fake ``benchmarks/bench_lenet.json`` at ``path``, with ``bench_epoch.json`` and
    ``bench_layers.json`` beside it for the "current" shape; returns what was written to ``path``.

    ``shape``: "current" (what ``bench_lenet.py --record`` writes: rounds, steps, warmup,
    threads, results, provenance), "old" (the first recorded file: a command line, results and
    provenance, no settings) or "corrupt" (not JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if shape == "corrupt":
        path.write_text("{ not json", encoding="utf-8")
        return {}
    provenance = {**PROVENANCE, "git_commit": "fedcba9876543210fedcba9876543210fedcba98",
                  "git_dirty": shape == "old", "date": "2026-11-27T07:24:07+00:00",
                  "cpu": "Bench CPU @ 3.1GHz", "wall_seconds": None}  # fmt: skip
    if shape == "current":
        data = {"rounds": 7, "steps": 250, "warmup": 15, "threads": 3,
                "results": BENCH_RESULTS, "provenance": provenance}  # fmt: skip
        write_json(path.parent / "bench_epoch.json", EPOCH_BENCH | {"provenance": provenance})
        write_json(path.parent / "bench_layers.json", LAYER_BENCH | {"provenance": provenance})
        old = {**provenance, "git_commit": BEFORE_COMMIT}
        write_json(path.parent / "bench_lenet_before.json", BENCH_BEFORE | {"provenance": old})
        write_json(path.parent / "bench_layers_before.json", LAYER_BENCH_BEFORE | {"provenance": old})
    elif shape == "old":
        data = {"command": "python benchmarks/bench_lenet.py --json (5 rounds x 300 steps)",
                "results": BENCH_RESULTS, "provenance": provenance}  # fmt: skip
    else:
        raise ValueError(f"unknown shape {shape!r}")
    write_json(path, data)
    return data


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


def make_fake_robustness(folder: Path, figure_cache: Path) -> Path:
    """``folder/robustness.json`` (ROBUSTNESS) and its figure ``robustness.png``; returns the JSON."""
    write_json(folder / "robustness.json", ROBUSTNESS)
    _Figures(figure_cache).get("confusion", folder / "robustness.png")  # any small real PNG
    return folder / "robustness.json"


def _notebook(path: Path, title: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}"),
                nbformat.v4.new_code_cell("1 + 1", execution_count=1,
                                          outputs=[nbformat.v4.new_output(
                                              "execute_result", {"text/plain": "2"},
                                              execution_count=1)])]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def make_fake_runs(root: Path, *, myself: bool = True, pytorch: bool = True,
                   extras: bool = True, notebooks: bool = True, quick: bool = False,
                   resnet: bool = False, resnet_from_log: bool = False,
                   figure_cache: Path | None = None) -> dict:  # fmt: skip
    """Write fake runs under ``root``; returns {'myself', 'pytorch', 'notebooks'} folders and the
    metrics written ({model: dict})."""
    root = Path(root)
    figs = _Figures(figure_cache or root / "_figure_cache")
    paths = {"myself": root / "cnn-by-myself", "pytorch": root / "cnn-by-pytorch",
             "notebooks": root / "notebooks", "metrics": {}}  # fmt: skip
    if myself:
        folder = paths["myself"]
        tuned = _numpy_run(folder, "tuned", 1, figs)
        figs.get("images", folder / "figures/first_images.png")
        metrics = {
            **tuned, "model": "cnn-by-myself", "implementation": "NumPy (from scratch)",
            "quick": quick, "model_code_lines": 412,
            "first_images_figure": "figures/first_images.png",
            "class_counts": {"train": [5500 + i for i in range(10)], "val": [500] * 10,
                             "test": [1000 - i for i in range(10)]},
            "data": {"source": "/usr/share/datasets/fashion-mnist (fake)",
                     "sha256_verified": True},
            "gradient_check": {"max_relative_error": 3.2e-8},
            "reproduction": _numpy_run(folder, "reproduction", 0, figs),
            "provenance": PROVENANCE,
        }  # fmt: skip
        write_json(folder / "metrics.json", metrics)
        paths["metrics"]["cnn-by-myself"] = metrics
    if pytorch:
        folder = paths["pytorch"]
        metrics = {
            **_torch_run(folder, "improved", 2, figs), "model": "cnn-by-pytorch",
            "implementation": "PyTorch", "quick": quick, "model_code_lines": 187,
            "reproduction": _torch_run(folder, "reproduction", 0, figs),
            "ablation": None, "ensemble": None, "resnet": None, "gpu_runs": None, "seeds": None,
            "init_seeds": None,
            "provenance": {**PROVENANCE, "wall_seconds": 987.6},
        }  # fmt: skip
        if extras:
            metrics["ablation"] = {"epochs": 3, "hardware": HARDWARE, "rows": [
                {"name": "baseline", "description": "the original's network", "val_accuracy": 0.9012,
                 "test_accuracy": 0.8987, "train_seconds": 60.5},
                {"name": "+augment", "description": "random shifts", "val_accuracy": 0.9123,
                 "test_accuracy": 0.9101, "train_seconds": 70.25},
                {"name": "+cosine", "description": "cosine LR | annealing", "val_accuracy": 0.9088,
                 "test_accuracy": 0.9065, "train_seconds": 61.0},
            ]}  # fmt: skip
            metrics["ensemble"] = {"members": ["improved", "reproduction", "numpy-tuned"],
                                   "member_test_accuracies": {"improved": 0.919, "reproduction":
                                                              0.9011, "numpy-tuned": 0.8123},
                                   "test_accuracy": 0.9234}  # fmt: skip
            metrics["gpu_runs"] = {"folder": "gpu", "rows": [
                {"name": "reproduction", "preset": "reproduction", "description": "reproduction",
                 "epochs": 20, "selected_epoch": 15, "val_accuracy": 0.9322,
                 "test_accuracy": 0.9205, "train_seconds": 40.2, "hardware": "NVIDIA Fake GPU 80GB"},
                {"name": "reproduction_graphs", "preset": "reproduction",
                 "description": "reproduction with cuda_graphs=True", "epochs": 20,
                 "selected_epoch": 15, "val_accuracy": 0.9322, "test_accuracy": 0.9205,
                 "train_seconds": 6.7, "hardware": "NVIDIA Fake GPU 80GB"},
                {"name": "reproduction_short", "preset": "reproduction",
                 "description": "reproduction with epochs=10", "epochs": 10,
                 "selected_epoch": 10, "val_accuracy": 0.9101, "test_accuracy": 0.9003,
                 "train_seconds": 3.1, "hardware": "NVIDIA Fake GPU 80GB"},
                {"name": "improved_cutmix", "preset": "improved",
                 "description": "improved with cutmix=0.5", "epochs": 30, "selected_epoch": 29,
                 "val_accuracy": 0.9312, "test_accuracy": 0.9243, "train_seconds": 102.0,
                 "hardware": "NVIDIA Fake GPU 80GB"},
            ]}  # fmt: skip
            seeds = [(0, 0.9234, 0.9215), (1, 0.9226, 0.9216), (2, 0.9251, 0.9230)]
            metrics["seeds"] = {
                "folder": "seeds",
                "rows": [{"seed": seed, "name": f"reproduction_seed{seed}", "selected_epoch": 15,
                          "val_accuracy": 0.93, "test_accuracy": test, "mean_test_acc_later_half":
                          later, "hardware": HARDWARE} for seed, test, later in seeds],
                "test_accuracy": {"mean": 0.9237, "std": 0.00128, "min": 0.9226, "max": 0.9251},
                "later_half": {"first_epoch": 11, "last_epoch": 20, "mean": 0.9220,
                               "std": 0.00084, "min": 0.9215, "max": 0.9230},
                "left_out": [],
            }  # fmt: skip
            metrics["init_seeds"] = {"folders": ["gpu_seeds", "init_seeds", "all_data"], "left_out": [
                "reproduction_lr_seed0.json (no other seed trained alike)"], "groups": [{
                "init": init, "hold_out_validation": "hold_out_validation" not in description,
                "description": description, "rows": [
                    {"seed": seed, "name": f"reproduction_{init}_seed{seed}", "selected_epoch": 15,
                     "val_accuracy": 0.93, "test_accuracy": test, "mean_test_acc_later_half": test,
                     "hardware": hardware} for seed, test in enumerate(tests)],
                "test_accuracy": {"mean": statistics.fmean(tests), "std": statistics.stdev(tests),
                                  "min": min(tests), "max": max(tests)},
                "later_half": {"first_epoch": 11, "last_epoch": 20, "mean": statistics.fmean(tests),
                               "std": statistics.stdev(tests), "min": min(tests),
                               "max": max(tests)},
                "epoch_1": {"train_loss": loss, "train_acc": acc, "test_acc": 0.8712},
            } for init, description, hardware, tests, loss, acc in [
                ("he_xavier", "cuda_graphs=True", "NVIDIA Fake GPU 80GB", [0.9201, 0.9235, 0.9151],
                 0.5664, 0.8074),
                ("pytorch", "init=pytorch, cuda_graphs=True", "NVIDIA Fake GPU 80GB",
                 [0.9205, 0.9256, 0.9248], 0.4622, 0.8326),
                ("as_marked", "init=as_marked", HARDWARE, [0.9231, 0.9262, 0.9219, 0.9244],
                 0.4851, 0.8254),
                ("he_xavier", "hold_out_validation=False", HARDWARE, [0.9221, 0.9243, 0.9215],
                 0.5903, 0.8061),
                ("pytorch", "init=pytorch, hold_out_validation=False", HARDWARE, [0.9237, 0.9260],
                 0.4575, 0.8412),
            ]]}  # fmt: skip
        if resnet:
            run = _torch_run(folder, "resnet", 3, figs)
            metrics["resnet"] = {**run, "params": 2_777_674, "layers": [],
                                 "hardware": "NVIDIA Fake GPU 80GB"}  # fmt: skip
            if resnet_from_log:
                metrics["resnet"].update(test_report=None, recorded_from_log=True)
        write_json(folder / "metrics.json", metrics)
        paths["metrics"]["cnn-by-pytorch"] = metrics
    if notebooks:
        for model in ("cnn-by-myself", "cnn-by-pytorch"):
            _notebook(paths["notebooks"] / f"{model}.ipynb", model)
    return paths
