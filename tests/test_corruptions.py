"""fashion_mnist.corruptions: deterministic, shaped like the data, stronger with severity."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_mnist import corruptions as C
from fashion_mnist.data import load_mnist

ALL = C.all_corruptions()


def garments(n: int = 64, seed: int = 0) -> np.ndarray:
    """Synthetic stand-ins for Fashion-MNIST: light rectangles of random size, place and shade
    on black, off centre (so that rotating, scaling and shifting all move something)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for image in images:
        top, left = rng.integers(2, 10, size=2)
        bottom, right = top + rng.integers(8, 17), left + rng.integers(5, 17)
        image[top:bottom, left:right] = rng.integers(120, 256)
        image[top + 2:bottom - 2:3, left:right] //= 2  # stripes: texture for blur and noise
    return images.reshape(n, 784)


def test_every_corruption_has_three_severities_but_hflip_one():
    assert len(C.CORRUPTIONS) == 10
    assert {name: C.severities(name) for name in C.CORRUPTIONS} == {
        name: (1,) if name == "hflip" else (1, 2, 3) for name in C.CORRUPTIONS}
    assert len(ALL) == 28


@pytest.mark.parametrize(("name", "severity"), ALL)
def test_shape_dtype_and_determinism(name, severity):
    x = garments()
    out = C.corrupt(x, name, severity)
    assert out.dtype == np.uint8 and out.shape == x.shape
    assert np.array_equal(out, C.corrupt(x, name, severity))  # same seed, same images
    assert not np.array_equal(out, x)
    assert np.array_equal(x, garments())  # the input is not modified


@pytest.mark.parametrize("name", [n for n in C.CORRUPTIONS if n != "hflip"])
def test_seeded_per_corruption_and_severity_not_by_order(name):
    x = garments()
    C.corrupt(x, "gaussian_noise", 2)  # something else first: must not matter
    first = C.corrupt(x, name, 2, seed=0)
    C.corrupt(x, "occlusion", 3)
    assert np.array_equal(first, C.corrupt(x, name, 2, seed=0))
    if name in ("gaussian_noise", "shot_noise", "rotate", "shift", "occlusion"):  # random ones
        assert not np.array_equal(first, C.corrupt(x, name, 2, seed=1))
    # each image is corrupted on its own: a subset gives the same images, bar the random draws
    if name in ("gaussian_blur", "scale", "contrast", "brightness"):
        assert np.array_equal(C.corrupt(x[:7], name, 2), first[:7])


@pytest.mark.parametrize("name", [n for n in C.CORRUPTIONS if n != "hflip"])
def test_severity_moves_further_from_the_clean_images(name):
    x = garments(200)
    distance = [np.abs(C.corrupt(x, name, s).astype(int) - x).mean() for s in (0, 1, 2, 3)]
    assert distance[0] == 0
    assert distance[1] > 0 and distance[1] < distance[2] < distance[3]


def test_hflip_is_an_exact_mirror_and_its_own_inverse():
    x = garments()
    out = C.corrupt(x, "hflip", 1)
    assert np.array_equal(out.reshape(-1, 28, 28), x.reshape(-1, 28, 28)[:, :, ::-1])
    assert np.array_equal(C.corrupt(out, "hflip", 1), x)


@pytest.mark.parametrize("name", C.CORRUPTIONS)
def test_severity_zero_is_the_clean_copy(name):
    x = garments()
    out = C.corrupt(x, name, 0)
    assert np.array_equal(out, x) and out is not x


def test_geometry_moves_the_garment_as_described():
    x = np.zeros((1, 28, 28), np.uint8)
    x[0, 10:18, 10:18] = 200
    x = x.reshape(1, 784)
    shifted = C.corrupt(x, "shift", 3).reshape(28, 28).astype(float)
    rows, cols = np.nonzero(shifted)
    centre = np.average(np.stack([rows, cols], 1), axis=0, weights=shifted[rows, cols])
    assert np.linalg.norm(centre - 13.5) == pytest.approx(6, abs=0.3)  # moved the 6 px asked
    small = C.corrupt(x, "scale", 3).reshape(28, 28)
    assert 3 <= np.count_nonzero(small.max(axis=0) > 100) <= 5  # 8 px * 0.55 = 4.4
    occluded = C.corrupt(np.full((50, 784), 255, np.uint8), "occlusion", 1)
    assert np.all(np.count_nonzero(occluded < 255, axis=1) == 36)  # one 6x6 square each


def test_bad_arguments_are_refused():
    x = garments(4)
    with pytest.raises(ValueError, match="unknown corruption"):
        C.corrupt(x, "fog", 1)
    with pytest.raises(ValueError, match="severities"):
        C.corrupt(x, "hflip", 2)
    with pytest.raises(ValueError, match="severities"):
        C.corrupt(x, "rotate", 4)
    with pytest.raises(ValueError, match="uint8"):
        C.corrupt(x.astype(np.float32), "rotate", 1)


