"""Puts the reading path's modules, this checkout's, first on ``sys.path`` for the shelf's
scripts (``cnn-by-pytorch/`` is a folder, not a package): ``import _paths`` before them."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "cnn-by-pytorch")]
