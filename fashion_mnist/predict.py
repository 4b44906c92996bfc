"""Classify your own photos of clothes with the trained models.

Run from the repository root, after a full run (``make run``)::

    python -m fashion_mnist.predict shirt.jpg boot.png            # top 3 of both models
    python -m fashion_mnist.predict shirt.jpg --model numpy --json
    python -m fashion_mnist.predict photos/*.jpg --save-preprocessed seen/
    python -m fashion_mnist.predict shirt.jpg --run-dir runs/quick  # a quick run's models

The models only know Fashion-MNIST: 28x28 greyscale, a light garment centred on black. A photo
becomes such an image by the steps the dataset itself was made with from Zalando's product shots
(its README, "How to make the dataset"), here with Pillow:

1. Orient and flatten: turn the photo as its EXIF tag says (phones store it sideways), lay any
   transparent parts on white, the background of a product shot, and reduce a large photo to
   at most 1024 pixels a side (only for speed).
2. Trim: estimate the background colour from the border pixels (their median) and crop to the
   box around the pixels farther than 5% of the RGB range from it; speckles (JPEG noise, dust)
   are removed first with a 3x3 median filter. Nothing left: "no garment found".
3. Resize the longest edge to 28 pixels, keeping the proportions (Lanczos filter; the dataset
   skipped rows and columns, which aliases a large photo).
4. Sharpen (unsharp mask, radius 1): the small image's outlines crisp, as in the dataset.
5. Pad the short edge to 28 with the background colour, the garment centred.
6. Negate, so the garment is light on a dark background (skipped when the background is already
   dark, e.g. for an image taken from the dataset), and convert to 8-bit greyscale.
7. Levels (not in the dataset's recipe): stretch so that the background is exactly black, as in
   every training image; a photo on grey paper otherwise gives a grey background.

Every model sees the same 784 bytes; ``--save-preprocessed`` writes them as a 28x28 PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from . import REPO_ROOT
from .data import CLASS_NAMES, CLASS_NAMES_ZH, ROWS
from .files import read_json, repo_relative

TOLERANCE = 0.05 * 255 * np.sqrt(3)  # 5% of the largest distance in RGB space
MEDIAN_MIN_SIDE = 64  # smaller images are not de-speckled: a 3x3 median would erase thin parts
MAX_SIDE = 1024  # larger photos are reduced first: a garment 28 pixels tall needs no more
TOP_K = 3
MODEL_FOLDERS = {"numpy": "cnn-by-myself", "pytorch": "cnn-by-pytorch"}
NO_MODEL_HINT = "run `make run` first (or `make run QUICK=1` and pass --run-dir runs/quick)"

Predictor = Callable[[np.ndarray], np.ndarray]  # uint8 (N, 784) -> probabilities (N, 10)


class ImageError(ValueError):
    """A file that cannot be turned into a 28x28 image; the message says why."""


class NoModelError(FileNotFoundError):
    """No trained checkpoint where a run writes it."""


def open_image(path: str | Path) -> Image.Image:
    """The decoded image in ``path``, or :class:`ImageError` saying what is wrong with the file."""
    path = Path(path)
    if path.is_dir():
        raise ImageError("is a folder, not an image")
    if not path.exists():
        raise ImageError("no such file")
    if path.stat().st_size == 0:
        raise ImageError("empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later
            return image.copy()  # usable once the file is closed; flatten turns it upright
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read (PNG, JPEG, WebP, ...)") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"cannot decode the image (truncated or corrupt?): {e}") from None


def flatten(image: Image.Image) -> Image.Image:
    """Step 1: upright, RGB, transparent parts laid on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    image = image.convert("RGB")
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BOX)  # a 12-megapixel photo: faster
    return image


def background_colour(rgb: np.ndarray) -> np.ndarray:
    """The median colour of the one-pixel border of an (H, W, 3) array."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return np.median(border, axis=0)


def luminance(colour: np.ndarray) -> float:
    """The grey level Pillow's ``convert("L")`` gives an RGB colour (ITU-R 601-2)."""
    return float(np.dot(colour, (0.299, 0.587, 0.114)))


def trim(image: Image.Image, background: np.ndarray) -> Image.Image:
    """Step 2: crop to the pixels that differ from ``background``; ImageError when none do."""
    rgb = np.asarray(image, dtype=np.float32)
    differs = np.linalg.norm(rgb - background, axis=2) > TOLERANCE
    mask = Image.fromarray(differs.astype(np.uint8) * 255)
    if min(image.size) >= MEDIAN_MIN_SIDE:
        mask = mask.filter(ImageFilter.MedianFilter(3))
    box = mask.getbbox()
    if box is None:
        raise ImageError("no garment found: the image is all background")
    return image.crop(box)


