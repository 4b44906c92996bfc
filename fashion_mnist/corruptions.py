"""Corrupted copies of Fashion-MNIST images, to measure how robust the models are.

In the spirit of MNIST-C (Mu & Gilmer, 2019) and Fashion-MNIST-C (Weiss & Tonella, 2022), made
locally and deterministically from the test set instead of downloaded: ten corruptions, each at
severities 1 (mild), 2 and 3 (strong); ``hflip`` has the one severity 1 (a mirror image has no
degrees). Severity 0 is the clean image. Parameters per severity are in :data:`LEVELS`.

=============== ==================================================== =========================
corruption      what it does                                         severity 1 / 2 / 3
=============== ==================================================== =========================
gaussian_noise  adds N(0, sigma^2) to every pixel                    sigma 0.08 / 0.18 / 0.38
shot_noise      Poisson photon noise: Poisson(x * lam) / lam         lam 60 / 12 / 3
gaussian_blur   Gaussian blur                                        sigma 0.6 / 1.0 / 1.5 px
rotate          rotation about the centre, random direction          10 / 20 / 30 degrees
shift           translation in a random direction                    2 / 4 / 6 px
scale           shrinks about the centre                             0.85 / 0.7 / 0.55
contrast        pulls pixels towards the image's mean                contrast 0.5 / 0.3 / 0.15
brightness      adds a constant                                      +0.1 / +0.25 / +0.4
hflip           mirrors left-right                                   (one severity)
occlusion       a black or grey square at a random place             side 6 / 10 / 14 px
=============== ==================================================== =========================

Intensities are on a 0-1 scale (1 = 255). Images are uint8 (N, 784) in and out; the geometric
corruptions use bilinear interpolation, filling with black (the background). Each corruption
and severity draws from its own ``np.random.default_rng`` seeded by (seed, corruption, severity),
so the result does not depend on which others were made, or in which order.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy import ndimage

from .data import COLS, ROWS

LEVELS: dict[str, tuple] = {
    "gaussian_noise": (0.08, 0.18, 0.38),
    "shot_noise": (60, 12, 3),
    "gaussian_blur": (0.6, 1.0, 1.5),
    "rotate": (10, 20, 30),
    "shift": (2, 4, 6),
    "scale": (0.85, 0.7, 0.55),
    "contrast": (0.5, 0.3, 0.15),
    "brightness": (0.1, 0.25, 0.4),
    "hflip": (None,),
    "occlusion": (6, 10, 14),
}
CORRUPTIONS = tuple(LEVELS)


def severities(name: str) -> tuple[int, ...]:
    """The severities of corruption ``name``: (1, 2, 3), or (1,) for hflip."""
    return tuple(range(1, len(LEVELS[name]) + 1))


def _rng(name: str, severity: int, seed: int) -> np.random.Generator:
    # crc32 of the name: a stable number (Python's hash() of a str changes between runs)
    return np.random.default_rng([seed, zlib.crc32(name.encode()), severity])


def _warp(x: np.ndarray, matrices: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each image i resampled so that output pixel p (about the centre) reads input pixel
    ``matrices[i] @ p + centre - shifts[i]``: bilinear, black outside."""
    n = x.shape[0]
    centre = np.array([(ROWS - 1) / 2, (COLS - 1) / 2])
    grid = np.stack(np.meshgrid(np.arange(ROWS), np.arange(COLS), indexing="ij"), -1) - centre
    source = np.einsum("nij,rcj->nrci", matrices, grid) + centre - shifts[:, None, None, :]
    index = np.broadcast_to(np.arange(n)[:, None, None], (n, ROWS, COLS))
    coords = np.stack([index, source[..., 0], source[..., 1]])
    return ndimage.map_coordinates(x, coords, order=1, mode="constant", cval=0.0)


def _rotate(x, degrees, rng):
    angle = np.deg2rad(degrees) * rng.choice([-1.0, 1.0], size=len(x))
    cos, sin = np.cos(angle), np.sin(angle)
    matrices = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)
    return _warp(x, matrices, np.zeros((len(x), 2)))


