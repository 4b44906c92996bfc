"""PyTorch runs end to end, as the notebook runs them: one configuration, the ablation, the ensemble.

``run`` trains with the per-epoch log, selects the epoch with the best validation accuracy (or,
with ``validation=False``, trains on all the training images and keeps the last epoch, as the
original did; the test set is only reported), evaluates it on test, draws its figures and returns
the run's record for ``metrics.json``.
``recorded_experiments`` reads what the experiments shelf (``experiments/``: the runs over seeds,
the GPU runs, the ablation and ResNet records) summarised, for the notebook to show beside its
own runs; training them is ``experiments/``' business (``make -C experiments``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import torch_cnn

from fashion_mnist import original, plots
from fashion_mnist.data import Splits
from fashion_mnist.files import read_json, write_json
from fashion_mnist.results import (
    import_model_module,
    relative,
    soft_vote,
    test_evaluation,
)
from fashion_mnist.runlog import EPOCH_FIELDS, RunLog, hardware, provenance


def run(name: str, config: torch_cnn.Config, splits: Splits, out: Path, *,
        validation: bool = True, resume: bool = False, device=None, title: str = "") -> dict:
    """Train ``config`` into ``out`` (logs/, runs/NAME/checkpoints/, figures/); describe the run.

    With ``validation`` it holds the validation split out and selects the epoch on it; without,
    it trains on the training and validation splits together (``training_sets``) and keeps the
    last epoch. Without ``resume`` the run starts afresh, replacing this run's earlier checkpoints.
    """
    title = title or name
    run_dir = out / "runs" / name
    if not resume:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    latest = torch_cnn.latest_checkpoint(run_dir)
    start = torch_cnn.checkpoint_epoch(latest) if latest else 0
    # What was trained, where and from which code, written first: if the end is cut off, the
    # per-epoch log and this header still make a record (record_from_log). A resumed run keeps
    # the header of the code its first epochs were trained with.
    if start == 0 or not header_path(out, name).exists():
        write_json(header_path(out, name), {"config": dataclasses.asdict(config),
                                             "validation": validation, "hardware": hardware(),
                                             "provenance": provenance()})  # fmt: skip
    train_images, train_labels, val_images, val_labels = training_sets(splits, validation)
    with RunLog(out / "logs", name, kind="epoch", flush_every=1, keep_until=start,
                echo=True) as log:  # fmt: skip
        result = torch_cnn.train(
            config, train_images, train_labels, val_images, val_labels, run_dir,
            splits.test_images, splits.test_labels,
            on_epoch=lambda r: log.append(**{k: r[k] for k in EPOCH_FIELDS if k in r}),
            resume=resume, device=device,
        )  # fmt: skip

    checkpoint = Path(result["best_checkpoint"])
    model = torch_cnn.load(checkpoint, device=result["device"])  # a ResNet is slow on a CPU
    probabilities = torch_cnn.predict_proba(model, splits.test_images)  # as it was evaluated
    report, figures = test_evaluation(name, probabilities, splits, out, title)
    described = from_history(name, title, config, model, result["history"], len(train_labels),
                              out)  # fmt: skip
    return {
        **described,
        "checkpoint": relative(checkpoint, out),
        "test_accuracy": report["accuracy"],
        # > 0: this call only trained the epochs after it, so its wall time is not the run's
        "resumed_from_epoch": start,
        "hardware": hardware(),
        "test_report": report,
        "figures": {**figures, **described["figures"]},
    }


def training_sets(splits: Splits, validation: bool):
    """(train images, train labels, validation images, validation labels): the splits as they
    are, or, without ``validation``, all of the training images (the original's 60,000; never the
    test set) and None for validation."""
    if validation:
        return splits.train_images, splits.train_labels, splits.val_images, splits.val_labels
    return (np.concatenate([splits.train_images, splits.val_images]),
            np.concatenate([splits.train_labels, splits.val_labels]), None, None)  # fmt: skip


def from_history(name: str, title: str, config: torch_cnn.Config, model, history: list[dict],
                  n_train: int, out: Path) -> dict:  # fmt: skip
    """What a run's per-epoch history says of it (``torch_cnn.run_summary``: the selected epoch,
    its test accuracy as measured then, times; ``validation``: whether it was selected on
    validation or is the last), the curves figure (drawn here), and the network's size."""
    summary = torch_cnn.run_summary(history, n_train)
    curves = out / "figures" / f"{name}_curves.png"
    plots.plot_epoch_curves(history, curves, title=f"{title}: per epoch")
    return {
        "name": name,
        "params": torch_cnn.count_params(model),
        "layers": torch_cnn.summary_rows(model),
        "config": dataclasses.asdict(config),
        "validation": torch_cnn.held_out_validation(history),
        "selected_epoch": summary["selected_epoch"],
        "val_accuracy": summary["val_accuracy"],
        "test_accuracy": summary["test_accuracy"],
        "epochs": history,
        "train_seconds": round(summary["train_seconds"], 2),
        "images_per_second": round(summary["images_per_second"], 1),
        "figures": {"curves": relative(curves, out)},
        "logs": {"csv": f"logs/{name}.csv", "log": f"logs/{name}.log"},
    }


