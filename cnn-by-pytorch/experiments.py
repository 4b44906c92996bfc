"""Train a preset (or every ablation) on the real data from the command line.

    python cnn-by-pytorch/experiments.py reproduction --out /tmp/torch_runs
    python cnn-by-pytorch/experiments.py improved --out /tmp/torch_runs
    python cnn-by-pytorch/experiments.py resnet --out runs/resnet      # wants a GPU
    python cnn-by-pytorch/experiments.py ablations --out /tmp/torch_runs

Each run writes its checkpoints and ``result.json`` (the history ``train`` returns, the config,
the hardware) under ``OUT/NAME``, and resumes there when interrupted (a finished run is not
retrained); ``ablations`` also writes
``OUT/ablations.json``: one row per ablation with its validation-selected test accuracy.
Options: ``--epochs N`` shortens a run (a smoke test), ``--data DIR`` picks the data folder.
On a CPU shared with other jobs, set ``OMP_WAIT_POLICY=PASSIVE``: OpenMP's spin-waiting threads
made each step about three times slower here when the cores were oversubscribed.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
from pathlib import Path

import torch
import torch_cnn

from fashion_mnist.data import DEFAULT_DIR, SYSTEM_DIR, load_splits
from fashion_mnist.files import write_json

PRESETS = {
    "reproduction": torch_cnn.REPRODUCTION,
    "improved": torch_cnn.IMPROVED,
    "resnet": torch_cnn.RESNET,
}


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def run(name: str, config: torch_cnn.Config, splits, out: Path) -> dict:
    """Train one configuration (resuming in ``out/name``); its result is also written to JSON."""
    device = torch_cnn.pick_device()
    print(f"{name}: device {device}, {config}", flush=True)

    def log(r):
        test = f"  Test Loss: {r['test_loss']:.4f}  Acc: {r['test_acc']:.4f}"
        print(
            f"Epoch [{r['epoch']}/{r['epochs']}]  Train Loss: {r['train_loss']:.4f}  "
            f"Acc: {r['train_acc']:.4f}  Val Loss: {r['val_loss']:.4f}  Acc: {r['val_acc']:.4f}"
            f"{test}  ({r['seconds']:.1f} s)",
            flush=True,
        )

    result = torch_cnn.train(
        config, splits.train_images, splits.train_labels, splits.val_images, splits.val_labels,
        out / name, splits.test_images, splits.test_labels, on_epoch=log, device=device,
    )  # fmt: skip
    result.update(
        name=name, config=dataclasses.asdict(config), hardware=hardware(device),
        torch=torch.__version__,
    )  # fmt: skip
    write_json(out / name / "result.json", result)
    print(
        f"{name}: best epoch {result['best_epoch']} (val {result['best_val_acc']:.4f}), "
        f"test {result['test_acc_at_best']:.4f}, {result['train_seconds']:.0f} s",
        flush=True,
    )
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=[*PRESETS, "ablations"])
    parser.add_argument("--out", type=Path, default=Path("runs/torch"))
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    data = args.data or (DEFAULT_DIR if any(DEFAULT_DIR.glob("*.gz")) else SYSTEM_DIR)
    splits = load_splits(data)

    def shorten(config):
        return dataclasses.replace(config, epochs=args.epochs) if args.epochs else config

    if args.what != "ablations":
        run(args.what, shorten(PRESETS[args.what]), splits, args.out)
        return 0
    rows = []
    for name, config in torch_cnn.ABLATIONS.items():
        # A finished run resumes at its last checkpoint and returns at once.
        result = run(f"ablation_{name}", shorten(config), splits, args.out)
        keep = ("name", "best_epoch", "best_val_acc", "test_acc_at_best", "train_seconds")
        rows.append({k: result[k] for k in (*keep, "hardware", "config")})
        write_json(args.out / "ablations.json", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
