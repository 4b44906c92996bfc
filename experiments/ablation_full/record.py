"""Does each contested ingredient of the improved recipe earn its place at the full budget?

The 4-epoch ablation (``experiments/ablation/``) adds one improvement at a time to the
reproduction, and there random shifts, flips and flip test-time augmentation (TTA) all lower the
accuracy. Short runs favour what speeds up early learning, so this experiment asks the question
at the improved recipe's own length (30 epochs): it trains the recipe whole, then without the
shifts, then without the flips (training flips and flip TTA go together: averaging an image with
its mirror only makes sense for a network that saw mirrored images), each selected on validation
(``make -C experiments ablation-full``, about 35 minutes on 2 cores). This script then evaluates
the whole recipe's selected checkpoint once more without flip TTA (inference only, through the
public ``load`` and ``predict_proba``), records that as ``tta_off.json`` and writes README.md's
table from the four records.

    python experiments/ablation_full/record.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _paths  # noqa: E402,F401  (the reading path's modules, this checkout's)
import torch_cnn  # noqa: E402
from jinja2 import Environment, FileSystemLoader, StrictUndefined  # noqa: E402

from fashion_mnist.data import DEFAULT_DIR, ensure_dataset, load_splits  # noqa: E402
from fashion_mnist.files import read_json, repo_relative, write_json, write_text  # noqa: E402
from fashion_mnist.results import accuracy  # noqa: E402
from fashion_mnist.runlog import provenance  # noqa: E402

RUNS = ("improved", "no_translate", "no_flips")  # the trained variants, in the table's order


def evaluate_without_tta(record: dict, splits) -> dict:
    """The whole recipe's selected checkpoint on validation and test, with flip TTA off and (as a
    check against its record) on."""
    checkpoint = HERE / record["checkpoint"]
    model = torch_cnn.load(checkpoint)
    result = {"checkpoint": repo_relative(checkpoint)}
    for tta in (False, True):
        for split, images, labels in (("val", splits.val_images, splits.val_labels),
                                      ("test", splits.test_images, splits.test_labels)):
            key = f"{split}_accuracy" + ("_tta" if tta else "")
            result[key] = accuracy(torch_cnn.predict_proba(model, images, tta_flip=tta), labels)
    if abs(result["test_accuracy_tta"] - record["test_accuracy"]) > 1e-9:
        raise RuntimeError(f"{checkpoint}: re-evaluated with flip TTA it gives "
                           f"{result['test_accuracy_tta']:.4f}, its record says "
                           f"{record['test_accuracy']:.4f}")
    return {**result, "provenance": provenance()}


def main() -> int:
    records = {name: read_json(HERE / f"{name}.json") for name in RUNS}
    splits = load_splits(ensure_dataset(DEFAULT_DIR))
    tta_off = evaluate_without_tta(records["improved"], splits)
    write_json(HERE / "tta_off.json", tta_off)
    env = Environment(loader=FileSystemLoader(HERE), undefined=StrictUndefined,
                      keep_trailing_newline=True)
    write_text(HERE / "README.md",
               env.get_template("README.md.j2").render(records=records, tta_off=tta_off))
    print(f"Wrote {repo_relative(HERE / 'tta_off.json')} and {repo_relative(HERE / 'README.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
