"""Train a preset, a variant of one, or the ablation, and record it as JSON on the experiments
shelf; or record a run whose end was cut off, from its per-epoch log. ``make -C experiments``
calls it once per run (see experiments/README.md); the PyTorch notebook reads the records through
``summary.json`` (``summarise.py``). From the repository root:

    python experiments/sweeps.py ablation --out experiments/ablation   # writes ablation.json
    python experiments/sweeps.py resnet --out experiments/resnet        # on a GPU: resnet.json
    python experiments/sweeps.py improved --epochs 1 --out /tmp/try     # any preset, e.g. to time it
    python experiments/sweeps.py improved --set cutmix=0.5 --name improved_cutmix --out /tmp/try
    python experiments/sweeps.py reproduction --all-data --out /tmp/try  # as the original trained
    python experiments/sweeps.py resnet --from-log --out DIR   # a run whose end was cut off

On a CPU shared with other jobs, ``OMP_WAIT_POLICY=PASSIVE`` stops PyTorch's threads from
spin-waiting, which otherwise makes every step several times slower.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

import _paths  # noqa: F401 -- the reading path's modules, this checkout's
import torch_cnn
import torch_run

from fashion_mnist.data import DEFAULT_DIR, ensure_dataset, load_splits
from fashion_mnist.files import read_json
from fashion_mnist.runlog import provenance, read_csv, write_metrics

PRESETS = {"reproduction": torch_cnn.REPRODUCTION, "improved": torch_cnn.IMPROVED,
           "resnet": torch_cnn.RESNET}  # fmt: skip


def override(config: torch_cnn.Config, assignments: list[str]) -> torch_cnn.Config:
    """``config`` with fields replaced from 'NAME=VALUE' strings (``--set``), each read as its
    field's type; the new Config checks the values as any other (``Config.__post_init__``)."""
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


def record_from_log(name: str, config: torch_cnn.Config, out: Path, n_train: int,
                    hardware_name: str | None = None, validation: bool = True) -> dict:  # fmt: skip
    """The record of a run whose end (evaluating the selected checkpoint, the figures) was cut off,
    e.g. when a GPU machine's time ran out, from its per-epoch log ``out/logs/NAME.csv``.

    The log holds what selection needs: each epoch's validation accuracy and the test accuracy
    measured with it (it agrees with a later evaluation of the checkpoint to within a few test
    images: bf16 on a GPU). The run's header ``logs/NAME.run.json``, when there, gives its config
    and whether it held out validation (checked against ``config`` and ``validation``), hardware
    and provenance; without it ``hardware_name`` must say where it ran, and the provenance is
    unknown (None). Without the checkpoint there is no confusion matrix or per-class report.
    """
    csv_path, header_path = out / "logs" / f"{name}.csv", torch_run.header_path(out, name)
    header = read_json(header_path) if header_path.is_file() else None
    # the recorded fields as written (a header may hold values Config no longer takes)
    if header is not None and torch_cnn.differences(header["config"], config):
        raise ValueError(f"{header_path}: the run was trained with another configuration "
                         f"({torch_run.describe(header['config'], config)}); pass the same "
                         "--set options")  # fmt: skip
    held_out = header.get("validation", True) if header is not None else validation
    if held_out != validation:
        raise ValueError(f"{header_path}: the run was trained with validation={held_out}; pass "
                         "--all-data exactly when it was False")  # fmt: skip
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
        **torch_run.from_history(name, name, config, torch_cnn.build_model(config), history,
                                 n_train, out),
        "checkpoint": None,
        "hardware": header["hardware"] if header else hardware_name,
        "test_report": None,
        "recorded_from_log": True,
        "provenance": header["provenance"] if header else None,  # the training's
        "recorded_by": provenance(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a preset or the ablation; record it.")
    parser.add_argument("what", choices=[*PRESETS, "ablation"])
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's length")
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--out", type=Path, required=True, help="the folder of the record")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="change one field of the preset's Config (repeatable)")
    parser.add_argument("--name", help="the run's name (files NAME.json, logs/NAME.*); "
                        "default: the preset's")  # fmt: skip
    parser.add_argument("--from-log", action="store_true",
                        help="train nothing: record a run whose end was cut off from its "
                        "per-epoch log OUT/logs/NAME.csv")  # fmt: skip
    parser.add_argument("--hardware", help="with --from-log, where the run trained (needed only "
                        "when its header logs/NAME.run.json is missing)")  # fmt: skip
    parser.add_argument("--all-data", action="store_true",
                        help="train on all 60,000 training images and keep the last epoch, as the "
                        "original did (default: hold out validation and select on it)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.what == "ablation" and (args.set or args.from_log or args.name or args.all_data):
        parser.error("--set, --name, --all-data and --from-log apply to a preset, not to the "
                     "ablation")  # fmt: skip
    validation = not args.all_data
    name = args.name or args.what
    if args.what != "ablation":
        try:  # each value checked by Config, as any other
            config = override(PRESETS[args.what], args.set)
            if args.epochs is not None:
                config = dataclasses.replace(config, epochs=args.epochs)
        except ValueError as error:
            parser.error(str(error))
    splits = load_splits(ensure_dataset(args.data))
    if args.from_log:
        n_train = len(torch_run.training_sets(splits, validation)[1])
        result = record_from_log(name, config, args.out, n_train, args.hardware, validation)
    else:
        device = torch_cnn.pick_device()
        print(f"Device: {device}")
        if args.what == "ablation":
            epochs = torch_cnn.ABLATION_EPOCHS if args.epochs is None else args.epochs
            result = torch_run.run_ablations(splits, args.out, epochs, device)
        else:
            result = torch_run.run(name, config, splits, args.out, validation=validation,
                                   device=device, title=name)  # fmt: skip
    write_metrics(args.out / f"{name}.json", result)
    print(f"Wrote {args.out / (name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
