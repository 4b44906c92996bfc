"""PyTorch runs end to end, as the notebook runs them: one configuration, the ablation, the ensemble.

``run`` trains with the per-epoch log, selects the epoch with the best validation accuracy, or
keeps the last when the configuration holds out no validation (the test set is only reported),
evaluates it on test, draws its figures and returns the run's record
for ``metrics.json``. From the command line (in this folder) it trains one preset or the
ablation on the full data and records the result, which the notebook then reads:

    python torch_run.py ablation      # make ablation: writes ablation.json (about 30 min on 2 cores)
    python torch_run.py resnet        # make resnet, on a GPU: writes resnet.json
    python torch_run.py improved --epochs 1 --out /tmp/try   # any preset, e.g. to time an epoch
    python torch_run.py improved --set cutmix=0.5 --name improved_cutmix   # a variant of a preset
    python torch_run.py resnet --from-log    # record a run whose end was cut off, from its log

On a CPU shared with other jobs, ``OMP_WAIT_POLICY=PASSIVE`` stops PyTorch's threads from
spin-waiting, which otherwise makes every step several times slower.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import torch_cnn

from fashion_mnist import original, plots
from fashion_mnist.data import DEFAULT_DIR, Splits, ensure_dataset, load_splits
from fashion_mnist.files import read_json, write_json
from fashion_mnist.results import (
    import_model_module,
    relative,
    soft_vote,
    test_evaluation,
)
from fashion_mnist.runlog import (
    EPOCH_FIELDS,
    RunLog,
    hardware,
    provenance,
    read_csv,
    write_metrics,
)

HERE = Path(__file__).resolve().parent
PRESETS = {"reproduction": torch_cnn.REPRODUCTION, "improved": torch_cnn.IMPROVED,
           "resnet": torch_cnn.RESNET}  # fmt: skip


def run(name: str, config: torch_cnn.Config, splits: Splits, out: Path, resume: bool = False,
        device=None, title: str = "") -> dict:  # fmt: skip
    """Train ``config`` into ``out`` (logs/, runs/NAME/checkpoints/, figures/); describe the run.

    Without ``resume`` the run starts afresh, replacing this run's earlier checkpoints.
    """
    title = title or name
    run_dir = out / "runs" / name
    if not resume:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    # What was trained, where and from which code, written first: if the end is cut off, the
    # per-epoch log and this header still make a record (record_from_log).
    write_json(_header_path(out, name), {"config": dataclasses.asdict(config), "hardware": hardware(),
                                         "provenance": provenance()})  # fmt: skip
    latest = torch_cnn.latest_checkpoint(run_dir)
    start = torch_cnn.checkpoint_epoch(latest) if latest else 0
    train_images, train_labels, val_images, val_labels = training_sets(config, splits)
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
    probabilities = torch_cnn.predict_proba(model, splits.test_images, tta_flip=config.tta_flip)
    report, figures = test_evaluation(name, probabilities, splits, out, title)
    described = _from_history(name, title, config, model, result["history"], len(train_labels),
                              out)  # fmt: skip
    return {
        **described,
        "checkpoint": relative(checkpoint, out),
        "test_accuracy": report["accuracy"],
        "hardware": hardware(),
        "test_report": report,
        "figures": {**figures, **described["figures"]},
    }


def training_sets(config: torch_cnn.Config, splits: Splits):
    """(train images, train labels, validation images, validation labels) for ``config``: the
    splits as they are, or, when it holds out no validation, all of the training images (the
    original's 60,000) and None for validation."""
    if config.hold_out_validation:
        return splits.train_images, splits.train_labels, splits.val_images, splits.val_labels
    return (np.concatenate([splits.train_images, splits.val_images]),
            np.concatenate([splits.train_labels, splits.val_labels]), None, None)  # fmt: skip


def _from_history(name: str, title: str, config: torch_cnn.Config, model, history: list[dict],
                  n_train: int, out: Path) -> dict:  # fmt: skip
    """What a run's per-epoch history says of it: the selected epoch (``select_epoch``; its test
    accuracy as measured then), times, the curves figure (drawn here); and the network's size."""
    best = torch_cnn.select_epoch(history)
    seconds = sum(r["seconds"] for r in history)
    curves = out / "figures" / f"{name}_curves.png"
    plots.plot_epoch_curves(history, curves, title=f"{title}: per epoch")
    return {
        "name": name,
        "params": torch_cnn.count_params(model),
        "layers": torch_cnn.summary_rows(model),
        "config": dataclasses.asdict(config),
        "selected_epoch": best["epoch"],
        "val_accuracy": best["val_acc"],
        "test_accuracy": best["test_acc"],
        "epochs": history,
        "train_seconds": round(seconds, 2),
        "images_per_second": round(n_train * len(history) / seconds, 1),
        "figures": {"curves": relative(curves, out)},
        "logs": {"csv": f"logs/{name}.csv", "log": f"logs/{name}.log"},
    }


def _header_path(out: Path, name: str) -> Path:
    return out / "logs" / f"{name}.run.json"


def record_from_log(name: str, config: torch_cnn.Config, out: Path, n_train: int,
                    hardware_name: str | None = None) -> dict:  # fmt: skip
    """The record of a run whose end (evaluating the selected checkpoint, the figures) was cut off,
    e.g. when a GPU machine's time ran out, from its per-epoch log ``out/logs/NAME.csv``.

    The log holds what selection needs: each epoch's validation accuracy and the test accuracy
    measured with it (it agrees with a later evaluation of the checkpoint to within a few test
    images: bf16 on a GPU). The run's header ``logs/NAME.run.json``, when there, gives its config
    (checked against ``config``), hardware and provenance; without it ``hardware_name`` must say
    where it ran, and the provenance is unknown (None). Without the checkpoint there is no
    confusion matrix or per-class report.
    """
    csv_path, header_path = out / "logs" / f"{name}.csv", _header_path(out, name)
    header = read_json(header_path) if header_path.is_file() else None
    trained = torch_cnn.Config(**header["config"]) if header is not None else None
    if trained is not None and torch_cnn.differences(trained, config):
        raise ValueError(f"{header_path}: the run was trained with another configuration "
                         f"({describe(trained, config)}); pass the same --set options")  # fmt: skip
    if header is None and not hardware_name:
        raise ValueError(f"{header_path} is missing: name the hardware the run trained on")
    history = read_csv(csv_path)
    if not history or history[-1]["epoch"] != config.epochs:
        last = history[-1]["epoch"] if history else None
        raise ValueError(f"{csv_path}: the log does not reach epoch {config.epochs} of the "
                         f"configuration (last epoch: {last})")  # fmt: skip
    if any(r["epochs"] != config.epochs for r in history):
        raise ValueError(f"{csv_path}: logged by a run of another length than the "
                         f"configuration's {config.epochs} epochs")  # fmt: skip
    return {
        **_from_history(name, name, config, torch_cnn.build_model(config), history, n_train, out),
        "checkpoint": None,
        "hardware": header["hardware"] if header else hardware_name,
        "test_report": None,
        "recorded_from_log": True,
        "provenance": header["provenance"] if header else None,  # the training's
        "recorded_by": provenance(),
    }


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


def over_seeds(reproduction: dict, folder: Path) -> dict | None:
    """The reproduction beside the runs recorded in ``folder`` (``make seeds``) that were trained
    the same way but for the seed: a row per seed, and the spread (mean, sample standard deviation,
    extremes) of the test accuracy at the validation-selected epoch and of the mean test accuracy
    over the later half of the epochs. Runs trained otherwise, or with a seed already shown, are
    named in ``left_out``. None when no other seed is recorded."""
    base = torch_cnn.Config(**reproduction["config"])
    runs, left_out = {base.seed: reproduction}, []
    for path, run_record, config in _recorded_in(folder):
        differing = [d for d in torch_cnn.differences(config, base) if not d.startswith("seed=")]
        if differing or config.seed in runs:
            why = f"trained with {', '.join(differing)}" if differing else f"seed {config.seed} again"
            left_out.append(f"{path.name} ({why})")
        else:
            runs[config.seed] = run_record
    if len(runs) < 2:
        return None
    return {"folder": folder.name, **_spread_over_seeds(runs, base.epochs), "left_out": left_out}


def seeds_by_init(*folders: Path) -> dict | None:
    """The runs recorded in ``folders`` (gpu_runs.sh and make init-seeds: the reproduction over
    seeds with each initialisation; make all-data: trained on all 60,000 images) in groups
    trained alike but for the seed, in folder then file-name order: each group's initialisation,
    what it changes from the reproduction preset, and its spread over the seeds as ``over_seeds``
    gives it (at the last epoch for runs that held out no validation). Named in ``left_out``: a
    seed recorded twice in a group, a run with no other seed trained alike, and groups of another
    length than the first. None when no group has two seeds."""
    groups, left_out = {}, []
    recorded = [run for folder in folders for run in _recorded_in(folder)]
    for path, run_record, config in recorded:
        trained_as = tuple(d for d in torch_cnn.differences(config, torch_cnn.REPRODUCTION)
                           if not d.startswith("seed="))  # fmt: skip
        runs = groups.setdefault(trained_as, {"config": config, "runs": {}, "paths": []})
        if config.seed in runs["runs"]:
            left_out.append(f"{path.name} (seed {config.seed} again)")
        else:
            runs["runs"][config.seed] = run_record
            runs["paths"].append(path)
    rows = []
    for trained_as, group in groups.items():
        config = group["config"]
        if len(group["runs"]) < 2:
            left_out += [f"{p.name} (no other seed trained alike)" for p in group["paths"]]
        elif rows and config.epochs != rows[0]["later_half"]["last_epoch"]:
            left_out += [f"{p.name} ({config.epochs} epochs, not {rows[0]['later_half']['last_epoch']})"
                         for p in group["paths"]]  # fmt: skip
        else:
            rows.append({"init": config.init, "hold_out_validation": config.hold_out_validation,
                         "description": ", ".join(trained_as) or "the reproduction configuration",
                         **_spread_over_seeds(group["runs"], config.epochs)})  # fmt: skip
    return ({"folders": [f.name for f in folders], "groups": rows, "left_out": left_out}
            if rows else None)  # fmt: skip


def init_table(by_init: dict) -> pd.DataFrame:
    """``seeds_by_init``'s groups, a row each, beside the original's one run."""
    later = by_init["groups"][0]["later_half"]
    span = f"{later['first_epoch']}-{later['last_epoch']}"
    rows = [{"trained as": g["description"], "init": g["init"],
             "hardware": ", ".join(dict.fromkeys(r["hardware"] for r in g["rows"])),
             "seeds": len(g["rows"]), "test_acc (selected)": g["test_accuracy"]["mean"],
             "std": g["test_accuracy"]["std"],
             f"mean test_acc, epochs {span}": g["later_half"]["mean"],
             **{f"epoch 1 {key}": value for key, value in g["epoch_1"].items()}}
            for g in by_init["groups"]]  # fmt: skip
    rows.append({"trained as": "the original: one run, selected on test", "init": None,
                 "hardware": None, "seeds": 1,
                 "test_acc (selected)": original.RESULTS["cnn-by-pytorch"], "std": None,
                 f"mean test_acc, epochs {span}": original.torch_mean_test_acc(
                     later["first_epoch"], later["last_epoch"]),
                 **{f"epoch 1 {key}": value for key, value in original.TORCH_EPOCH_1.items()}})  # fmt: skip
    return pd.DataFrame(rows).set_index("trained as")


def _spread_over_seeds(runs: dict[int, dict], epochs: int) -> dict:
    """A row per seed's run, the spread of its two accuracies (see ``over_seeds``), and the mean
    over the seeds of epoch 1's train loss, train accuracy and test accuracy."""
    later = epochs // 2
    rows = [{
        "seed": seed, "name": r["name"], "selected_epoch": r["selected_epoch"],
        "val_accuracy": r["val_accuracy"], "test_accuracy": r["test_accuracy"],
        "mean_test_acc_later_half": statistics.fmean(e["test_acc"] for e in r["epochs"][later:]),
        "hardware": r["hardware"],
    } for seed, r in sorted(runs.items())]  # fmt: skip

    def spread(column: str) -> dict:
        values = [row[column] for row in rows]
        return {"mean": statistics.fmean(values), "std": statistics.stdev(values),
                "min": min(values), "max": max(values)}  # fmt: skip

    epochs_1 = [r["epochs"][0] for _, r in sorted(runs.items())]
    return {"rows": rows, "test_accuracy": spread("test_accuracy"),
            "later_half": {"first_epoch": later + 1, "last_epoch": epochs,
                           **spread("mean_test_acc_later_half")},
            "epoch_1": {key: statistics.fmean(e[key] for e in epochs_1)
                        for key in ("train_loss", "train_acc", "test_acc")}}  # fmt: skip


def seeds_line(seeds: dict) -> str:
    """``over_seeds``' spread in one sentence."""
    test, later = seeds["test_accuracy"], seeds["later_half"]
    line = (f"Over {len(seeds['rows'])} seeds ({', '.join(str(r['seed']) for r in seeds['rows'])}),"
            f" mean ± standard deviation: test accuracy at the validation-selected epoch "
            f"{test['mean']:.2%} ± {test['std']:.2%} (from {test['min']:.2%} to {test['max']:.2%});"
            f" mean test accuracy over epochs {later['first_epoch']}-{later['last_epoch']} "
            f"{later['mean']:.2%} ± {later['std']:.2%}.")  # fmt: skip
    if seeds["left_out"]:
        line += f" Left out: {'; '.join(seeds['left_out'])}."
    return line


def describe(config: torch_cnn.Config, base: torch_cnn.Config) -> str:
    """What a configuration changes relative to ``base``, e.g. 'translate=2'."""
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
        best = next(r for r in result["history"] if r["epoch"] == result["best_epoch"])
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
    probabilities = {
        name: torch_cnn.predict_proba(model, splits.test_images, tta_flip=model.config.tta_flip)
        for name, model in models.items()
    }
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


def _recorded_in(folder: Path):
    """(path, record, its Config) for each run recorded in ``folder``, in file-name order."""
    for path in sorted(folder.glob("*.json")):
        run_record = read_json(path)
        yield path, run_record, torch_cnn.Config(**run_record["config"])


def recorded_runs(folder: Path) -> dict | None:
    """One row per run recorded in ``folder`` (e.g. ``gpu/``, written by gpu_runs.sh), each
    described as its closest preset plus what differs; None when there are none."""
    rows = []
    for _, run_record, config in _recorded_in(folder):
        preset = min(PRESETS, key=lambda name: len(torch_cnn.differences(config, PRESETS[name])))
        differing = ", ".join(torch_cnn.differences(config, PRESETS[preset]))
        rows.append({
            "name": run_record["name"], "preset": preset,
            "description": f"{preset} with {differing}" if differing else preset,
            "epochs": len(run_record["epochs"]), "selected_epoch": run_record["selected_epoch"],
            "val_accuracy": run_record["val_accuracy"], "test_accuracy": run_record["test_accuracy"],
            "train_seconds": run_record["train_seconds"], "hardware": run_record["hardware"],
        })  # fmt: skip
    return {"folder": folder.name, "rows": rows} if rows else None


def read_recorded(path: Path) -> dict | None:
    """A result recorded by an earlier run (``make ablation``, a GPU run), or None."""
    return read_json(path) if path.is_file() else None


def record(path: Path, result: dict) -> dict:
    """Write a result with its provenance, for a later notebook run to read."""
    return write_metrics(path, result)


def override(config: torch_cnn.Config, assignments: list[str]) -> torch_cnn.Config:
    """``config`` with fields replaced from 'NAME=VALUE' strings, each read as its field's type."""
    types = typing.get_type_hints(torch_cnn.Config)
    replacements = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or name not in types:
            raise ValueError(f"--set {assignment!r}: expected NAME=VALUE with NAME one of "
                             f"{sorted(types)}")  # fmt: skip
        kind = types[name]
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--set {assignment!r}: {name} takes true or false")
            replacements[name] = value.lower() in ("true", "1")
        else:
            try:
                replacements[name] = kind(value)
            except ValueError:
                raise ValueError(f"--set {assignment!r}: {name} takes {kind.__name__} "
                                 f"values") from None  # fmt: skip
    return dataclasses.replace(config, **replacements)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a preset or the ablation; record it.")
    parser.add_argument("what", choices=[*PRESETS, "ablation"])
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's length")
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="change one field of the preset's Config (repeatable)")
    parser.add_argument("--name", help="the run's name (files NAME.json, logs/NAME.*); "
                        "default: the preset's")  # fmt: skip
    parser.add_argument("--from-log", action="store_true",
                        help="train nothing: record a run whose end was cut off from its "
                        "per-epoch log OUT/logs/NAME.csv")  # fmt: skip
    parser.add_argument("--hardware", help="with --from-log, where the run trained (needed only "
                        "when its header logs/NAME.run.json is missing)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.what == "ablation" and (args.set or args.from_log or args.name):
        parser.error("--set, --name and --from-log apply to a preset, not to the ablation")
    name = args.name or args.what
    if args.what != "ablation":
        try:
            config = override(PRESETS[args.what], args.set)
        except ValueError as error:
            parser.error(str(error))
        if args.epochs:
            config = dataclasses.replace(config, epochs=args.epochs)
    splits = load_splits(ensure_dataset(args.data))
    if args.from_log:
        result = record_from_log(name, config, args.out, len(training_sets(config, splits)[1]),
                                 args.hardware)  # fmt: skip
    else:
        device = torch_cnn.pick_device()
        print(f"Device: {device}")
        if args.what == "ablation":
            result = run_ablations(splits, args.out, args.epochs or torch_cnn.ABLATION_EPOCHS,
                                   device)  # fmt: skip
        else:
            result = run(name, config, splits, args.out, device=device, title=name)
    record(args.out / f"{name}.json", result)
    print(f"Wrote {args.out / (name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