def header_path(out: Path, name: str) -> Path:
    """Where ``run`` writes what it trains, where, and from which code, before training."""
    return out / "logs" / f"{name}.run.json"


def epoch_table(run_record: dict, original_acc: tuple[float, ...] | None = None) -> pd.DataFrame:
    """Per-epoch accuracies (like the original's table), the selected epoch marked;
    ``original_acc`` (``original.TORCH_TEST_ACC``) puts the original's test accuracy of each epoch
    beside ours."""
    table = pd.DataFrame(run_record["epochs"]).set_index("epoch")
    table = table[["train_acc", "val_acc", "test_acc", "seconds"]].round(4)
    if original_acc is not None:
        by_epoch = pd.Series(original_acc, index=range(1, len(original_acc) + 1))
        table.insert(3, "original_test_acc", by_epoch.reindex(table.index))
    why = ("selected on validation" if torch_cnn.held_out_validation(run_record["epochs"])
           else "the last")  # fmt: skip
    table["selected"] = [f"<- {why}" if e == run_record["selected_epoch"] else ""
                         for e in table.index]  # fmt: skip
    return table


def versus_original(
    run_record: dict, original_acc: tuple[float, ...] = original.TORCH_TEST_ACC
) -> str:
    """The run's test accuracy against the original's over the epochs both ran: the mean over the
    later half of them (epochs n//2+1 to n), and the best epoch of each, picked on the test set as
    the original did (for comparison only: our checkpoint is the one chosen on validation)."""
    ours = [r.get("test_acc") for r in run_record["epochs"]][: len(original_acc)]
    if not ours or None in ours:
        return "No per-epoch test accuracy to compare with the original's."
    n, later = len(ours), len(ours) // 2

    def span(first: int) -> str:
        return f"epoch {n}" if first == n else f"epochs {first}-{n}"

    text = (f"Test accuracy over {span(later + 1)}, on average: ours "
            f"{statistics.fmean(ours[later:]):.2%}, the original's "
            f"{original.torch_mean_test_acc(later + 1, n, original_acc):.2%}. Best of {span(1)} on the test set: "
            f"ours {max(ours):.2%}, the original's {max(original_acc[:n]):.2%}.")  # fmt: skip
    if len(run_record["epochs"]) > n:
        text += f" Our epochs after {n} are left out: the original ran {n}."
    kept = ("selected on validation" if torch_cnn.held_out_validation(run_record["epochs"])
            else "the last epoch")  # fmt: skip
    return (text + f" Ours, {kept}: {run_record['test_accuracy']:.2%} "
            f"(epoch {run_record['selected_epoch']}).")  # fmt: skip


def describe(config: torch_cnn.Config | dict, base: torch_cnn.Config | dict) -> str:
    """What a configuration (or a recorded one's fields) changes relative to ``base``, e.g.
    'translate=2'."""
    return ", ".join(torch_cnn.differences(config, base)) or "the reproduction configuration"


