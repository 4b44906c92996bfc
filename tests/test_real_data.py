"""The real Fashion-MNIST files (skipped with a reason when absent; CI installs them)."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_mnist.data import (
    CLASS_NAMES,
    SHA256,
    content_sha256,
    find_file,
    load_mnist,
    load_splits,
)

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def train(real_data_dir):
    return load_mnist(real_data_dir, "train")


def test_counts_and_classes(real_data_dir, train):
    images, labels = train
    test_images, test_labels = load_mnist(real_data_dir, "t10k")
    assert images.shape == (60000, 784) and test_images.shape == (10000, 784)
    assert np.bincount(labels).tolist() == [6000] * 10
    assert np.bincount(test_labels).tolist() == [1000] * 10
    assert CLASS_NAMES[labels[0]] == "Ankle boot" and labels[0] == 9


@pytest.mark.parametrize("base", sorted(SHA256))
def test_sha256(real_data_dir, base):
    assert content_sha256(find_file(real_data_dir, base)) == SHA256[base]


def test_validation_split_is_stratified_disjoint_and_deterministic(real_data_dir, train):
    splits = load_splits(real_data_dir)
    assert len(splits.val_labels) == 5000 and len(splits.train_labels) == 55000
    assert np.bincount(splits.val_labels).tolist() == [500] * 10
    assert np.bincount(splits.train_labels).tolist() == [5500] * 10
    # Disjoint and complete: together they are the training set, each image exactly once.
    images, _ = train
    both = np.concatenate([splits.train_images, splits.val_images])
    as_rows = lambda a: np.sort(a.view(f"V{a.shape[1]}").ravel())  # noqa: E731
    assert np.array_equal(as_rows(both), as_rows(images))
    again = load_splits(real_data_dir)
    np.testing.assert_array_equal(again.val_images, splits.val_images)