def _shift(x, pixels, rng):
    direction = rng.uniform(0, 2 * np.pi, size=len(x))
    shifts = pixels * np.stack([np.sin(direction), np.cos(direction)], -1)
    return _warp(x, np.broadcast_to(np.eye(2), (len(x), 2, 2)), shifts)


def _scale(x, factor, rng):
    return _warp(x, np.broadcast_to(np.eye(2) / factor, (len(x), 2, 2)), np.zeros((len(x), 2)))


def _occlusion(x, side, rng):
    n = len(x)
    top, left = (rng.integers(0, ROWS - side + 1, size=n) for _ in range(2))
    fill = rng.choice([0.0, 128.0], size=n)  # black or mid grey
    rows, cols = np.arange(ROWS)[None, :, None], np.arange(COLS)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + side)
              & (cols >= left[:, None, None]) & (cols < left[:, None, None] + side))  # fmt: skip
    return np.where(inside, fill[:, None, None], x)


def _apply(name: str, x: np.ndarray, level, rng: np.random.Generator) -> np.ndarray:
    """Corruption ``name`` at parameter ``level`` of float images ``x`` (N, 28, 28) in 0-255."""
    if name == "gaussian_noise":
        return x + rng.normal(0.0, level * 255, size=x.shape)
    if name == "shot_noise":
        return rng.poisson(x / 255 * level) / level * 255
    if name == "gaussian_blur":
        return ndimage.gaussian_filter(x, sigma=(0, level, level), mode="constant")
    if name == "contrast":
        mean = x.mean(axis=(1, 2), keepdims=True)
        return (x - mean) * level + mean
    if name == "brightness":
        return x + level * 255
    if name == "hflip":
        return x[:, :, ::-1]
    geometric = {"rotate": _rotate, "shift": _shift, "scale": _scale, "occlusion": _occlusion}
    return geometric[name](x, level, rng)


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``images`` (uint8, N x 784) with corruption ``name`` at ``severity`` (0 = unchanged)."""
    if name not in LEVELS:
        raise ValueError(f"unknown corruption {name!r}; one of {', '.join(CORRUPTIONS)}")
    if severity != 0 and severity not in severities(name):
        raise ValueError(f"{name} has severities {severities(name)} (and 0, clean), not {severity}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != ROWS * COLS:
        raise ValueError(f"expected uint8 images (N, {ROWS * COLS}), got {images.dtype} "
                         f"{images.shape}")  # fmt: skip
    if severity == 0:
        return images.copy()
    x = images.reshape(-1, ROWS, COLS).astype(np.float64)
    out = _apply(name, x, LEVELS[name][severity - 1], _rng(name, severity, seed))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(len(images), ROWS * COLS)


def all_corruptions() -> list[tuple[str, int]]:
    """Every (name, severity) pair, in table order."""
    return [(name, s) for name in CORRUPTIONS for s in severities(name)]


def robustness_table(record: dict):
    """A robustness record (``experiments/robustness/robustness.json``) as a table: a row per
    corruption and severity, clean first (severity 0), then the mean over all 28 corrupted
    sets ("mean corrupted"); a column per model (its label); test accuracy in each cell."""
    import pandas as pd

    labels = {key: model["label"] for key, model in record["models"].items()}
    rows = [{"corruption": "clean", "severity": 0, "model": labels[key],
             "accuracy": model["clean_accuracy"]} for key, model in record["models"].items()]  # fmt: skip
    rows += [{**row, "model": labels[row["model"]]} for row in record["rows"]]
    long = pd.DataFrame(rows)
    table = long.pivot(index=["corruption", "severity"], columns="model", values="accuracy")
    order = [("clean", 0), *((r["corruption"], r["severity"]) for r in record["rows"])]
    table = table.reindex(list(dict.fromkeys(order)))[list(labels.values())]
    table.loc[("mean corrupted", ""), :] = table.drop(index="clean", level=0).mean()
    table.columns.name = None
    return table