def preprocess(source: str | Path | Image.Image) -> np.ndarray:
    """A photo (a path or a PIL image) as the models see it: uint8 (784,), light on black."""
    image = flatten(open_image(source) if not isinstance(source, Image.Image) else source)
    background = background_colour(np.asarray(image))
    image = trim(image, background)
    w, h = image.size  # step 3: longest edge to 28
    size = (ROWS, max(1, round(h * ROWS / w))) if w >= h else (max(1, round(w * ROWS / h)), ROWS)
    image = image.resize(size, Image.Resampling.LANCZOS)
    image = image.filter(ImageFilter.UnsharpMask(radius=1, percent=100, threshold=0))  # step 4
    canvas = Image.new("RGB", (ROWS, ROWS), tuple(int(v) for v in background))  # step 5
    canvas.paste(image, ((ROWS - size[0]) // 2, (ROWS - size[1]) // 2))
    grey = np.asarray(canvas.convert("L"), dtype=np.float32)  # step 6
    back = luminance(background)
    if back >= 128:  # a light background: negate
        grey, back = 255 - grey, 255 - back
    levelled = (grey - back) * 255 / (255 - back)  # step 7: background to 0
    return np.clip(np.rint(levelled), 0, 255).astype(np.uint8).reshape(-1)


def as_photo(pixels: np.ndarray, side: int = 300, margin: int = 60) -> Image.Image:
    """A dataset image as a product photo would show it: a dark garment on white, ``side``
    pixels square, with ``margin`` pixels of white around it; the way back is :func:`preprocess`.
    """
    garment = Image.fromarray(255 - np.asarray(pixels, dtype=np.uint8).reshape(ROWS, ROWS))
    photo = Image.new("RGB", (side + 2 * margin, side + 2 * margin), "white")
    photo.paste(garment.resize((side, side), Image.Resampling.BICUBIC).convert("RGB"),
                (margin, margin))
    return photo


@dataclass(frozen=True)
class Checkpoint:
    """A run recorded in a ``metrics.json``: which code loads it, and where its weights are."""

    kind: str  # "numpy" or "pytorch"
    label: str  # how tables and figures name the run, e.g. "NumPy tuned"
    path: Path | None  # None: recorded without one (e.g. a GPU run recorded from its log)
    test_accuracy: float | None  # as the run recorded it

    def missing(self) -> str | None:
        """Why the weights cannot be loaded, or None when they can."""
        if self.path is None:
            return "recorded without a checkpoint (e.g. a GPU run recorded from its log)"
        if not self.path.is_file():
            return f"checkpoint {repo_relative(self.path)} not found"
        return None


# name: (kind, key of the run in the folder's metrics.json (None for the main run at the top), label)
RUNS = {"numpy_tuned": ("numpy", None, "NumPy tuned"),
        "numpy_reproduction": ("numpy", "reproduction", "NumPy reproduction"),
        "pytorch_improved": ("pytorch", None, "PyTorch improved"),
        "pytorch_reproduction": ("pytorch", "reproduction", "PyTorch reproduction"),
        "pytorch_resnet": ("pytorch", "resnet", "ResNet")}  # fmt: skip


def checkpoints(run_dir: str | Path = REPO_ROOT) -> dict[str, Checkpoint]:
    """Every run recorded in the ``metrics.json`` of the model folders in ``run_dir``: the
    repository (a full run) or ``runs/quick``. The main runs (NumPy tuned, PyTorch improved) are
    at the top of each file, the others under their keys. The paths may not exist: checkpoints
    are not committed."""
    found = {}
    for name, (kind, key, label) in RUNS.items():
        folder = Path(run_dir) / MODEL_FOLDERS[kind]
        metrics = read_json(folder / "metrics.json") if (folder / "metrics.json").is_file() else {}
        record = metrics.get(key) if key else metrics
        if isinstance(record, dict) and "checkpoint" in record:
            path = folder / record["checkpoint"] if record["checkpoint"] else None
            found[name] = Checkpoint(kind, label, path, record.get("test_accuracy"))
    return found


def load_predictor(kind: str, path: Path, device: str = "cpu") -> Predictor:
    """The model in the checkpoint ``path`` as a function of uint8 (N, 784) images."""
    from .results import import_model_module

    if kind == "numpy":
        cnn = import_model_module("cnn-by-myself", "numpy_cnn")
        model = cnn.load(path)
        return lambda images: cnn.predict_proba(model, images)
    cnn = import_model_module("cnn-by-pytorch", "torch_cnn")
    model = cnn.load(path, device=device)  # evaluated as its run was: with flip TTA if it had it
    return lambda images: cnn.predict_proba(model, images)


def load_models(which: str = "both", run_dir: str | Path = REPO_ROOT
                ) -> tuple[dict[str, Predictor], list[str]]:  # fmt: skip
    """The main model of each kind in ``which`` ("numpy", "pytorch" or "both") from ``run_dir``,
    and a line for each one missing. :class:`NoModelError` when none of them is there."""
    recorded, models, missing = checkpoints(run_dir), {}, []
    for kind, name in (("numpy", "numpy_tuned"), ("pytorch", "pytorch_improved")):
        if which not in (kind, "both"):
            continue
        checkpoint = recorded.get(name)
        why = checkpoint.missing() if checkpoint else (
            f"{Path(run_dir) / MODEL_FOLDERS[kind] / 'metrics.json'} records none")
        if why:
            missing.append(f"no trained {kind} model: {why}")
        else:
            models[kind] = load_predictor(kind, checkpoint.path)
    if not models:
        raise NoModelError(f"{'; '.join(missing)}; {NO_MODEL_HINT}")
    return models, missing


def top_classes(probabilities: np.ndarray, k: int = TOP_K) -> list[dict]:
    """The ``k`` most probable classes of one image, most probable first."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"label": int(i), "name": CLASS_NAMES[i], "name_zh": CLASS_NAMES_ZH[i],
             "probability": round(float(probabilities[i]), 4)} for i in order]  # fmt: skip


def save_preprocessed(pixels: np.ndarray, path: str | Path, folder: Path, used: set) -> Path:
    """Write ``pixels`` as a 28x28 PNG in ``folder``, named after the photo, never twice."""
    stem, n = Path(path).stem, 1
    target = folder / f"{stem}.png"
    while target in used:
        n += 1
        target = folder / f"{stem}-{n}.png"
    used.add(target)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.reshape(ROWS, ROWS)).save(target)
    return target


def predict_files(paths: Sequence[str | Path], models: dict[str, Predictor],
                  save_dir: str | Path | None = None) -> list[dict]:  # fmt: skip
    """One row per file and model: {"file", "model", "top"}; {"file", "error"} for a bad file."""
    rows, good, used = [], {}, set()
    for path in paths:
        try:
            good[str(path)] = preprocess(path)
        except ImageError as e:
            rows.append({"file": str(path), "error": str(e)})
    if not good:
        return rows
    images = np.stack(list(good.values()))
    saved = {}
    if save_dir is not None:
        saved = {f: save_preprocessed(good[f], f, Path(save_dir), used) for f in good}
    for name, predict in models.items():
        for file, probabilities in zip(good, predict(images), strict=True):
            row = {"file": file, "model": name, "top": top_classes(probabilities)}
            if file in saved:
                row["preprocessed"] = str(saved[file])
            rows.append(row)
    order = {str(p): i for i, p in enumerate(paths)}  # back in the order given, errors too
    return sorted(rows, key=lambda r: order[r["file"]])


def format_row(row: dict) -> str:
    """A row as text: the error, or the file, model and its top classes with percentages."""
    if "error" in row:
        return f"{row['file']}: error: {row['error']}"
    lines = [f"{row['file']} ({row['model']}):"]
    lines += [f"  {c['probability']:6.1%}  {c['name']} ({c['name_zh']})" for c in row["top"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; 0 when every file was classified, 1 when some failed, 2 without models."""
    parser = argparse.ArgumentParser(prog="python -m fashion_mnist.predict",
                                     description="Top-3 Fashion-MNIST classes of your own photos.")
    parser.add_argument("files", nargs="+", help="image files (PNG, JPEG, WebP, ...)")
    parser.add_argument("--model", choices=("numpy", "pytorch", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--save-preprocessed", metavar="DIR",
                        help="also write each 28x28 image the models see, as PNG, into DIR")
    parser.add_argument("--run-dir", default=str(REPO_ROOT),
                        help="folder holding cnn-by-myself/ and cnn-by-pytorch/ of a run "
                             "(default: the repository, a full run; runs/quick for a quick one)")
    args = parser.parse_args(argv)
    try:
        models, missing = load_models(args.model, args.run_dir)
    except NoModelError as e:
        print(e, file=sys.stderr)
        return 2
    for line in missing:  # --model both with one of the two trained
        print(f"note: {line}; predicting with the {' and '.join(models)} model only",
              file=sys.stderr)
    rows = predict_files(args.files, models, args.save_preprocessed)
    for row in rows:
        text = json.dumps(row, ensure_ascii=False) if args.json else format_row(row)
        stream = sys.stderr if "error" in row and not args.json else sys.stdout
        print(text, file=stream, flush=True)  # flushed: errors and results stay in order
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
