"""experiments/numpy_sweep/run.py: its variants are well formed, a tiny sweep writes a valid
record, and the committed README is what the committed record gives."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import sys

import numpy_cnn as cnn
import pytest

from fashion_mnist import REPO_ROOT
from fashion_mnist.files import read_json

HERE = REPO_ROOT / "experiments" / "numpy_sweep"


def _load_script():
    spec = importlib.util.spec_from_file_location("numpy_sweep_run", HERE / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


sweep = _load_script()
FIELDS = {f.name for f in dataclasses.fields(cnn.TrainConfig)}


def _differences(a: cnn.TrainConfig, b: cnn.TrainConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(b).items() if dataclasses.asdict(a)[k] != v}


# --- the variants --------------------------------------------------------------------------------


def test_every_variant_changes_trainconfig_fields_of_an_earlier_run():
    names = [v.name for v in sweep.VARIANTS]
    assert len(names) == len(set(names)) and 12 <= len(names) <= 16
    configs = sweep.configs(sweep.VARIANTS)
    for i, v in enumerate(sweep.VARIANTS):
        assert set(v.changes) <= FIELDS, v.name
        assert v.base is None or v.base in names[:i], v.name
        base = cnn.ORIGINAL if v.base is None else configs[v.base]
        assert _differences(base, configs[v.name]) == v.changes, v.name  # each change changes
        assert v.group in ("staircase", sweep.AROUND), v.name


def test_the_staircase_goes_from_original_to_the_7000_step_recipe_one_ingredient_at_a_time():
    configs = sweep.configs(sweep.VARIANTS)
    stairs = [v for v in sweep.VARIANTS if v.group == "staircase"]
    assert configs[stairs[0].name] == cnn.ORIGINAL and stairs[0].changes == {}
    assert stairs[-1].name == "+translate" and stairs[-1].changes == {"translate": 1}
    assert configs["+translate"] == sweep.RECIPE == dataclasses.replace(cnn.TUNED, steps=7000)
    for before, after in itertools.pairwise(stairs):
        assert after.base == before.name and len(after.changes) == 1, after.name
    around = [v for v in sweep.VARIANTS if v.group == sweep.AROUND]
    assert around and all(v.base == "+translate" and len(v.changes) == 1 for v in around)
    assert configs["steps_10000"] == cnn.TUNED  # the sweep's choice is the default


def test_configs_name_the_variant_that_is_wrong():
    V = sweep.Variant
    with pytest.raises(ValueError, match="'x': \\['lr_typo'\\] are not TrainConfig fields"):
        sweep.configs([V("x", None, {"lr_typo": 0.1}, "staircase")])
    with pytest.raises(ValueError, match="'x': base 'later' is not an earlier variant"):
        sweep.configs([V("x", "later", {}, "staircase"), V("later", None, {}, "staircase")])
    with pytest.raises(ValueError, match="TrainConfig.lr must be a finite number > 0"):
        sweep.configs([V("x", None, {"lr": -1.0}, "staircase")])


def test_the_recipe_is_chosen_on_validation_within_the_budget_in_images():
    """The budget counts images at the sweep's best throughput, not a loaded machine's seconds."""
    def run(name, val, steps, images_per_second, config=None):
        config = config or {"steps": steps, "batch_size": 100}
        return {"name": name, "val_accuracy": val, "images_per_second": images_per_second,
                "config": config}  # fmt: skip

    tuned = dataclasses.asdict(cnn.TUNED)  # 10,000 x 128 images
    runs = [run("tuned", 0.92, None, 10_000, tuned), run("same", 0.92, 5_000, 2_000),
            run("slow", 0.95, 20_000, 3_000)]  # fmt: skip
    assert sweep.choose(runs) == {"name": "tuned", "budget_seconds": 180,
                                  "images_per_second": 10_000, "estimated_seconds": 128.0,
                                  "is_tuned_default": True}  # ties: the earlier run
    assert sweep.choose(runs[1:])["is_tuned_default"] is False
    assert sweep.choose(runs, budget=200)["name"] == "slow"  # 2,000,000 images in 200 s
    with pytest.raises(ValueError, match="no run fits in 10 s at 10,000 images/s"):
        sweep.choose(runs, budget=10)


# --- a tiny sweep -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_sweep_writes_a_valid_record(synthetic_dir, tmp_path, monkeypatch):
    """Today's variants with a thousandth of their steps, from a 5-step ORIGINAL, on 150 images."""
    def tiny(variant):
        changes = {k: max(v // 1000, 2) if k == "steps" else v for k, v in variant.changes.items()}
        return dataclasses.replace(variant, changes=changes)

    monkeypatch.setattr(cnn, "ORIGINAL", dataclasses.replace(cnn.ORIGINAL, steps=5,
                                                             checkpoint_every=2))  # fmt: skip
    monkeypatch.setattr(sweep, "VARIANTS", [tiny(v) for v in sweep.VARIANTS])
    monkeypatch.setattr(sweep, "ensure_dataset", lambda folder: folder)  # not the real files
    out = tmp_path / "sweep" / "numpy_sweep.json"
    assert sweep.main(["--data", str(synthetic_dir), "--val-size", "50", "--out", str(out)]) == 0
    record = read_json(out)
    assert record["images"] == {"train": 150, "validation": 50, "test": 50}
    assert record["blas_threads"] == 1 and record["provenance"]["git_commit"]
    assert len(record["load_average_at_start"]) == 3 and record["hardware"]
    assert [run["name"] for run in record["runs"]] == [v.name for v in sweep.VARIANTS]
    for run in record["runs"]:
        steps = run["config"]["steps"]
        assert [c["step"] for c in run["checkpoints"]] == [*range(2, steps, 2), steps]
        best = max(run["checkpoints"], key=lambda c: c["val_accuracy"])  # first of equals
        assert (run["selected_step"], run["val_accuracy"], run["test_accuracy"]) == (
            best["step"], best["val_accuracy"], best["test_accuracy"])
        assert run["train_seconds"] >= 0 and len(run["load_average"]) == 2
    by_name = {run["name"]: run["config"] for run in record["runs"]}
    assert by_name["+translate"]["steps"] == 7 and by_name["lr_0.2"]["lr"] == 0.2
    assert record["chosen"] == sweep.choose(record["runs"])
    assert out.with_suffix(".png").stat().st_size > 0
    readme = (out.parent / "README.md").read_text(encoding="utf-8")
    assert "| no_nesterov | nesterov False |" in readme


# --- the committed record -----------------------------------------------------------------------


def test_the_committed_record_is_the_sweep_of_today_s_variants():
    record = read_json(HERE / "numpy_sweep.json")
    configs = sweep.configs(sweep.VARIANTS)
    assert [run["name"] for run in record["runs"]] == list(configs)
    for run, variant in zip(record["runs"], sweep.VARIANTS, strict=True):
        assert (run["base"], run["changes"], run["group"]) == (
            variant.base, variant.changes, variant.group)
        assert run["config"] == dataclasses.asdict(configs[variant.name]), variant.name
    assert record["blas_threads"] == 1 and record["images"]["validation"] == 5000
    assert record["chosen"] == sweep.choose(record["runs"])
    assert record["question"] == sweep.QUESTION


def test_the_committed_record_s_choice_is_training_tuned():
    """The sweep chose on validation within the budget; that recipe is the committed TUNED."""
    record = read_json(HERE / "numpy_sweep.json")
    chosen = next(run for run in record["runs"] if run["name"] == record["chosen"]["name"])
    assert chosen["config"] == dataclasses.asdict(cnn.TUNED)
    assert record["chosen"]["is_tuned_default"] is True
    assert chosen["val_accuracy"] == max(run["val_accuracy"] for run in record["runs"])
    assert record["runs"][0]["config"] == dataclasses.asdict(cnn.ORIGINAL)
    assert "renamed" in record["note"] and record["provenance"]["git_commit"][:7] in record["note"]


def test_the_committed_readme_is_what_the_record_gives():
    """README.md is rendered from README.md.j2 and numpy_sweep.json (run.py --readme)."""
    made = sweep.readme(read_json(HERE / "numpy_sweep.json"))
    assert (HERE / "README.md").read_text(encoding="utf-8") == made
