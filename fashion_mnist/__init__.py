"""Shared helpers for the Fashion-MNIST notebooks, the report and the tests.

Small on purpose, like d2l's helper package: data (``data``), atomic files
(``files``), run logs and provenance (``runlog``), metrics (``metrics``),
plots (``plots``), notebook parameters (``params``) and the original
report's numbers (``original``).
"""

from pathlib import Path

__version__ = "0.1.0"

# The repository root: the package is installed editable, so this is the checkout.
REPO_ROOT = Path(__file__).resolve().parent.parent
