"""The experiments' records summarised: ``summary.json`` for the PyTorch notebook (and through its
metrics.json the report), and this folder's README.md, its tables rendered from the records.

    python experiments/summarise.py          # write summary.json and README.md (make summary)
    python experiments/summarise.py --check  # fail when either differs from what the records give

``summary.json`` holds, under metrics.json's keys, what the notebook records of the experiments:
``seeds`` (the reproduction over seeds, ``over_seeds``), ``init_seeds`` (over seeds with each
initialisation, with or without validation, ``seeds_by_init``), ``gpu_runs`` (``recorded_runs``),
``ablation`` and ``resnet`` (their records as written); ``display``, the tables as the notebook
shows them; ``malloc``, the allocator benchmark's results, and ``lowering``, those of the conv2
lowering study. Seed 0 of ``seeds`` is the reproduction the notebook recorded last
(``cnn-by-pytorch/metrics.json``): run this again after a full notebook run.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import _paths  # noqa: F401 -- the reading path's modules, this checkout's
import jinja2
import torch_cnn
import torch_run
from sweeps import PRESETS

from fashion_mnist import original
from fashion_mnist.files import read_json, repo_relative, write_json, write_text

HERE = Path(__file__).resolve().parent
NOTEBOOK_METRICS = _paths.REPO_ROOT / "cnn-by-pytorch" / "metrics.json"

# Records are history, read as they were written, never through Config, whose choices have moved
# on. A field a record lacks had not been added when it was written: its run trained as Config's
# default says now, but for the initialisation: before Config.init, He or Xavier on every layer
# ('he_xavier', since gone).
_UNRECORDED = {**dataclasses.asdict(torch_cnn.Config()), "init": "he_xavier"}


def trained_with(run_record: dict) -> dict:
    """How a recorded run trained: its config's fields, and ``validation``, whether it held out
    the validation split and selected its epoch on it (torch_run.run's ``validation``; until the
    run decided, the config's ``hold_out_validation``)."""
    config = dict(run_record["config"])
    held_out = config.pop("hold_out_validation", True)
    return {**_UNRECORDED, **config, "validation": run_record.get("validation", held_out)}


def as_trained(preset: torch_cnn.Config) -> dict:
    """``preset`` trained by torch_run.run with its default, validation held out, in
    ``trained_with``'s terms."""
    return {**dataclasses.asdict(preset), "validation": True}


def _but_seed(fields: dict, base: dict) -> list[str]:
    """What a run trained with ``fields`` changes from ``base``, the seed aside."""
    return torch_cnn.differences({**fields, "seed": base["seed"]}, base)


def over_seeds(reproduction: dict, folder: Path) -> dict | None:
    """The reproduction beside the runs recorded in ``folder`` that were trained the same way but
    for the seed: a row per seed, and the spread (mean, sample standard deviation, extremes) of
    the test accuracy at the selected epoch (on validation, or the last) and of the mean test
    accuracy over the later half of the epochs. A run with a seed already shown is named in
    ``left_out``; runs trained otherwise belong to other experiments (``seeds_by_init``). None when
    no other seed is recorded."""
    base = trained_with(reproduction)
    runs, left_out = {base["seed"]: reproduction}, []
    for path, run_record, fields in _recorded_in(folder):
        if _but_seed(fields, base):
            continue
        if fields["seed"] in runs:
            left_out.append(f"{path.name} (seed {fields['seed']} again)")
        else:
            runs[fields["seed"]] = run_record
    if len(runs) < 2:
        return None
    return {"folder": folder.name, "validation": base["validation"],
            **_spread_over_seeds(runs, base["epochs"]), "left_out": left_out}  # fmt: skip


def seeds_by_init(*folders: Path) -> dict | None:
    """The runs recorded in ``folders`` (``make -C experiments seeds``, gpu_runs.sh, and the
    records of earlier targets) in groups trained alike but for the seed, in folder then
    file-name order: each group's initialisation, whether it held out validation, what it changes
    from the reproduction preset trained with validation held out, and its spread over the seeds
    as ``over_seeds`` gives it. Named in ``left_out``: a seed recorded twice in a group, a run
    with no other seed trained alike, and groups of another length than the first. None when no
    group has two seeds."""
    groups, left_out = {}, []
    base = as_trained(torch_cnn.REPRODUCTION)
    for path, run_record, fields in (run for folder in folders for run in _recorded_in(folder)):
        trained_as = tuple(_but_seed(fields, base))
        runs = groups.setdefault(trained_as, {"fields": fields, "runs": {}, "paths": []})
        if fields["seed"] in runs["runs"]:
            left_out.append(f"{path.name} (seed {fields['seed']} again)")
        else:
            runs["runs"][fields["seed"]] = run_record
            runs["paths"].append(path)
    rows = []
    for trained_as, group in groups.items():
        fields = group["fields"]
        if len(group["runs"]) < 2:
            left_out += [f"{p.name} (no other seed trained alike)" for p in group["paths"]]
        elif rows and fields["epochs"] != rows[0]["later_half"]["last_epoch"]:
            left_out += [f"{p.name} ({fields['epochs']} epochs, not "
                         f"{rows[0]['later_half']['last_epoch']})" for p in group["paths"]]  # fmt: skip
        else:
            rows.append({"init": fields["init"], "validation": fields["validation"],
                         "description": ", ".join(trained_as) or "the reproduction configuration",
                         **_spread_over_seeds(group["runs"], fields["epochs"])})  # fmt: skip
    return ({"folders": [f.name for f in folders], "groups": rows, "left_out": left_out}
            if rows else None)  # fmt: skip


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
    selected = "validation-selected" if seeds.get("validation", True) else "last"
    line = (f"Over {len(seeds['rows'])} seeds ({', '.join(str(r['seed']) for r in seeds['rows'])}),"
            f" mean ± standard deviation: test accuracy at the {selected} epoch "
            f"{test['mean']:.2%} ± {test['std']:.2%} (from {test['min']:.2%} to {test['max']:.2%});"
            f" mean test accuracy over epochs {later['first_epoch']}-{later['last_epoch']} "
            f"{later['mean']:.2%} ± {later['std']:.2%}.")  # fmt: skip
    if seeds["left_out"]:
        line += f" Left out: {'; '.join(seeds['left_out'])}."
    return line


def init_rows(by_init: dict) -> list[dict]:
    """``seeds_by_init``'s groups, a row each, beside the original's one run: the notebook's
    table (indexed by "trained as")."""
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
    return rows


def _recorded_in(folder: Path):
    """(path, record, ``trained_with`` it) for each run recorded in ``folder``, in file-name
    order."""
    for path in sorted(folder.glob("*.json")):
        run_record = read_json(path)
        yield path, run_record, trained_with(run_record)


def recorded_runs(folder: Path) -> dict | None:
    """One row per run recorded in ``folder`` (e.g. ``gpu/``, written by gpu_runs.sh), each
    described as its closest preset plus what differs; None when there are none."""
    rows, presets = [], {name: as_trained(config) for name, config in PRESETS.items()}
    for _, run_record, fields in _recorded_in(folder):
        preset = min(presets, key=lambda name: len(torch_cnn.differences(fields, presets[name])))
        differing = ", ".join(torch_cnn.differences(fields, presets[preset]))
        rows.append({
            "name": run_record["name"], "preset": preset,
            "description": f"{preset} with {differing}" if differing else preset,
            "epochs": len(run_record["epochs"]), "selected_epoch": run_record["selected_epoch"],
            "val_accuracy": run_record["val_accuracy"], "test_accuracy": run_record["test_accuracy"],
            "train_seconds": run_record["train_seconds"], "hardware": run_record["hardware"],
        })  # fmt: skip
    return {"folder": folder.name, "rows": rows} if rows else None


def summarise(root: Path = HERE, notebook_metrics: Path = NOTEBOOK_METRICS) -> dict:
    """Everything ``summary.json`` holds, from the records under ``root``."""
    reproduction = (read_json(notebook_metrics).get("reproduction")
                    if notebook_metrics.is_file() else None)  # fmt: skip
    # The notebook's reproduction beside the runs trained as it was: all_data/ holds those trained
    # as the original was (make -C experiments seeds), seeds/ those with validation held out.
    seeds = (over_seeds(reproduction, root / ("seeds" if trained_with(reproduction)["validation"]
                                              else "all_data"))
             if reproduction else None)  # fmt: skip
    init_seeds = seeds_by_init(root / "gpu_seeds", root / "init_seeds", root / "all_data")
    resnet = torch_run.read_recorded(root / "resnet" / "resnet.json")
    if resnet is not None:  # its files, relative to this folder as the summary's other paths
        resnet = {**resnet, "figures": {k: f"resnet/{v}" for k, v in resnet["figures"].items()},
                  "logs": {k: f"resnet/{v}" for k, v in resnet["logs"].items()}}  # fmt: skip
    benchmarks = {name: torch_run.read_recorded(root / path) for name, path in
                  (("malloc", "malloc/bench_malloc.json"),
                   ("lowering", "conv_lowering/bench_lowering.json"))}
    return {
        "seeds": seeds,
        "init_seeds": init_seeds,
        "gpu_runs": recorded_runs(root / "gpu"),
        "ablation": torch_run.read_recorded(root / "ablation" / "ablation.json"),
        "resnet": resnet,
        "display": {"seeds_line": seeds_line(seeds) if seeds else None,
                    "init_table": init_rows(init_seeds) if init_seeds else None},  # fmt: skip
        **{name: {key: record[key] for key in ("rounds", "steps", "threads", "results")}
           if record else None for name, record in benchmarks.items()},
    }


def _cell(value) -> str:
    """A table cell: accuracies (below 1) to 4 decimals, larger numbers (seconds) to 2 at most."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{round(value, 2):g}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """``rows`` as a Markdown table of ``columns`` (README.md's tables, and ``--runs``)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


RUN_COLUMNS = ["name", "description", "epochs", "selected_epoch", "val_accuracy", "test_accuracy",
               "train_seconds", "hardware"]  # fmt: skip


def readme(summary: dict, template: Path = HERE / "README.md.j2") -> str:
    """README.md: ``template`` with the summary's tables filled in."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template.parent),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    env.filters["table"] = markdown_table
    env.filters["pct"] = lambda v: "" if v is None else f"{v:.2%}"
    env.filters["num"] = lambda v, digits=4: "" if v is None else f"{v:.{digits}f}"
    return env.get_template(template.name).render(**summary, run_columns=RUN_COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise the experiments' records.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; fail when summary.json or README.md is out of date")
    parser.add_argument("--runs", type=Path, nargs="+", metavar="FOLDER",
                        help="write nothing; print the runs recorded in each FOLDER")
    args = parser.parse_args(argv)
    if args.runs:
        for folder in args.runs:
            runs = recorded_runs(folder)
            print(f"{folder}:\n" + (markdown_table(runs["rows"], RUN_COLUMNS) if runs else "none"))
        return 0
    summary = summarise()
    outputs = {HERE / "summary.json": summary, HERE / "README.md": readme(summary)}
    if args.check:
        stale = [path.name for path, made in outputs.items()
                 if not path.is_file() or (read_json(path) if path.suffix == ".json"
                                           else path.read_text(encoding="utf-8")) != made]  # fmt: skip
        if stale:
            print(f"out of date: {', '.join(stale)}; run python experiments/summarise.py")
        return 1 if stale else 0
    for path, made in outputs.items():  # each atomically: a reader never sees half a file
        (write_json if path.suffix == ".json" else write_text)(path, made)
    print(f"Wrote {' and '.join(repo_relative(path) for path in outputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
