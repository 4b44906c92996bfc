"""One NumPy training run, end to end, as the notebook runs it.

Train with the step log and a progress bar, evaluate every checkpoint, select one on the
validation split (the test set is only reported), evaluate it on test, draw its figures, and
return the run's record for ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy_cnn as cnn
from threadpoolctl import threadpool_limits

from fashion_mnist import plots, runlog
from fashion_mnist.data import Splits
from fashion_mnist.results import (
    evaluate_checkpoints,
    relative,
    select_on_validation,
    test_evaluation,
)
from fashion_mnist.runlog import hardware, logged_steps, read_csv


def run(name: str, config: cnn.TrainConfig, splits: Splits, out: Path, resume: bool = False,
        title: str = "", blas_threads: int | None = None) -> dict:  # fmt: skip
    """Train ``config`` into ``out`` (logs/, checkpoints/NAME/, figures/) and describe the run.

    Without ``resume`` the run starts afresh, replacing this run's earlier checkpoints; with it,
    training continues from the latest one. ``blas_threads`` caps BLAS's threads for the run
    (None: BLAS's own default). Different thread counts sum in a different order, so results
    differ slightly between them.
    """
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        return {**_run(name, config, splits, out, resume, title or name),
                "blas_threads": runlog.blas_threads()}  # fmt: skip


def _run(name: str, config: cnn.TrainConfig, splits: Splits, out: Path, resume: bool,
         title: str) -> dict:  # fmt: skip
    checkpoint_dir = out / "checkpoints" / name
    if not resume:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    existing = cnn.list_checkpoints(checkpoint_dir)
    start = cnn.checkpoint_step(existing[-1]) if existing else 0

    model = cnn.build_lenet(seed=config.seed)
    began = time.perf_counter()
    with logged_steps(out / "logs", name, config.steps, start) as on_step:
        cnn.train(model, config, splits.train_images, splits.train_labels, checkpoint_dir,
                  on_step=on_step, resume=resume)  # fmt: skip
    seconds = time.perf_counter() - began

    rows = evaluate_checkpoints(cnn.list_checkpoints(checkpoint_dir), cnn.load, cnn.predict_proba,
                                splits)  # fmt: skip
    for row in rows:
        row["step"] = cnn.checkpoint_step(row["path"])
        row["path"] = relative(row["path"], out)
    best = select_on_validation(rows)
    selected = cnn.load(out / best["path"])
    report, figures = test_evaluation(name, cnn.predict_proba(selected, splits.test_images),
                                      splits, out, title)  # fmt: skip

    steps = read_csv(out / "logs" / f"{name}.csv")
    curves = out / "figures" / f"{name}_curves.png"
    curves_first = out / "figures" / f"{name}_curves_first_1000.png"
    plots.plot_step_curves(steps, curves, title=f"{title}: all {config.steps} steps")
    plots.plot_step_curves(steps, curves_first, last_step=1000, title=f"{title}: first 1000 steps")
    figures.update(curves=relative(curves, out), curves_first_1000=relative(curves_first, out))

    trained = config.steps - start
    return {
        "name": name,
        "params": cnn.count_params(selected),
        "layers": cnn.summary_rows(selected),
        "config": dataclasses.asdict(config),
        "checkpoint": best["path"],
        "selected_step": best["step"],
        "val_accuracy": best["val_accuracy"],
        "test_accuracy": best["test_accuracy"],
        "checkpoints": rows,
        "train_seconds": round(seconds, 2),
        "images_per_second": round(trained * config.batch_size / seconds, 1) if trained else None,
        "resumed_from_step": start,
        "hardware": hardware(),
        "test_report": report,
        "figures": figures,
        "logs": {"csv": f"logs/{name}.csv", "log": f"logs/{name}.log"},
    }