def run_ablations(splits: Splits, out: Path, epochs: int = torch_cnn.ABLATION_EPOCHS,
                  device=None) -> dict:  # fmt: skip
    """Each improvement alone on top of the reproduction, ``epochs`` long; one row each."""
    base = dataclasses.replace(torch_cnn.ABLATIONS["baseline"], epochs=epochs)
    rows = []
    for name, config in torch_cnn.ABLATIONS.items():
        config = dataclasses.replace(config, epochs=epochs)
        run_dir = out / "runs" / f"ablation_{name}"
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        result = torch_cnn.train(
            config, splits.train_images, splits.train_labels, splits.val_images,
            splits.val_labels, run_dir, splits.test_images, splits.test_labels,
            resume=False, device=device,
        )  # fmt: skip
        best = torch_cnn.select_epoch(result["history"])
        rows.append({
            "name": name, "description": describe(config, base),
            "selected_epoch": best["epoch"], "val_accuracy": best["val_acc"],
            "test_accuracy": best["test_acc"], "train_seconds": round(result["train_seconds"], 1),
        })  # fmt: skip
        print(f"ablation {name}: val {best['val_acc']:.4f}, test {best['test_acc']:.4f}")
    return {"epochs": epochs, "hardware": hardware(), "rows": rows}


def ensemble(torch_checkpoints: dict[str, Path], numpy_metrics: Path, splits: Splits) -> dict | None:
    """Soft voting of the PyTorch checkpoints and the NumPy run's selected model on test."""
    models = {name: torch_cnn.load(path, device="cpu") for name, path in torch_checkpoints.items()}
    probabilities = {name: torch_cnn.predict_proba(model, splits.test_images)
                     for name, model in models.items()}  # fmt: skip
    # Checkpoints are not committed: a fresh clone has the NumPy metrics but not its weights.
    checkpoint = (numpy_metrics.parent / read_json(numpy_metrics)["checkpoint"]
                  if numpy_metrics.is_file() else numpy_metrics)  # fmt: skip
    if checkpoint.is_file():
        numpy_cnn = import_model_module("cnn-by-myself", "numpy_cnn")
        numpy_model = numpy_cnn.load(checkpoint)
        probabilities["NumPy tuned"] = numpy_cnn.predict_proba(numpy_model, splits.test_images)
    else:
        print(f"{checkpoint} not found: the ensemble has only the PyTorch models "
              "(run the NumPy notebook first)")  # fmt: skip
    if len(probabilities) < 2:
        return None
    vote = soft_vote(probabilities, splits.test_labels)
    return {"members": vote["members"], "member_test_accuracies": vote["member_accuracies"],
            "test_accuracy": vote["accuracy"]}  # fmt: skip


def read_recorded(path: Path) -> dict | None:
    """A result recorded by an earlier run (a JSON record), or None when there is none."""
    return read_json(path) if path.is_file() else None


# What the experiments shelf recorded (experiments/README.md), by metrics.json's key.
EXPERIMENT_KEYS = ("seeds", "init_seeds", "gpu_runs", "ablation", "resnet")


def recorded_experiments(summary_path: Path | None, out: Path) -> dict:
    """The recorded experiments that ``experiments/summarise.py`` gathered into ``summary_path``
    (``experiments/summary.json``), each under its key in ``metrics.json`` (None when not
    recorded), plus ``display``: the tables as the notebook shows them. The ResNet record's
    figures and logs are given relative to ``out``, as for the notebook's own runs."""
    summary = read_recorded(summary_path) if summary_path else None
    if summary is None:
        return {**dict.fromkeys(EXPERIMENT_KEYS), "display": {}}
    resnet = summary["resnet"]
    if resnet is not None:  # its paths are relative to the summary's folder
        def moved(path: str) -> str:
            return Path(os.path.relpath(summary_path.parent / path, out)).as_posix()

        resnet = {**resnet, "figures": {k: moved(v) for k, v in resnet["figures"].items()},
                  "logs": {k: moved(v) for k, v in resnet["logs"].items()}}  # fmt: skip
    return {**{key: summary[key] for key in EXPERIMENT_KEYS}, "resnet": resnet,
            "display": summary["display"]}  # fmt: skip
