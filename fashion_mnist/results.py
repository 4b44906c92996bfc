"""What both notebooks do after training: pick a checkpoint on validation, evaluate it on test,
draw its figures and describe the run as one plain record for ``metrics.json`` and the report.

The two model modules share an interface, ``load(path) -> model`` and
``predict_proba(model, uint8 images) -> (N, 10)``, so this code serves both.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import sys
import tokenize
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import REPO_ROOT, plots
from .data import Splits
from .metrics import classification_summary


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((probabilities.argmax(axis=1) == labels).mean())


def evaluate_checkpoints(
    paths: Sequence[str | Path],
    load: Callable,
    predict_proba: Callable,
    splits: Splits,
) -> list[dict]:
    """Validation and test accuracy of each checkpoint (test for the report's table only)."""
    rows = []
    for path in paths:
        model = load(path)
        rows.append({
            "path": str(path),
            "val_accuracy": accuracy(predict_proba(model, splits.val_images), splits.val_labels),
            "test_accuracy": accuracy(predict_proba(model, splits.test_images), splits.test_labels),
        })  # fmt: skip
    return rows


def select_on_validation(rows: Sequence[dict], key: str = "val_accuracy") -> dict:
    """The row with the best validation accuracy; ties go to the earlier checkpoint."""
    if not rows:
        raise ValueError("no checkpoints to select from")
    return max(rows, key=lambda r: r[key])  # max keeps the first of equal values


def relative(path: str | Path, root: Path) -> str:
    """``path`` relative to ``root`` (the run's folder), as the report links it."""
    return Path(path).resolve().relative_to(root.resolve()).as_posix()


def test_evaluation(
    name: str,
    probabilities: np.ndarray,
    splits: Splits,
    out: Path,
    title: str,
) -> tuple[dict, dict]:
    """The test report and the confusion-matrix and misclassified figures of one model."""
    predicted = probabilities.argmax(axis=1)
    report = classification_summary(splits.test_labels, predicted)
    figures = {
        "confusion": out / "figures" / f"{name}_confusion.png",
        "misclassified": out / "figures" / f"{name}_misclassified.png",
    }
    plots.plot_confusion(
        report["confusion_matrix"], figures["confusion"],
        title=f"{title}: test confusion matrix (accuracy {report['accuracy']:.4f})",
    )  # fmt: skip
    plots.plot_misclassified(
        splits.test_images, splits.test_labels, predicted, figures["misclassified"]
    )
    return report, {k: relative(v, out) for k, v in figures.items()}


def model_code_lines(path: str | Path) -> int:
    """Lines of code in a module: neither blank, nor comments, nor docstrings."""
    source = Path(path).read_text(encoding="utf-8")
    docstring_lines = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstring_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    code_lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENDMARKER):  # fmt: skip
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(code_lines - docstring_lines)


def import_model_module(folder: str, name: str):
    """Import ``REPO_ROOT/folder/name.py`` (the model folders are not packages: their names have
    hyphens), e.g. the NumPy model from the PyTorch notebook for the ensemble. The folder goes on
    ``sys.path`` first, as in its notebook, so that the module imports the modules beside it."""
    if name in sys.modules:
        return sys.modules[name]
    here = str(REPO_ROOT / folder)
    if here not in sys.path:
        sys.path.insert(0, here)
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def soft_vote(probabilities: dict[str, np.ndarray], labels: np.ndarray) -> dict:
    """Average the members' class probabilities; each member's accuracy and the ensemble's."""
    mean = np.mean([p.astype(np.float64) for p in probabilities.values()], axis=0)
    return {
        "members": list(probabilities),
        "member_accuracies": {k: accuracy(p, labels) for k, p in probabilities.items()},
        "accuracy": accuracy(mean, labels),
    }
