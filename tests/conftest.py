"""Shared fixtures: small synthetic Fashion-MNIST files, and the real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from fashion_mnist import REPO_ROOT
from fashion_mnist.data import SHA256, SYSTEM_DIR, find_file, write_idx


def make_synthetic(folder: Path, n_train: int = 200, n_test: int = 50, seed: int = 0,
                   suffix: str = ".gz") -> dict:  # fmt: skip
    """Write four small valid IDX files (balanced labels) into ``folder``; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for kind, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        write_idx(folder / f"{kind}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{kind}-labels-idx1-ubyte{suffix}", labels)
        arrays[kind] = (images, labels)
    return arrays


def _real_data_dir() -> Path | None:
    candidates = [os.environ.get("FASHION_MNIST_DIR"), REPO_ROOT / "data", SYSTEM_DIR]
    for folder in filter(None, candidates):
        try:
            for base in SHA256:
                find_file(folder, base)
        except FileNotFoundError:
            continue
        return Path(folder)
    return None


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    folder = _real_data_dir()
    if folder is None:
        pytest.skip(
            "real Fashion-MNIST not found (data/, $FASHION_MNIST_DIR or "
            f"{SYSTEM_DIR}); install Debian's dataset-fashion-mnist or run `make data`"
        )
    return folder


@pytest.fixture
def synthetic_dir(tmp_path) -> Path:
    make_synthetic(tmp_path)
    return tmp_path


NOTEBOOKS = {"cnn-by-myself": REPO_ROOT / "cnn-by-myself" / "demo.ipynb",
             "cnn-by-pytorch": REPO_ROOT / "cnn-by-pytorch" / "demo.ipynb"}  # fmt: skip


def execute_quick(notebook: Path, out: Path, data_dir: Path, real_data_dir: Path) -> dict:
    """Execute ``notebook`` with QUICK=1 into ``out``; return the executed notebook.

    The PyTorch notebook's ensemble reads the NumPy notebook's run beside ``out``.
    """
    overrides = {"QUICK": "1", "OUT_DIR": str(out), "DATA_DIR": str(data_dir),
                 "FASHION_MNIST_DIR": str(real_data_dir),
                 "NUMPY_RUN_DIR": str(out.parent / "cnn-by-myself")}  # fmt: skip
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        nb = nbformat.read(notebook, as_version=4)
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()  # fmt: skip
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    (out.parent / "notebooks").mkdir(exist_ok=True)
    nbformat.write(nb, out.parent / "notebooks" / f"{notebook.parent.name}.ipynb")
    return nb


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory, real_data_dir) -> Path:
    """A folder laid out like ``runs/quick/``: each notebook's quick run and executed copy.

    The NumPy notebook runs first: the PyTorch notebook's ensemble reads its model.
    """
    root = tmp_path_factory.mktemp("quick")
    for name, notebook in NOTEBOOKS.items():
        execute_quick(notebook, root / name, root / "data", real_data_dir)
    return root
