"""Shared helpers: metrics against hand-computed cases, plots, logs, parameters, atomic files."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from fashion_mnist import REPO_ROOT, files, original, plots, predict, runlog
from fashion_mnist.data import load_splits, validation_split
from fashion_mnist.metrics import classification_summary, most_confused_pairs
from fashion_mnist.params import notebook_params, output_dir
from fashion_mnist.runlog import (
    RunLog,
    epoch_line,
    parse_log_line,
    provenance,
    read_csv,
    read_log,
    write_metrics,
)


def test_classification_summary_hand_computed():
    y_true = [0, 0, 0, 6, 6, 6, 6, 1]
    y_pred = [0, 0, 6, 0, 0, 6, 6, 1]
    s = classification_summary(y_true, y_pred)
    assert s["accuracy"] == pytest.approx(5 / 8)
    cm = np.array(s["confusion_matrix"])
    assert cm[0, 0] == 2 and cm[0, 6] == 1 and cm[6, 0] == 2 and cm[6, 6] == 2 and cm[1, 1] == 1
    shirt = s["per_class"][6]
    assert shirt["name"] == "Shirt" and shirt["support"] == 4
    assert shirt["precision"] == pytest.approx(2 / 3) and shirt["recall"] == pytest.approx(2 / 4)
    assert shirt["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    top = s["most_confused"][0]
    assert (top["true_name"], top["predicted_name"], top["count"]) == ("Shirt", "T-shirt/top", 2)
    assert top["rate"] == pytest.approx(0.5)
    assert len(s["most_confused"]) == 2  # only non-zero off-diagonal cells


def test_most_confused_pairs_ignores_diagonal():
    cm = np.diag(np.full(10, 100))
    assert most_confused_pairs(cm) == []


def _png_size(path):
    with Image.open(path) as im:
        return im.size


def test_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    steps = [{"step": i, "loss": 2.0 / i, "accuracy": 1 - 1 / i} for i in range(1, 301)]
    plots.plot_step_curves(steps, tmp_path / "steps.png", last_step=100)
    epochs = [{"epoch": e, "train_loss": 1 / e, "train_acc": 1 - 1 / (e + 1), "val_loss": 1.1 / e,
               "val_acc": 0.9, "test_loss": None, "test_acc": None} for e in range(1, 6)]  # fmt: skip
    plots.plot_epoch_curves(epochs, tmp_path / "epochs.png")
    plots.plot_confusion(rng.integers(0, 100, (10, 10)), tmp_path / "cm.png")
    images = rng.integers(0, 256, (40, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, 40)
    plots.plot_first_images(images, labels, tmp_path / "first.png")
    plots.plot_misclassified(images, labels, (labels + 1) % 10, tmp_path / "wrong.png")
    photos = [predict.as_photo(x) for x in images[:5]]
    plots.plot_photo_predictions(photos, images[:5], rng.dirichlet(np.ones(10), 5), labels[:5],
                                 tmp_path / "photos.png")  # fmt: skip
    for name, min_size in [("steps", (1200, 450)), ("epochs", (1200, 450)), ("cm", (900, 800)),
                           ("first", (1500, 500)), ("wrong", (1500, 500)),
                           ("photos", (1000, 450))]:  # fmt: skip
        path = tmp_path / f"{name}.png"
        width, height = _png_size(path)
        assert width >= min_size[0] and height >= min_size[1], (name, width, height)
    assert not list(tmp_path.glob(".*.tmp"))


def test_step_log_lines_and_csv_parse_back(tmp_path):
    with RunLog(tmp_path, "train", flush_every=2) as log:
        for step in range(1, 6):
            line = log.append(step=step, max_steps=5, loss=3.0 / step, accuracy=step / 10)
    assert line.endswith(", Step: 5/5, Loss: 0.6000, Accuracy: 0.5000")
    parsed = read_log(tmp_path / "train.log")
    rows = read_csv(tmp_path / "train.csv")
    assert [r["step"] for r in parsed] == [1, 2, 3, 4, 5] == [r["step"] for r in rows]
    assert parsed[2]["loss"] == pytest.approx(1.0) and rows[2]["loss"] == pytest.approx(1.0)
    # Resuming from step 3 keeps 1..3 and continues.
    log = RunLog(tmp_path, "train", keep_until=3)
    assert [r["step"] for r in log.records] == [1, 2, 3]


def test_epoch_line_is_the_originals_format():
    record = {"epoch": 1, "epochs": 20, "train_loss": 0.4571, "train_acc": 0.8349,
              "test_loss": 0.3226, "test_acc": 0.8797}  # fmt: skip
    line = epoch_line(record)
    assert line == "Epoch [1/20]  Train Loss: 0.4571  Acc: 0.8349  Test Loss: 0.3226  Acc: 0.8797"
    assert parse_log_line(line)["test_acc"] == pytest.approx(0.8797)
    with_val = epoch_line({**record, "val_loss": 0.3, "val_acc": 0.9})
    assert parse_log_line(with_val)["val_acc"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="not a step or epoch"):
        parse_log_line("Epoch one")


def test_metrics_json_has_provenance(tmp_path):
    written = write_metrics(tmp_path / "metrics.json", {"test_accuracy": 0.9}, wall_seconds=1.234)
    loaded = json.loads((tmp_path / "metrics.json").read_text())
    assert loaded == written and loaded["test_accuracy"] == 0.9
    prov = loaded["provenance"]
    for key in ("git_commit", "date", "cpu", "cpu_cores", "gpu", "python", "numpy", "torch"):
        assert key in prov
    assert prov["wall_seconds"] == 1.23 and prov["cpu_cores"] >= 1
    assert provenance()["numpy"] == np.__version__


def test_provenance_lists_the_changed_tracked_files(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)  # fmt: skip

    git("init", "-q")
    for name in ("kept.txt", "edited.txt"):
        (tmp_path / name).write_text("v1")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    (tmp_path / "edited.txt").write_text("v2")
    (tmp_path / "untracked.txt").write_text("new")
    monkeypatch.setattr(runlog, "REPO_ROOT", tmp_path)
    prov = provenance()
    assert prov["git_dirty"] is True and prov["git_changed"] == ["edited.txt"]


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "result.json"
    files.write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        files.write_json(path, {"a": float("nan")})
    with pytest.raises(RuntimeError), files.atomic_write(path) as f:
        f.write("partial")
        raise RuntimeError("crash mid-write")
    assert files.read_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_notebook_params_precedence():
    cell = {"QUICK": False, "EPOCHS": 20, "LR": 0.1, "NESTEROV": True, "NAME": "x", "In": [1]}
    assert notebook_params(cell, environ={}) == {"QUICK": False, "EPOCHS": 20, "LR": 0.1,
                                                 "NESTEROV": True, "NAME": "x"}  # fmt: skip
    quick = notebook_params(cell, {"EPOCHS": 1}, environ={"QUICK": "1", "LR": "0.5"})
    assert quick["EPOCHS"] == 1 and quick["LR"] == 0.5 and quick["QUICK"] is True
    env = notebook_params(cell, {"EPOCHS": 1}, environ={"QUICK": "yes", "EPOCHS": "3", "NESTEROV": "0"})
    assert env["EPOCHS"] == 3 and env["NESTEROV"] is False
    with pytest.raises(ValueError, match="EPOCHS='three'"):
        notebook_params(cell, environ={"EPOCHS": "three"})
    with pytest.raises(KeyError, match="STEPS"):
        notebook_params(cell, {"STEPS": 1}, environ={"QUICK": "1"})


def test_output_dir_keeps_quick_runs_apart(tmp_path):
    full, quick = output_dir("cnn-by-myself", False), output_dir("cnn-by-myself", True)
    assert full.name == "cnn-by-myself" and quick != full and "quick" in quick.parts
    assert output_dir("cnn-by-myself", True, str(tmp_path / "o")) == tmp_path / "o"


def test_validation_split_small(synthetic_dir):
    labels = np.repeat(np.arange(10), 20)
    train, val = validation_split(labels, size=50, seed=3)
    assert np.bincount(labels[val]).tolist() == [5] * 10
    assert not set(train) & set(val) and len(train) + len(val) == 200
    splits = load_splits(synthetic_dir, val_size=50, train_size=100, test_size=20)
    assert len(splits.val_labels) == 50 and len(splits.train_labels) == 100
    assert np.bincount(splits.test_labels).tolist() == [2] * 10


def test_the_originals_numbers_are_those_of_its_report():
    """fashion_mnist.original against ORIGINAL_REPORT.md (the team's copy, beside the checkout)."""
    assert original.RESULTS == {"cnn-by-myself": original.NUMPY_TEST_ACC[5000],
                                "cnn-by-pytorch": max(original.TORCH_TEST_ACC)}  # fmt: skip
    summary = REPO_ROOT.parent / "shared" / "ORIGINAL_REPORT.md"
    if not summary.exists():
        pytest.skip(f"{summary} is not here: the team's copy of the original's facts")
    text = " ".join(summary.read_text(encoding="utf-8").split())
    per_epoch = re.search(r"Test accuracy per epoch 1\.\.20: ((?:0\.\d+ ?)+)", text)[1].split()
    assert tuple(float(a) for a in per_epoch) == original.TORCH_TEST_ACC
    per_step = dict(re.findall(r"step(\d+) (0\.\d+)", text))
    assert {int(s): float(a) for s, a in per_step.items()} == original.NUMPY_TEST_ACC
    assert "about 0.6 s per step" in text and "about 50 minutes for 5000 steps" in text
    for _, _, accuracy in original.REFERENCE_POINTS:
        assert f"{accuracy:.3f}" in text
