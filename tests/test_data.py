"""The IDX loader: round trips, every corruption named, and a fuzzing property."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from conftest import make_synthetic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fashion_mnist.data import DatasetError, load_mnist, write_idx

IMAGES = "t10k-images-idx3-ubyte"
LABELS = "t10k-labels-idx1-ubyte"


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_round_trip(tmp_path, suffix):
    arrays = make_synthetic(tmp_path, suffix=suffix)
    for kind in ("train", "t10k"):
        images, labels = load_mnist(tmp_path, kind)
        assert images.dtype == np.uint8 and labels.dtype == np.uint8
        assert images.shape == (len(labels), 784)
        np.testing.assert_array_equal(images, arrays[kind][0])
        np.testing.assert_array_equal(labels, arrays[kind][1])
    assert images.flags.writeable


def test_gz_preferred_and_raw_read(tmp_path):
    make_synthetic(tmp_path, suffix="")
    raw = load_mnist(tmp_path, "t10k")
    make_synthetic(tmp_path, seed=1)  # .gz twins with other content
    gz = load_mnist(tmp_path, "t10k")
    assert not np.array_equal(raw[0], gz[0])


def test_missing_file_names_it_and_how_to_get_data(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz.*make data"):
        load_mnist(tmp_path, "train")


def test_bad_kind(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        load_mnist(tmp_path, "test")


def _raw(tmp_path, name):
    return gzip.decompress((tmp_path / f"{name}.gz").read_bytes())


def _put(tmp_path, name, data: bytes, gz=True):
    (tmp_path / f"{name}.gz").write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize(
    "name, mutate, message",
    [
        (IMAGES, lambda b: b[:-784], r"truncated: header announces 50 images, payload holds 49$"),
        (IMAGES, lambda b: b[:-1], r"truncated: header announces 50 images, payload holds 49 and 783 bytes"),
        (IMAGES, lambda b: b + b"\0", r"trailing data: header announces 50 images"),
        (IMAGES, lambda b: b[:10], r"truncated header: 10 of 16 bytes"),
        (IMAGES, lambda b: struct.pack(">I", 2049) + b[4:], r"bad magic number 2049 \(expected 2051"),
        (IMAGES, lambda b: b[:8] + struct.pack(">II", 28, 27) + b[16:], r"header says 28x27 images"),
        (IMAGES, lambda b: b[:4] + struct.pack(">I", 2**32 - 1) + b[8:], r"truncated: header announces 4294967295 images"),
        (LABELS, lambda b: b[:-1], r"truncated: header announces 50 labels, payload holds 49"),
        (LABELS, lambda b: struct.pack(">I", 2051) + b[4:], r"bad magic number 2051 \(expected 2049"),
        (LABELS, lambda b: b[:-1] + b"\x0c", r"label 12 at index 49 is outside 0\.\.9"),
        (LABELS, lambda b: b[:4] + struct.pack(">I", 49) + b[8:-1],
         r"t10k-images-idx3-ubyte\.gz holds 50 images but t10k-labels-idx1-ubyte\.gz holds 49"),
    ],
)  # fmt: skip
def test_corruption_raises_dataset_error_naming_the_file(synthetic_dir, name, mutate, message):
    _put(synthetic_dir, name, mutate(_raw(synthetic_dir, name)))
    with pytest.raises(DatasetError, match=message) as info:
        load_mnist(synthetic_dir, "t10k")
    assert str(info.value).startswith("t10k-")  # names the file first


def test_corrupt_gzip_stream(synthetic_dir):
    data = bytearray((synthetic_dir / f"{IMAGES}.gz").read_bytes())
    data[-6] ^= 0xFF  # inside the CRC/size trailer
    (synthetic_dir / f"{IMAGES}.gz").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=rf"{IMAGES}\.gz: corrupt gzip stream"):
        load_mnist(synthetic_dir, "t10k")


def test_truncated_gzip(synthetic_dir):
    data = (synthetic_dir / f"{IMAGES}.gz").read_bytes()
    (synthetic_dir / f"{IMAGES}.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=rf"{IMAGES}\.gz: "):
        load_mnist(synthetic_dir, "t10k")


def test_dataset_error_is_value_error():
    assert issubclass(DatasetError, ValueError)


def test_write_idx_validates(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_idx(tmp_path / "x.gz", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="shape"):
        write_idx(tmp_path / "x.gz", np.zeros((2, 3), dtype=np.uint8))
    assert not list(tmp_path.iterdir())  # nothing half-written


_VALID = {}


def _valid_bytes(tmp_path_factory):
    if not _VALID:
        folder = tmp_path_factory.mktemp("valid")
        make_synthetic(folder, n_train=20, n_test=20)
        for name in (IMAGES, LABELS):
            _VALID[name] = (folder / f"{name}.gz").read_bytes()
            _VALID[name + "/raw"] = gzip.decompress(_VALID[name])
    return _VALID


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from([IMAGES, LABELS]),
    compressed=st.booleans(),
    action=st.sampled_from(["truncate", "flip", "random"]),
    where=st.floats(0, 1, exclude_max=True),
    bit=st.integers(0, 7),
    noise=st.binary(max_size=400),
)
def test_fuzz_only_valid_arrays_or_dataset_error(tmp_path_factory, target, compressed, action,
                                                  where, bit, noise):  # fmt: skip
    valid = _valid_bytes(tmp_path_factory)
    folder = tmp_path_factory.mktemp("fuzz")
    data = bytearray(valid[target] if compressed else valid[target + "/raw"])
    pos = int(where * len(data))
    if action == "truncate":
        data = data[:pos]
    elif action == "flip":
        data[pos] ^= 1 << bit
    else:
        data = bytearray(noise)
    other = LABELS if target == IMAGES else IMAGES
    (folder / f"{target}.gz").write_bytes(bytes(data))
    (folder / f"{other}.gz").write_bytes(valid[other])
    try:
        images, labels = load_mnist(folder, "t10k")
    except DatasetError:
        return
    assert images.dtype == np.uint8 and images.shape == (len(labels), 784)
    assert labels.dtype == np.uint8 and labels.max() <= 9
