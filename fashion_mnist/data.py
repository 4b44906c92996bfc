"""Fashion-MNIST: a validating IDX loader, the fetch chain, the validation split and class names.

The four files are IDX: a big-endian header (magic, count, rows, cols for images; magic, count for
labels) followed by raw uint8 bytes, usually gzipped. Everything a corrupt file could get wrong is
checked before an array is returned, and every problem raises :class:`DatasetError` naming the
file, so a truncated download never turns into a silently short training set.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import struct
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import REPO_ROOT
from .files import atomic_write, read_json, write_json

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CLASS_NAMES_ZH = (
    "T恤/上衣",
    "裤子",
    "套头衫",
    "连衣裙",
    "外套",
    "凉鞋",
    "衬衫",
    "运动鞋",
    "包",
    "短靴",
)
NUM_CLASSES = len(CLASS_NAMES)
ROWS = COLS = 28
PIXELS = ROWS * COLS

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
KINDS = ("train", "t10k")

# SHA-256 of the *decompressed* IDX bytes: the same for every faithful copy, however re-gzipped.
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian/Ubuntu: dataset-fashion-mnist
ENV_VAR = "FASHION_MNIST_DIR"
DEFAULT_DIR = REPO_ROOT / "data"

HOW_TO_GET = (
    "Get the data in one of three ways: (1) `make data` downloads it from the upstream mirror "
    f"({MIRROR}); (2) `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu) puts it in "
    f"{SYSTEM_DIR}; (3) set {ENV_VAR} to a folder holding the four .gz files."
)

_CHUNK = 1 << 20


class DatasetError(ValueError):
    """A Fashion-MNIST file is corrupt, truncated, mislabelled or fails its checksum."""


def _base_name(kind: str, what: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return f"{kind}-{what}-idx{3 if what == 'images' else 1}-ubyte"


def find_file(folder: str | os.PathLike, base: str) -> Path:
    """The ``.gz`` file in ``folder``, else the gunzipped one of the same name."""
    folder = Path(folder)
    for candidate in (folder / f"{base}.gz", folder / base):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{folder / (base + '.gz')}: no such file (nor {base}). {HOW_TO_GET}")


def _open(path: Path):
    """Open for reading, decompressing when the file starts with gzip's magic bytes.

    Sniffing rather than trusting the suffix also reads ``.part`` files and misnamed copies.
    """
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_exactly(f, n: int, path: Path) -> bytes:
    """Read up to ``n`` bytes in chunks, so a header that lies cannot make us allocate its claim."""
    out = bytearray()
    try:
        while len(out) < n:
            chunk = f.read(min(_CHUNK, n - len(out)))
            if not chunk:
                break
            out += chunk
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path.name}: corrupt gzip stream: {e}") from None
    return bytes(out)


def _read_idx(path: Path, magic: int, header_len: int, item_shape: tuple[int, ...]) -> np.ndarray:
    item_size = int(np.prod(item_shape, dtype=np.int64))
    what = "images" if magic == IMAGE_MAGIC else "labels"
    with _open(path) as f:
        header = _read_exactly(f, header_len, path)
        if len(header) < header_len:
            raise DatasetError(
                f"{path.name}: truncated header: {len(header)} of {header_len} bytes"
            )
        fields = struct.unpack(f">{header_len // 4}I", header)
        if fields[0] != magic:
            raise DatasetError(
                f"{path.name}: bad magic number {fields[0]} (expected {magic} for an {what} file)"
            )
        count = fields[1]
        if fields[2:] and tuple(fields[2:]) != (ROWS, COLS):
            raise DatasetError(
                f"{path.name}: header says {fields[2]}x{fields[3]} images, expected {ROWS}x{COLS}"
            )
        expected = count * item_size
        payload = _read_exactly(f, expected + 1, path)  # one byte more reveals trailing data
    if len(payload) < expected:
        held, extra = divmod(len(payload), item_size)
        partial = f" and {extra} bytes of one more" if extra else ""
        raise DatasetError(
            f"{path.name}: truncated: header announces {count} {what}, "
            f"payload holds {held}{partial}"
        )
    if len(payload) > expected:
        raise DatasetError(
            f"{path.name}: trailing data: header announces {count} {what} ({expected} bytes), "
            "payload holds more"
        )
    return np.frombuffer(bytearray(payload), dtype=np.uint8).reshape((count, *item_shape))


def load_mnist(path: str | os.PathLike = DEFAULT_DIR, kind: str = "train"):
    """Load ``kind`` ('train' or 't10k') from ``path``: uint8 images (N, 784) and labels (N,).

    Reads ``{kind}-images-idx3-ubyte.gz`` (or its gunzipped twin) and the matching labels, the
    original report's call shape. Raises :class:`DatasetError` for any corrupt file and
    ``FileNotFoundError`` for a missing one.
    """
    images_path = find_file(path, _base_name(kind, "images"))
    labels_path = find_file(path, _base_name(kind, "labels"))
    images = _read_idx(images_path, IMAGE_MAGIC, 16, (PIXELS,))
    labels = _read_idx(labels_path, LABEL_MAGIC, 8, ())
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path.name} holds {len(images)} images but {labels_path.name} holds "
            f"{len(labels)} labels"
        )
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise DatasetError(
            f"{labels_path.name}: label {labels[bad[0]]} at index {bad[0]} is outside "
            f"0..{NUM_CLASSES - 1} ({bad.size} such labels)"
        )
    return images, labels


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file, gzipped when ``path`` ends in ``.gz``; atomically.

    (N,) is a label file; (N, 784) or (N, rows, cols) an image file (784 means 28x28).
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"{path.name}: write_idx needs a uint8 array, got {array.dtype}")
    if array.ndim == 1:
        header = struct.pack(">II", LABEL_MAGIC, len(array))
    elif array.ndim == 2 and array.shape[1] == PIXELS:
        header = struct.pack(">IIII", IMAGE_MAGIC, len(array), ROWS, COLS)
    elif array.ndim == 3:
        header = struct.pack(">IIII", IMAGE_MAGIC, *array.shape)
    else:
        raise ValueError(f"{path.name}: cannot write an array of shape {array.shape} as IDX")
    with atomic_write(path, "wb") as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
                f.write(header + np.ascontiguousarray(array).tobytes())
        else:
            raw.write(header + np.ascontiguousarray(array).tobytes())


# --- Fetching and verifying -----------------------------------------------------------------


def content_sha256(path: Path) -> str:
    """SHA-256 of the decompressed content (repackaged .gz files differ only in compression)."""
    digest = hashlib.sha256()
    with _open(path) as f:
        try:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetError(f"{path.name}: corrupt gzip stream: {e}") from None
    return digest.hexdigest()


class _VerifiedCache:
    """Remembers files already verified (by size and mtime) so later runs skip re-hashing."""

    def __init__(self, folder: Path):
        self.path = folder / ".verified.json"
        try:
            self.entries = read_json(self.path) if self.path.is_file() else {}
        except ValueError:  # a damaged cache only costs a re-hash
            self.entries = {}

    @staticmethod
    def _key(path: Path) -> list:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]

    def is_verified(self, path: Path, sha: str) -> bool:
        return self.entries.get(path.name) == [*self._key(path), sha]

    def remember(self, path: Path, sha: str) -> None:
        self.entries[path.name] = [*self._key(path), sha]
        with contextlib.suppress(OSError):  # a read-only folder (a system copy) only costs a re-hash
            write_json(self.path, self.entries)


def _verify(path: Path, expected: str, cache: _VerifiedCache | None = None) -> None:
    if cache is not None and cache.is_verified(path, expected):
        return
    actual = content_sha256(path)
    if actual != expected:
        raise DatasetError(
            f"{path}: content SHA-256 {actual} does not match the expected {expected}"
        )
    if cache is not None:
        cache.remember(path, expected)


def _copy_verified(source: Path, target: Path, expected: str) -> None:
    """Copy into ``target`` through a ``.part`` file that is renamed only once verified."""
    _verify(source, expected)
    part = target.with_name(target.name + ".part")
    try:
        shutil.copyfile(source, part)
        _verify(part, expected)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _download(url: str, target: Path, expected: str, timeout: float, retries: int) -> None:
    from tqdm.auto import tqdm

    part = target.with_name(target.name + ".part")
    last_error: Exception | None = None
    try:
        for attempt in range(1, retries + 1):
            try:
                with (
                    urllib.request.urlopen(url, timeout=timeout) as response,
                    open(part, "wb") as f,
                ):
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                        while chunk := response.read(_CHUNK):
                            f.write(chunk)
                            bar.update(len(chunk))
                break
            except urllib.error.HTTPError as e:
                if e.code < 500:  # 404 and friends will not get better by retrying
                    raise DatasetError(f"{url}: HTTP {e.code} {e.reason}") from None
                last_error = e
            except (OSError, TimeoutError) as e:  # URLError, timeouts, resets
                last_error = e
            if attempt < retries:
                time.sleep(min(2.0**attempt, 10.0) * 0.1)
        else:
            raise DatasetError(f"{url}: download failed after {retries} tries: {last_error}")
        try:
            _verify(part, expected)
        except DatasetError as e:
            raise DatasetError(f"{url}: downloaded file failed verification: {e}") from None
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def ensure_dataset(
    dest: str | os.PathLike = DEFAULT_DIR,
    *,
    mirror: str = MIRROR,
    checksums: Mapping[str, str] = SHA256,
    system_dir: str | os.PathLike = SYSTEM_DIR,
    environ: Mapping[str, str] = os.environ,
    timeout: float = 30.0,
    retries: int = 3,
) -> Path:
    """Find or fetch the four files into ``dest`` and verify their content; returns ``dest``.

    Sources, in order: ``dest`` itself; ``$FASHION_MNIST_DIR``; the Debian package's folder
    (copied); the upstream ``mirror`` over HTTP(S). A file already in ``dest`` whose content does
    not verify is never deleted or overwritten: that raises :class:`DatasetError`.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cache = _VerifiedCache(dest)
    folders = [("$" + ENV_VAR, Path(environ[ENV_VAR]))] if environ.get(ENV_VAR) else []
    folders.append(("system package folder", Path(system_dir)))
    for base, expected in checksums.items():
        try:
            existing = find_file(dest, base)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            try:
                _verify(existing, expected, cache)
            except DatasetError as e:
                raise DatasetError(
                    f"{e}. The file was left untouched: move it away (or delete it) and run "
                    "again to fetch a good copy."
                ) from None
            continue
        target = dest / f"{base}.gz"
        failures = []
        for label, folder in folders:
            try:
                source = find_file(folder, base)
                _copy_verified(source, dest / source.name, expected)
                print(f"{base}: copied from {label} {folder}", file=sys.stderr)
                break
            except (FileNotFoundError, DatasetError) as e:
                failures.append(f"{label}: {e}")
        else:
            try:
                _download(mirror.rstrip("/") + f"/{base}.gz", target, expected, timeout, retries)
            except DatasetError as e:
                failures.append(f"mirror: {e}")
                raise DatasetError(
                    f"{base}: no source worked.\n  " + "\n  ".join(failures) + f"\n{HOW_TO_GET}"
                ) from None
        cache.remember(find_file(dest, base), expected)
    return dest


