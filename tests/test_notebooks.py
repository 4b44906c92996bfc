"""Both notebooks executed headless in quick mode, as `make run QUICK=1` runs them.

The session-scoped ``quick_runs`` fixture (conftest.py) executes each notebook once into a
temporary folder; these tests, and the report's, read what it saved. Needs the real data.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import NOTEBOOKS

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_committed_without_outputs_and_with_parameters_cell(name):
    nb = nbformat.read(NOTEBOOKS[name], as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])


def test_numpy_notebook_quick_run(quick_runs):
    out = quick_runs / "cnn-by-myself"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quick"] is True and metrics["params"] == 61750
    steps = {c["step"] for c in metrics["checkpoints"]}
    assert metrics["selected_step"] in steps and steps == {100, 200, 300}
    best = max(metrics["checkpoints"], key=lambda c: c["val_accuracy"])
    assert metrics["val_accuracy"] == best["val_accuracy"]  # selected on validation
    assert metrics["test_accuracy"] == metrics["test_report"]["accuracy"]
    assert 0.5 < metrics["test_accuracy"] <= 1.0  # 300 steps on 3,000 images learn something
    assert (out / metrics["checkpoint"]).is_file()
    for figure in [*metrics["figures"].values(), metrics["first_images_figure"]]:
        assert (out / figure).stat().st_size > 10_000
    assert metrics["gradient_check"]["max_relative_error"] < 1e-6
    assert metrics["reproduction"]["config"]["batch_size"] == 64
    assert metrics["blas_threads"] == metrics["reproduction"]["blas_threads"] == 1  # the parameter
    log_lines = (out / metrics["logs"]["log"]).read_text().splitlines()
    assert len(log_lines) == 300 and ", Step: 300/300, Loss: " in log_lines[-1]
    assert metrics["provenance"]["wall_seconds"] > 0


def test_numpy_notebook_defaults_are_the_tuned_preset():
    import numpy_cnn

    nb = nbformat.read(NOTEBOOKS["cnn-by-myself"], as_version=4)
    namespace: dict = {}
    exec(nb.cells[1].source, namespace)
    tuned = numpy_cnn.TUNED
    for field in ("steps", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule",
                  "translate", "label_smoothing", "checkpoint_every", "seed"):  # fmt: skip
        assert namespace[field.upper()] == getattr(tuned, field), field
    assert namespace["REPRO_STEPS"] == numpy_cnn.ORIGINAL.steps


def test_pytorch_notebook_quick_run(quick_runs):
    out = quick_runs / "cnn-by-pytorch"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quick"] is True and metrics["params"] == 1_630_282
    epochs = metrics["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    best = max(epochs, key=lambda e: e["val_acc"])
    assert metrics["selected_epoch"] == best["epoch"]  # selected on validation
    assert metrics["test_accuracy"] == metrics["test_report"]["accuracy"]
    assert abs(metrics["test_accuracy"] - best["test_acc"]) < 2e-3  # the same model, evaluated twice
    assert metrics["reproduction"]["config"]["optimizer"] == "adam"
    assert len(metrics["ablation"]["rows"]) >= 8
    ensemble = metrics["ensemble"]
    assert "NumPy tuned" in ensemble["members"] and len(ensemble["members"]) == 3
    assert 0.5 < ensemble["test_accuracy"] <= 1.0
    assert metrics["resnet"] is None
    for figure in metrics["figures"].values():
        assert (out / figure).stat().st_size > 10_000
    lines = (out / metrics["logs"]["log"]).read_text().splitlines()
    assert lines[-1].startswith("Epoch [2/2]  Train Loss: ")


def test_pytorch_notebook_defaults_are_the_presets():
    import torch_cnn

    nb = nbformat.read(NOTEBOOKS["cnn-by-pytorch"], as_version=4)
    namespace: dict = {}
    exec(nb.cells[1].source, namespace)
    assert namespace["EPOCHS"] == torch_cnn.IMPROVED.epochs
    assert namespace["REPRO_EPOCHS"] == torch_cnn.REPRODUCTION.epochs
    assert namespace["ABLATION_EPOCHS"] == torch_cnn.ABLATION_EPOCHS
