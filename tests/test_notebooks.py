"""The notebooks: what they teach (read from the committed files), and both executed headless in
quick mode, as `make run QUICK=1` runs them.

The session-scoped ``quick_runs`` fixture (conftest.py) executes each notebook once into a
temporary folder; the quick-run tests, and the report's, read what it saved. Those need the real
data; the tests of the committed files do not.
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from conftest import NOTEBOOKS

from fashion_mnist import REPO_ROOT

# What each notebook shows a student, in this order: the mechanism first, then the tested modules.
TEACHING = {
    "cnn-by-myself": (
        "for layer in model.layers:",  # one image through every layer, shapes printed
        "reference_layers.conv2d(",  # the loop convolution ...
        "np.testing.assert_allclose(im2col(), loops()",  # ... equal to im2col ...
        "best_time(loops, 3)",  # ... and timed
        "net.backward(loss_fn.backward())",  # one SGD step by hand
        "params[key] -= learning_rate * grads[key]",
        "assert loss_after < loss_before",
        "gradcheck.check_network(",
        'numpy_run.run("tuned"',
        'numpy_run.run("reproduction"',
        'learned.params()["conv1_weights"]',  # what the network learned
        "cnn.feature_maps(",
        "insight.embed_2d(",
        "cnn.saliency(",
        "insight.confident_mistakes(",
        "insight.calibration(",
    ),
    "cnn-by-pytorch": (
        "print(net)",
        "optimizer.zero_grad()",  # the training loop as code
        "loss.backward()",
        "optimizer.step()",
        "with torch.no_grad():",
        "validation=False",  # the reproduction trained as the original
        "original.TORCH_TEST_ACC",
        'torch_run.run("improved"',
        "torch_insight.feature_maps(",
        "insight.embed_2d(",
        "torch_insight.grad_cam(",
        "insight.confident_mistakes(",
        "insight.calibration(",
    ),
}

INSIGHT_FIGURES = {"filters", "feature_maps", "embedding", "confusion_errors",
                   "confident_mistakes", "reliability"}  # fmt: skip

# Rows of each notebook's timing table, and where the last full run recorded that time.
RECORDED_TIMES = {
    "cnn-by-myself": {
        "Tuned training: 10,000 steps of 128 images": lambda m: m["train_seconds"],
        "Reproduction of the original's settings: 5,000 steps of 64 images":
            lambda m: m["reproduction"]["train_seconds"],
        "The whole notebook": lambda m: m["provenance"]["wall_seconds"],
    },
    "cnn-by-pytorch": {
        "Reproduction: all 60,000 training images, 20 epochs":
            lambda m: m["reproduction"]["train_seconds"],
        "Improved: 55,000 training images, 30 epochs": lambda m: m["train_seconds"],
        "The whole notebook": lambda m: m["provenance"]["wall_seconds"],
    },
}  # fmt: skip


def read(name: str):
    return nbformat.read(NOTEBOOKS[name], as_version=4)


def code_cells(name: str) -> list[str]:
    return [c.source for c in read(name).cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_committed_without_outputs_and_with_parameters_cell(name):
    code = [c for c in read(name).cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_shows_the_mechanism_before_the_tested_modules(name):
    source = "\n".join(code_cells(name))
    positions = [source.find(snippet) for snippet in TEACHING[name]]
    missing = [s for s, p in zip(TEACHING[name], positions, strict=True) if p < 0]
    assert not missing, f"{name}/demo.ipynb no longer shows {missing}"
    assert positions == sorted(positions), f"{name}/demo.ipynb teaches out of order"


def stated_seconds(text: str, part: str) -> tuple[float, float]:
    """The (low, high) seconds a timing table in ``text`` states for the row ``part``: 'about 80
    s', 'about 6-7 min'."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == part:
            found = re.fullmatch(r"about (\d+)(?:-(\d+))? (s|min)", cells[1])
            assert found, f"row {part!r}: {cells[1]!r} is not 'about N s' or 'about N-M min'"
            unit = 60 if found[3] == "min" else 1
            return float(found[1]) * unit, float(found[2] or found[1]) * unit
    raise AssertionError(f"no timing row {part!r}")