# --- Splits -----------------------------------------------------------------------------------


def validation_split(labels: np.ndarray, size: int = 5000, seed: int = 0):
    """Indices (train, val) of a deterministic stratified split: ``size`` images, equal per class.

    Model selection uses the validation part, never the test set.
    """
    from sklearn.model_selection import train_test_split

    train_idx, val_idx = train_test_split(
        np.arange(len(labels)), test_size=size, stratify=labels, random_state=seed
    )
    return np.sort(train_idx), np.sort(val_idx)


@dataclass(frozen=True)
class Splits:
    """uint8 images (N, 784) and labels (N,) for training, validation and testing."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def class_counts(labels: np.ndarray) -> list[int]:
    """Images per class, as a plain list of 10 counts."""
    return np.bincount(labels, minlength=NUM_CLASSES).tolist()


def _stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    return validation_split(labels, size=size, seed=seed)[1]


def load_splits(
    path: str | os.PathLike = DEFAULT_DIR,
    val_size: int = 5000,
    seed: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
) -> Splits:
    """Train/validation/test arrays; ``train_size``/``test_size`` take stratified subsets (quick)."""
    images, labels = load_mnist(path, "train")
    test_images, test_labels = load_mnist(path, "t10k")
    train_idx, val_idx = validation_split(labels, val_size, seed)
    if train_size is not None and train_size < len(train_idx):
        train_idx = train_idx[_stratified_subset(labels[train_idx], train_size, seed)]
    if test_size is not None and test_size < len(test_labels):
        keep = np.sort(_stratified_subset(test_labels, test_size, seed))
        test_images, test_labels = test_images[keep], test_labels[keep]
    return Splits(
        images[train_idx], labels[train_idx], images[val_idx], labels[val_idx],
        test_images, test_labels,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Find, fetch and verify Fashion-MNIST.")
    parser.add_argument("--dest", default=str(DEFAULT_DIR), help="folder for the four files")
    args = parser.parse_args(argv)
    try:
        dest = ensure_dataset(args.dest)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for kind in KINDS:
        images, labels = load_mnist(dest, kind)
        print(f"{kind}: {len(images)} images, {np.bincount(labels).tolist()} per class, verified")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