@pytest.mark.real_data
def test_real_images_get_worse_with_severity(real_data_dir):
    x, _ = load_mnist(real_data_dir, "t10k")
    x = x[:500]
    for name in C.CORRUPTIONS:
        distance = [np.abs(C.corrupt(x, name, s).astype(int) - x).mean() for s in C.severities(name)]
        assert distance == sorted(distance) and distance[0] > 1, name


# --- experiments/robustness/run.py ------------------------------------------------------------


def _robustness_script():
    import importlib.util

    from fashion_mnist import REPO_ROOT

    path = REPO_ROOT / "experiments" / "robustness" / "run.py"
    spec = importlib.util.spec_from_file_location("robustness_run", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def run_dir(tmp_path):
    """A run folder: a tiny NumPy tuned checkpoint; its reproduction recorded but deleted; a
    PyTorch metrics.json with only a ResNet recorded from its log (no checkpoint)."""
    import numpy_cnn as nc

    from fashion_mnist.files import write_json

    folder = tmp_path / "cnn-by-myself"
    images = np.random.default_rng(0).integers(0, 256, (64, 784), dtype=np.uint8)
    nc.train(nc.build_lenet(), nc.TrainConfig(steps=2, batch_size=32, checkpoint_every=2),
             images, np.arange(64) % 10, folder / "checkpoints" / "tuned")  # fmt: skip
    write_json(folder / "metrics.json", {
        "checkpoint": "checkpoints/tuned/model_step2.npz", "test_accuracy": 0.1,
        "reproduction": {"checkpoint": "checkpoints/reproduction/model_step5000.npz"}})
    write_json(tmp_path / "cnn-by-pytorch" / "metrics.json",
               {"resnet": {"checkpoint": None, "test_accuracy": 0.95}})  # fmt: skip
    return tmp_path


def test_available_models_says_why_each_other_one_is_left_out(run_dir):
    models, left_out = _robustness_script().available_models(run_dir, None)
    assert list(models) == ["numpy_tuned"] and models["numpy_tuned"].test_accuracy == 0.1
    reasons = {item["model"]: item["reason"] for item in left_out}
    assert "model_step5000.npz not found" in reasons["numpy_reproduction"]
    assert "without a checkpoint" in reasons["pytorch_resnet"]
    assert "not recorded" in reasons["pytorch_improved"]
    assert set(reasons) == {"numpy_reproduction", "pytorch_reproduction", "pytorch_improved",
                            "pytorch_resnet"}  # fmt: skip


def test_no_model_exits_2(tmp_path, capsys):
    assert _robustness_script().main(["--run-dir", str(tmp_path), "--out",
                                      str(tmp_path / "r.json")]) == 2  # fmt: skip
    assert "make run" in capsys.readouterr().err and not (tmp_path / "r.json").exists()


@pytest.mark.real_data
def test_record_figure_and_table(run_dir, real_data_dir, tmp_path, monkeypatch):
    script = _robustness_script()
    monkeypatch.setattr(script, "ensure_dataset", lambda folder: folder)  # a read-only copy
    out = tmp_path / "out" / "robustness.json"
    assert script.main(["--run-dir", str(run_dir), "--data", str(real_data_dir), "--limit", "40",
                        "--out", str(out)]) == 0  # fmt: skip
    import json

    record = json.loads(out.read_text())
    assert record["test_images"] == 40 and list(record["models"]) == ["numpy_tuned"]
    assert len(record["rows"]) == 28 and {r["model"] for r in record["rows"]} == {"numpy_tuned"}
    assert 0 <= record["models"]["numpy_tuned"]["clean_accuracy"] <= 1
    assert record["provenance"]["git_commit"] and record["provenance"]["cpu"]
    assert out.with_suffix(".png").stat().st_size > 10_000
    table = C.robustness_table(record)
    assert table.shape == (30, 1) and table.columns.tolist() == ["NumPy tuned"]
    assert table.index[0] == ("clean", 0) and table.index[-1][0] == "mean corrupted"
    accuracies = [r["accuracy"] for r in record["rows"]]
    assert table.iloc[-1, 0] == pytest.approx(np.mean(accuracies))


def test_robustness_table_layout():
    record = {"models": {"a": {"label": "A", "clean_accuracy": 0.9},
                         "b": {"label": "B", "clean_accuracy": 0.8}},
              "rows": [{"model": m, "corruption": c, "severity": s, "accuracy": 0.5 - 0.1 * s}
                       for c, s in ALL for m in "ab"]}  # fmt: skip
    table = C.robustness_table(record)
    assert table.columns.tolist() == ["A", "B"]
    assert table.index.tolist()[:4] == [("clean", 0), ("gaussian_noise", 1),
                                        ("gaussian_noise", 2), ("gaussian_noise", 3)]  # fmt: skip
    assert table.loc[("clean", 0)].tolist() == [0.9, 0.8]
    assert table.loc[("rotate", 3), "B"] == pytest.approx(0.2)
    assert ("hflip", 1) in table.index and ("hflip", 2) not in table.index
