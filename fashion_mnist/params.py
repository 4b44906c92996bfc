"""Notebook parameters: defaults from the tagged cell, shrunk by QUICK=1, overridden by env vars.

A notebook's ``parameters`` cell (papermill's tag) assigns upper-case names. The next cell calls
``notebook_params(globals(), quick={...})``; every value can then be overridden by an environment
variable of the same name (``EPOCHS=3 jupyter nbconvert --execute ...``), which is how ``make run``
and the tests drive the notebooks headless.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from . import REPO_ROOT

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(name: str, text: str, default: object) -> object:
    """Parse ``text`` as the type of ``default``; errors name the variable."""
    try:
        if isinstance(default, bool):
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected one of 1/0, true/false, yes/no, on/off")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError as e:
        raise ValueError(f"environment variable {name}={text!r}: {e}") from None
    return text


def notebook_params(
    namespace: Mapping[str, object],
    quick: Mapping[str, object] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, object]:
    """Collect the upper-case parameters of ``namespace`` (bool, int, float, str).

    Order of precedence, lowest first: the cell's defaults, then ``quick`` when QUICK is on,
    then environment variables of the same name.
    """
    params = {
        k: v
        for k, v in namespace.items()
        if k.isupper() and not k.startswith("_") and isinstance(v, (bool, int, float, str))
    }
    if "QUICK" not in params:
        params["QUICK"] = False
    if "QUICK" in environ:
        params["QUICK"] = _coerce("QUICK", environ["QUICK"], False)
    if params["QUICK"]:
        unknown = set(quick or {}) - set(params)
        if unknown:
            raise KeyError(f"quick overrides for unknown parameters: {sorted(unknown)}")
        params.update(quick or {})
    for name, default in list(params.items()):
        if name in environ and name != "QUICK":
            params[name] = _coerce(name, environ[name], default)
    return params


def output_dir(model_folder: str, quick: bool, override: str = "") -> Path:
    """Where a run writes its logs, checkpoints, metrics and figures.

    A full run writes into its model folder (``cnn-by-myself/``), where the report reads it; a
    quick run writes under ``runs/quick/`` so it never overwrites a full run. ``override`` (the
    OUT_DIR parameter) wins, which the tests use to write into a temporary folder.
    """
    if override:
        path = Path(override)
    elif quick:
        path = REPO_ROOT / "runs" / "quick" / model_folder
    else:
        path = REPO_ROOT / model_folder
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()
