"""experiments/: the sweeps' command line (sweeps.py), the summaries of their records
(summarise.py) that the PyTorch notebook reads, and the shelf's rule: the reading path never
imports it."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch_cnn
import torch_run

from fashion_mnist import REPO_ROOT
from fashion_mnist.files import read_json
from fashion_mnist.runlog import write_metrics

EXPERIMENTS = REPO_ROOT / "experiments"
sys.path.insert(0, str(EXPERIMENTS))
import summarise  # noqa: E402
import sweeps  # noqa: E402

TINY = dataclasses.replace(torch_cnn.REPRODUCTION, epochs=2, batch_size=32, eval_batch_size=64)


@pytest.fixture(scope="module")
def data():
    from test_torch_cnn import learnable

    return learnable(96, 40, seed=0)


# --- the shelf ---------------------------------------------------------------------------------


def test_the_reading_path_imports_nothing_from_the_shelf():
    shelf = {p.stem for p in EXPERIMENTS.rglob("*.py")}
    for folder in ("cnn-by-myself", "cnn-by-pytorch", "fashion_mnist"):
        for path in (REPO_ROOT / folder).glob("*.py"):
            imports = re.findall(r"^\s*(?:import|from)\s+([\w.]+)", path.read_text(), re.M)
            assert not {name.split(".")[0] for name in imports} & (shelf | {"experiments"}), path


def test_summary_and_readme_are_what_the_records_give():
    """summary.json and README.md (its tables) are written by summarise.py from the records: the
    committed ones must be current (`make -C experiments summary` rewrites them)."""
    assert summarise.main(["--check"]) == 0


def test_the_summary_holds_what_the_notebook_recorded_in_metrics_json():
    """The notebook's metrics.json keeps the summary's structures under the same keys, the ResNet
    record's files relative to the notebook's folder."""
    metrics = read_json(REPO_ROOT / "cnn-by-pytorch" / "metrics.json")
    if "validation" not in metrics["reproduction"]:
        pytest.skip("cnn-by-pytorch/metrics.json was written before runs recorded 'validation' "
                    "(and summary.json its new group keys): rerun `make run`")
    recorded = torch_run.recorded_experiments(EXPERIMENTS / "summary.json",
                                              REPO_ROOT / "cnn-by-pytorch")  # fmt: skip
    for key in torch_run.EXPERIMENT_KEYS:
        assert recorded[key] == metrics[key], key
    for path in [*recorded["resnet"]["figures"].values(), *recorded["resnet"]["logs"].values()]:
        assert (REPO_ROOT / "cnn-by-pytorch" / path).is_file(), path
    assert set(recorded["display"]) == {"seeds_line", "init_table"}


def test_no_summary_means_no_recorded_experiments(tmp_path):
    recorded = torch_run.recorded_experiments(tmp_path / "absent.json", tmp_path)
    assert all(recorded[key] is None for key in torch_run.EXPERIMENT_KEYS)
    assert torch_run.recorded_experiments(None, tmp_path)["seeds"] is None


@pytest.mark.parametrize("target", ["seeds", "ablation", "ablation-full", "numpy-sweep", "resnet", "gpu",
                                    "malloc", "lowering", "robustness", "summary"])
def test_each_experiment_has_a_make_target(target):
    dry = subprocess.run(["make", "-n", "-C", str(EXPERIMENTS), target], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert "../.venv/bin/python" in dry or "gpu_runs.sh" in dry


def test_the_seeds_target_trains_the_reproduction_as_the_original_was():
    dry = subprocess.run(["make", "-n", "-C", str(EXPERIMENTS), "seeds"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert "sweeps.py reproduction --all-data" in dry and "for init in as_marked pytorch" in dry


def test_the_command_line_checks_set_values_as_config_does(capsys):
    with pytest.raises(SystemExit):
        sweeps.main(["reproduction", "--set", "epochs=-5", "--out", "unused"])
    assert "Config.epochs must be a positive integer, got -5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweeps.main(["reproduction", "--epochs", "0", "--out", "unused"])
    assert "Config.epochs must be a positive integer, got 0" in capsys.readouterr().err


def test_markdown_tables_format_accuracies_and_seconds():
    table = summarise.markdown_table([{"a": 0.91234, "b": 203.3, "c": None, "d": "x"}],
                                     ["a", "b", "c", "d"])  # fmt: skip
    assert table.splitlines() == ["| a | b | c | d |", "| --- | --- | --- | --- |",
                                  "| 0.9123 | 203.3 |  | x |"]  # fmt: skip


# --- sweeps.py and summarise.py ----------------------------------------------------------------


def test_override_reads_each_value_as_its_fields_type():
    config = sweeps.override(
        torch_cnn.IMPROVED, ["cutmix=0.5", "hflip=false", "epochs=3", "optimizer=sgd"]
    )
    assert (config.cutmix, config.hflip, config.epochs, config.optimizer) == (0.5, False, 3, "sgd")
    assert sweeps.override(torch_cnn.IMPROVED, []) == torch_cnn.IMPROVED
    assert sweeps.override(torch_cnn.IMPROVED, ["init=as_marked"]).init == "as_marked"
    for bad, message in [("nope=1", "NAME one of"), ("epochs", "NAME=VALUE"),
                         ("epochs=x", "takes int values"), ("hflip=maybe", "true or false"),
                         ("optimizer=lbfgs", "Config.optimizer must be one of"),
                         ("init=he_xavier", "Config.init must be one of"),
                         ("hold_out_validation=false", "NAME one of")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            sweeps.override(torch_cnn.IMPROVED, [bad])


def _write_epoch_log(out, name, val_accs, test_accs):
    from fashion_mnist.runlog import RunLog

    with RunLog(out / "logs", name, kind="epoch") as log:
        for epoch, (val, test) in enumerate(zip(val_accs, test_accs, strict=True), start=1):
            log.append(epoch=epoch, epochs=len(val_accs), train_loss=1.0 / epoch, train_acc=val,
                       val_loss=1.1 / epoch, val_acc=val, test_loss=1.2 / epoch, test_acc=test,
                       lr=0.1, seconds=2.5)  # fmt: skip


def test_record_from_log_selects_on_validation(tmp_path):
    config = dataclasses.replace(torch_cnn.REPRODUCTION, epochs=3)
    _write_epoch_log(tmp_path, "cut_off", [0.80, 0.85, 0.85], [0.79, 0.83, 0.86])
    record = sweeps.record_from_log("cut_off", config, tmp_path, 1000, "Fake GPU")
    assert (record["selected_epoch"], record["val_accuracy"], record["test_accuracy"]) == (2, 0.85, 0.83)
    assert record["params"] == 1_630_282 and record["hardware"] == "Fake GPU"
    assert record["train_seconds"] == 7.5 and record["images_per_second"] == 400.0
    assert record["recorded_from_log"] and record["test_report"] is None
    assert record["provenance"] is None and record["recorded_by"]["git_commit"] is not None
    assert (tmp_path / record["figures"]["curves"]).is_file()
    written = write_metrics(tmp_path / "cut_off.json", record)
    assert written["provenance"] is None  # the training's is unknown: not the recorder's
    with pytest.raises(ValueError, match=r"cut_off\.csv.*does not reach epoch 5.*last epoch: 3"):
        sweeps.record_from_log("cut_off", dataclasses.replace(config, epochs=5), tmp_path, 1000,
                                  "Fake GPU")  # fmt: skip
    with pytest.raises(ValueError, match=r"cut_off\.run\.json is missing: name the hardware"):
        sweeps.record_from_log("cut_off", config, tmp_path, 1000)


def test_record_from_log_uses_and_checks_the_runs_header(tmp_path):
    config = dataclasses.replace(torch_cnn.REPRODUCTION, epochs=3)
    _write_epoch_log(tmp_path, "cut_off", [0.80, 0.85, 0.84], [0.79, 0.83, 0.86])
    header = {"config": dataclasses.asdict(config), "hardware": "Fake GPU 2",
              "provenance": {"git_commit": "abc", "gpu": "Fake GPU 2"}}  # fmt: skip
    (tmp_path / "logs" / "cut_off.run.json").write_text(json.dumps(header))
    record = sweeps.record_from_log("cut_off", config, tmp_path, 1000)
    assert record["hardware"] == "Fake GPU 2" and record["provenance"] == header["provenance"]
    other = dataclasses.replace(config, translate=2)
    with pytest.raises(ValueError, match=r"another configuration \(translate=0\)"):
        sweeps.record_from_log("cut_off", other, tmp_path, 1000)
    # a header written before Config had `deterministic`, with another evaluation batch size
    old_config = {k: v for k, v in header["config"].items() if k != "deterministic"}
    header["config"] = {**old_config, "eval_batch_size": 1000}
    (tmp_path / "logs" / "cut_off.run.json").write_text(json.dumps(header))
    assert sweeps.record_from_log("cut_off", config, tmp_path, 1000)["hardware"] == "Fake GPU 2"
    with pytest.raises(ValueError, match=r"cut_off\.run\.json: the run was trained with "
                       r"validation=True; pass --all-data exactly when it was False"):  # fmt: skip
        sweeps.record_from_log("cut_off", config, tmp_path, 1000, validation=False)
    # a header of a Config since changed: its fields as recorded, named in the error
    header["config"] = {**old_config, "init": "he_xavier", "hold_out_validation": True}
    (tmp_path / "logs" / "cut_off.run.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match=r"another configuration \(init=he_xavier, "
                       r"hold_out_validation=True\)"):  # fmt: skip
        sweeps.record_from_log("cut_off", config, tmp_path, 1000)


def test_a_run_writes_its_header_first(tmp_path, data):
    from fashion_mnist.data import Splits

    images, labels, val_images, val_labels = data
    splits = Splits(images, labels, val_images, val_labels, val_images, val_labels)
    record = torch_run.run("tiny", TINY, splits, tmp_path, device="cpu")
    header = json.loads((tmp_path / "logs" / "tiny.run.json").read_text())
    assert header["config"] == record["config"] and header["provenance"]["git_commit"]
    assert header["validation"] is record["validation"] is True
    # the header and the log make the same record, short of the checkpoint's evaluation
    again = sweeps.record_from_log("tiny", TINY, tmp_path, len(labels))
    assert (again["selected_epoch"], again["val_accuracy"]) == (
        record["selected_epoch"], record["val_accuracy"]
    )
    assert abs(again["test_accuracy"] - record["test_accuracy"]) < 1e-9  # CPU: same arithmetic


def test_a_run_without_validation_trains_on_all_images_and_keeps_the_last_epoch(
    tmp_path, data, monkeypatch
):
    from fashion_mnist.data import Splits

    images, labels, val_images, val_labels = data
    splits = Splits(images, labels, val_images, val_labels, val_images[:20], val_labels[:20])
    config = TINY
    trained_on, train = [], torch_cnn.train

    def spy(config, train_images, train_labels, val_images, *args, **kwargs):
        trained_on.append((train_labels.tolist(), val_images))
        return train(config, train_images, train_labels, val_images, *args, **kwargs)

    monkeypatch.setattr(torch_cnn, "train", spy)
    record = torch_run.run("all", config, splits, tmp_path, validation=False, device="cpu")
    assert trained_on == [(labels.tolist() + val_labels.tolist(), None)]
    assert record["validation"] is False
    assert all(e["val_acc"] is None and e["test_acc"] is not None for e in record["epochs"])
    assert (record["selected_epoch"], record["val_accuracy"]) == (config.epochs, None)
    assert record["checkpoint"].endswith(f"model_epoch{config.epochs}.pt")
    assert torch_run.epoch_table(record)["selected"].iloc[-1] == "<- the last"
    log = (tmp_path / "logs" / "all.log").read_text()
    assert "Test Loss" in log and "Val" not in log
    again = sweeps.record_from_log("all", config, tmp_path, len(labels) + len(val_labels),
                                   validation=False)  # fmt: skip
    assert (again["selected_epoch"], again["test_accuracy"]) == (config.epochs, record["test_accuracy"])
    assert again["validation"] is False
    assert "Ours, the last epoch: " in torch_run.versus_original(record)


def test_recorded_runs_describe_each_run_by_its_closest_preset(tmp_path):
    assert summarise.recorded_runs(tmp_path) is None
    runs = {"a_repro": torch_cnn.REPRODUCTION,
            # the evaluation batch size changes speed only: not a difference worth naming
            "b_cutmix": dataclasses.replace(torch_cnn.IMPROVED, cutmix=0.5, eval_batch_size=1000),
            "c_resnet30": dataclasses.replace(torch_cnn.RESNET, epochs=30, ema=0.0),
            # recorded before Config.init (He/Xavier everywhere) and with hold_out_validation
            "d_legacy": {**{k: v for k, v in dataclasses.asdict(torch_cnn.REPRODUCTION).items()
                            if k != "init"}, "hold_out_validation": False}}  # fmt: skip
    for name, config in runs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "name": name, "epochs": [{}, {}],
            "config": config if isinstance(config, dict) else dataclasses.asdict(config),
            "selected_epoch": 2, "val_accuracy": 0.9, "test_accuracy": 0.89,
            "train_seconds": 12.0, "hardware": "Fake GPU",
        }))  # fmt: skip
    rows = summarise.recorded_runs(tmp_path)["rows"]
    assert [r["description"] for r in rows] == [
        "reproduction", "improved with cutmix=0.5", "resnet with epochs=30, ema=0.0",
        "reproduction with init=he_xavier, validation=False",
    ]
    assert rows[1]["epochs"] == 2 and rows[1]["test_accuracy"] == 0.89


def seed_record(name, seed, test_accs, selected, validation=True, legacy=None, **changes):
    """A recorded 4-epoch reproduction run, as much of it as the seed summaries read. ``legacy``:
    as recorded before the run chose its validation (``hold_out_validation`` in the config), with
    these config fields (e.g. an init Config no longer takes)."""
    config = dataclasses.asdict(dataclasses.replace(torch_cnn.REPRODUCTION,
                                                    **{"epochs": 4, "seed": seed, **changes}))  # fmt: skip
    epochs = [{"epoch": e, "train_loss": 1 - t, "train_acc": t, "test_acc": t}
              for e, t in enumerate(test_accs, start=1)]  # fmt: skip
    record = {"name": name, "config": config, "epochs": epochs, "selected_epoch": selected,
              "val_accuracy": 0.9 if validation else None, "test_accuracy": test_accs[selected - 1],
              "hardware": "Fake CPU"}  # fmt: skip
    if legacy is not None:
        return {**record, "config": {**config, **legacy, "hold_out_validation": validation}}
    return {**record, "validation": validation}


def test_the_reproduction_over_seeds(tmp_path):
    main = seed_record("reproduction", 0, [0.80, 0.84, 0.90, 0.86], selected=3)
    assert summarise.over_seeds(main, tmp_path) is None  # nothing recorded: nothing to compare
    for name, seed, accs, changes in [
        ("r_seed1", 1, [0.80, 0.84, 0.88, 0.90], {}),
        ("r_seed2", 2, [0.80, 0.84, 0.86, 0.86], {"eval_batch_size": 64}),  # speed only: kept
        ("r_lr", 3, [0.5] * 4, {"lr": 0.01}),
        ("r_seed0", 0, [0.5] * 4, {}),
    ]:  # fmt: skip
        (tmp_path / f"{name}.json").write_text(json.dumps(seed_record(name, seed, accs, 4, **changes)))
    seeds = summarise.over_seeds(main, tmp_path)
    json.dumps(seeds)  # saved in metrics.json for the report
    table = pd.DataFrame(seeds["rows"]).set_index("seed")
    assert table.index.tolist() == [0, 1, 2]
    assert table["test_accuracy"].tolist() == [0.90, 0.90, 0.86]
    assert table["mean_test_acc_later_half"].round(4).tolist() == [0.88, 0.89, 0.86]
    line = summarise.seeds_line(seeds)
    # test accuracy: mean 0.88667, sample standard deviation 0.02309
    assert line.startswith("Over 3 seeds (0, 1, 2), mean ± standard deviation: test accuracy at "
                           "the validation-selected epoch 88.67% ± 2.31% (from 86.00% to 90.00%); "
                           "mean test accuracy over epochs 3-4 87.67% ± 1.53%.")  # fmt: skip
    assert line.endswith(" Left out: r_seed0.json (seed 0 again).")  # r_lr: another experiment
    # trained as the original was: beside the runs trained so (as recorded before the run chose
    # its validation, too), the last epoch kept
    last = seed_record("reproduction", 0, [0.80, 0.84, 0.90, 0.86], 4, validation=False)
    for seed, changes in [(1, {"legacy": {}}), (2, {"init": "pytorch"})]:
        (tmp_path / f"all_seed{seed}.json").write_text(json.dumps(seed_record(
            f"all_seed{seed}", seed, [0.8, 0.9, 0.9, 0.88], 4, validation=False, **changes)))
    seeds = summarise.over_seeds(last, tmp_path)
    assert [r["name"] for r in seeds["rows"]] == ["reproduction", "all_seed1"]  # seed 2: pytorch
    assert seeds["validation"] is False
    assert "test accuracy at the last epoch 87.00%" in summarise.seeds_line(seeds)


def test_seeds_by_init_groups_runs_trained_alike_but_for_the_seed(tmp_path):
    assert summarise.seeds_by_init(tmp_path) is None
    for name, seed, accs, changes in [  # he_xavier: as recorded before it went from Config
        ("he_seed0", 0, [0.80, 0.84, 0.90, 0.86], {"legacy": {"init": "he_xavier"}}),
        ("he_seed1", 1, [0.80, 0.84, 0.88, 0.90], {"legacy": {"init": "he_xavier"}}),
        ("pt_seed0", 0, [0.80, 0.86, 0.92, 0.92], {"init": "pytorch"}),
        ("pt_seed1", 1, [0.80, 0.86, 0.90, 0.94], {"init": "pytorch"}),
        ("pt_seed1_again", 1, [0.5] * 4, {"init": "pytorch"}),
        ("lr_seed0", 0, [0.5] * 4, {"lr": 0.01}),  # alone in its group: no spread to show
    ]:  # fmt: skip
        (tmp_path / f"{name}.json").write_text(json.dumps(seed_record(name, seed, accs, 3, **changes)))
    by_init = summarise.seeds_by_init(tmp_path)
    json.dumps(by_init)  # saved in metrics.json for the report
    he, pt = by_init["groups"]
    assert (he["init"], he["description"]) == ("he_xavier", "init=he_xavier, epochs=4")
    assert (pt["init"], pt["description"]) == ("pytorch", "init=pytorch, epochs=4")
    assert by_init["left_out"] == ["pt_seed1_again.json (seed 1 again)",
                                   "lr_seed0.json (no other seed trained alike)"]  # fmt: skip
    assert [r["name"] for r in pt["rows"]] == ["pt_seed0", "pt_seed1"]
    assert pt["test_accuracy"]["mean"] == pytest.approx(0.91)  # epoch 3 of each
    assert pt["later_half"]["mean"] == pytest.approx((0.92 + 0.92 + 0.90 + 0.94) / 4)
    assert he["test_accuracy"]["std"] == pytest.approx(np.std([0.90, 0.88], ddof=1))
    assert pt["epoch_1"] == pytest.approx({"train_loss": 0.2, "train_acc": 0.8, "test_acc": 0.8})
    # a second folder: runs on all the training images, kept at their last epoch
    (tmp_path / "all").mkdir()
    for seed, accs in [(0, [0.82, 0.86, 0.90, 0.92]), (1, [0.82, 0.86, 0.92, 0.94])]:
        (tmp_path / "all" / f"all_seed{seed}.json").write_text(json.dumps(seed_record(
            f"all_seed{seed}", seed, accs, 4, init="pytorch", validation=False)))  # fmt: skip
    by_init = summarise.seeds_by_init(tmp_path, tmp_path / "all")
    assert by_init["folders"] == [tmp_path.name, "all"] and len(by_init["left_out"]) == 2
    all_data = by_init["groups"][2]
    assert all_data["description"] == "init=pytorch, epochs=4, validation=False"
    assert [g["validation"] for g in by_init["groups"]] == [True, True, False]
    assert all_data["test_accuracy"]["mean"] == pytest.approx(0.93)  # epoch 4 of each
    table = pd.DataFrame(summarise.init_rows(by_init)).set_index("trained as")  # and the original
    assert table.index.tolist() == [he["description"], pt["description"], all_data["description"],
                                    "the original: one run, selected on test"]  # fmt: skip
    assert table["init"].tolist()[:3] == ["he_xavier", "pytorch", "pytorch"]
    assert table["hardware"].tolist()[:3] == ["Fake CPU"] * 3
    assert table["epoch 1 train_loss"].tolist() == pytest.approx([0.2, 0.2, 0.18, 0.4571])
    assert table["mean test_acc, epochs 3-4"].iloc[-1] == pytest.approx((0.9011 + 0.9083) / 2)
    assert table["test_acc (selected)"].iloc[-1] == 0.93  # the original's, selected on test
    (tmp_path / "long_seed0.json").write_text(json.dumps(seed_record("long_seed0", 0, [0.5] * 4, 3,
                                                                     epochs=5, lr=0.1)))  # fmt: skip
    (tmp_path / "long_seed1.json").write_text(json.dumps(seed_record("long_seed1", 1, [0.5] * 4, 3,
                                                                     epochs=5, lr=0.1)))  # fmt: skip
    left_out = summarise.seeds_by_init(tmp_path)["left_out"]
    assert "long_seed0.json (5 epochs, not 4)" in left_out  # its later half differs
