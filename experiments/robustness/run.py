"""How well do the trained models hold up on corrupted test images?

Run from the repository root after a full run (``make run``)::

    python experiments/robustness/run.py                      # record + figure in this folder
    python experiments/robustness/run.py --run-dir runs/quick --out /tmp/robustness.json

Every model whose checkpoint is there (NumPy tuned and reproduction, PyTorch improved and
reproduction, the ResNet) classifies the 10,000 test images clean and under each corruption of
``fashion_mnist.corruptions`` at each severity (28 corrupted sets). Inference only; the PyTorch
models are evaluated as their runs were (the improved one with flip test-time augmentation).
Writes the accuracies with provenance to ``robustness.json`` and draws ``robustness.png``:
accuracy against severity, a panel per corruption, a line per model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from fashion_mnist import REPO_ROOT, plots
from fashion_mnist.corruptions import CORRUPTIONS, all_corruptions, corrupt, robustness_table
from fashion_mnist.data import DEFAULT_DIR, ensure_dataset, load_mnist
from fashion_mnist.files import repo_relative, write_json
from fashion_mnist.predict import RUNS, checkpoints, load_predictor
from fashion_mnist.runlog import provenance

HERE = Path(__file__).resolve().parent
LABELS = {name: label for name, (_, _, label) in RUNS.items()}


def available_models(run_dir: Path, wanted: list[str] | None) -> tuple[dict, list[dict]]:
    """{name: Checkpoint} of the models to evaluate, and why each other one is left out."""
    recorded, models, left_out = checkpoints(run_dir), {}, []
    for name in LABELS:
        if wanted and name not in wanted:
            continue
        checkpoint = recorded.get(name)
        reason = checkpoint.missing() if checkpoint else "not recorded in its metrics.json"
        if reason:
            left_out.append({"model": name, "reason": reason})
        else:
            models[name] = checkpoint
    return models, left_out


def evaluate(models: dict, images: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Accuracies clean and on every corrupted set, and the seconds spent on each part."""
    predictors = {name: load_predictor(c.kind, c.path) for name, c in models.items()}
    seconds = dict.fromkeys(["corrupting", *predictors], 0.0)
    clean, rows = {}, []  # clean: {model: accuracy}
    for corruption, severity in [("clean", 0), *all_corruptions()]:
        start = time.perf_counter()
        x = images if corruption == "clean" else corrupt(images, corruption, severity, seed)
        seconds["corrupting"] += time.perf_counter() - start
        accuracies = {}
        for name, predict in predictors.items():
            start = time.perf_counter()
            accuracies[name] = float((predict(x).argmax(axis=1) == labels).mean())
            seconds[name] += time.perf_counter() - start
        if corruption == "clean":
            clean = accuracies
        else:
            rows += [{"model": name, "corruption": corruption, "severity": severity,
                      "accuracy": accuracy} for name, accuracy in accuracies.items()]  # fmt: skip
        print(f"{corruption} {severity}: "
              + ", ".join(f"{LABELS[k]} {v:.4f}" for k, v in accuracies.items()), flush=True)
    return {"clean": clean, "rows": rows, "seconds": {k: round(v, 1) for k, v in seconds.items()}}


def plot(record: dict, path: Path | None = None):
    """Accuracy against severity (0 = clean), a panel per corruption, a line per model."""
    table = robustness_table(record)
    fig, axes = plt.subplots(2, 5, figsize=(16, 6.5), sharex=True, sharey=True)
    for ax, corruption in zip(axes.flat, CORRUPTIONS, strict=True):
        part = table.loc[["clean", corruption]]
        severity = [0, *part.index.get_level_values("severity")[1:]]
        for label in table.columns:
            ax.plot(severity, part[label].to_numpy() * 100, marker="o", label=label)
        ax.set_title(corruption.replace("_", " "))
        ax.set_xticks([0, 1, 2, 3])
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("severity (0 = clean)")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    axes[0, 0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Fashion-MNIST test set ({record['test_images']:,} images) under corruption")
    fig.tight_layout()
    if path is not None:
        plots.save(fig, path)
    plt.close(fig)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT,
                        help="folder holding cnn-by-myself/ and cnn-by-pytorch/ of a run "
                             "(default: the repository, a full run; runs/quick for a quick one)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR, help="Fashion-MNIST folder")
    parser.add_argument("--models", nargs="+", choices=list(LABELS), help="default: all there")
    parser.add_argument("--limit", type=int, help="only the first N test images (a quick look)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruptions")
    parser.add_argument("--out", type=Path, default=HERE / "robustness.json",
                        help="the record; the figure goes beside it, same name, .png")
    args = parser.parse_args(argv)
    models, left_out = available_models(args.run_dir, args.models)
    for item in left_out:
        print(f"left out: {LABELS[item['model']]}: {item['reason']}", file=sys.stderr)
    if not models:
        print(f"no model to evaluate in {args.run_dir}: run `make run` first", file=sys.stderr)
        return 2
    images, labels = load_mnist(ensure_dataset(args.data), "t10k")
    images, labels = images[:args.limit], labels[:args.limit]
    start = time.perf_counter()
    result = evaluate(models, images, labels, args.seed)
    record = {
        "question": "test accuracy of each trained model under common corruptions",
        "test_images": len(labels),
        "seed": args.seed,
        "run_dir": repo_relative(args.run_dir),
        "models": {name: {"label": LABELS[name], "checkpoint": repo_relative(c.path),
                          "clean_accuracy": result["clean"][name],
                          "recorded_test_accuracy": c.test_accuracy}
                   for name, c in models.items()},  # fmt: skip
        "left_out": left_out,
        "rows": result["rows"],
        "seconds": result["seconds"],
        "provenance": provenance(time.perf_counter() - start),
    }
    write_json(args.out, record)
    plot(record, args.out.with_suffix(".png"))
    print(robustness_table(record).round(4).to_string())
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in "
          f"{record['provenance']['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