def test_stated_seconds_reads_the_table():
    table = "| Part | Time |\n|---|---|\n| Training | about 80 s |\n| All | about 6-7 min |"
    assert stated_seconds(table, "Training") == (80, 80)
    assert stated_seconds(table, "All") == (360, 420)
    with pytest.raises(AssertionError, match="no timing row"):
        stated_seconds(table, "Reproduction")


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_timing_table_matches_the_last_full_run(name):
    """The times at the top of a notebook are typed by hand: they must stay within a factor of 1.5
    of what the committed full run on 2 cores recorded."""
    metrics = json.loads((REPO_ROOT / name / "metrics.json").read_text())
    resumed = metrics.get("resumed_from_step") or metrics.get("resumed_from_epoch")
    if metrics["quick"] or resumed or metrics["provenance"]["cpu_cores"] != 2:
        pytest.skip("the committed run is not a fresh full run on 2 cores")
    table = read(name).cells[0].source
    for part, recorded in RECORDED_TIMES[name].items():
        low, high = stated_seconds(table, part)
        assert low / 1.5 <= recorded(metrics) <= high * 1.5, (part, recorded(metrics))


def check_insight(insight: dict, out, map_figure: str) -> None:
    """A quick run's 'insight' record, which the report reads: every figure in both languages,
    the calibration, the most confident mistakes and the embedding (of 500 images)."""
    assert set(insight["figures"]) == INSIGHT_FIGURES | {map_figure}
    for figure in insight["figures"].values():
        assert set(figure) == {"en", "zh"}
        assert all((out / path).stat().st_size > 5_000 for path in figure.values())
    calibration = insight["calibration"]
    assert calibration["temperature"] > 0
    assert 0 <= calibration["ece_before"] <= 1 and 0 <= calibration["ece_after"] <= 1
    mistakes = insight["confident_mistakes"]
    assert len(mistakes) == 8 and all(m["label"] != m["predicted"] for m in mistakes)
    probabilities = [m["probability"] for m in mistakes]
    assert probabilities == sorted(probabilities, reverse=True)
    assert insight["embedding"]["method"] == "tsne" and insight["embedding"]["n"] == 500


@pytest.mark.slow
@pytest.mark.real_data
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
    check_insight(metrics["insight"], out, "saliency")


def test_numpy_notebook_defaults_are_the_tuned_preset():
    import numpy_cnn

    namespace: dict = {}
    exec(read("cnn-by-myself").cells[1].source, namespace)
    tuned = numpy_cnn.TUNED
    for field in ("steps", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule",
                  "translate", "label_smoothing", "checkpoint_every", "seed"):  # fmt: skip
        assert namespace[field.upper()] == getattr(tuned, field), field
    assert namespace["REPRO_STEPS"] == numpy_cnn.ORIGINAL.steps


@pytest.mark.slow
@pytest.mark.real_data
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
    reproduction = metrics["reproduction"]
    assert reproduction["config"]["optimizer"] == "adam"
    # trained as the original: no validation held out, the last epoch kept
    assert all(e["val_acc"] is None for e in reproduction["epochs"])
    assert reproduction["selected_epoch"] == reproduction["epochs"][-1]["epoch"]
    assert metrics["ablation"] is None  # a quick run trains no ablation: that is experiments/' job
    ensemble = metrics["ensemble"]
    assert "NumPy tuned" in ensemble["members"] and len(ensemble["members"]) == 3
    assert 0.5 < ensemble["test_accuracy"] <= 1.0
    assert metrics["resnet"] is None
    for figure in metrics["figures"].values():
        assert (out / figure).stat().st_size > 10_000
    lines = (out / metrics["logs"]["log"]).read_text().splitlines()
    assert lines[-1].startswith("Epoch [2/2]  Train Loss: ")
    check_insight(metrics["insight"], out, "grad_cam")


def test_pytorch_notebook_defaults_are_the_presets():
    import torch_cnn

    namespace: dict = {}
    exec(read("cnn-by-pytorch").cells[1].source, namespace)
    assert namespace["EPOCHS"] == torch_cnn.IMPROVED.epochs
    assert namespace["REPRO_EPOCHS"] == torch_cnn.REPRODUCTION.epochs
    assert namespace["ABLATION_EPOCHS"] == torch_cnn.ABLATION_EPOCHS
