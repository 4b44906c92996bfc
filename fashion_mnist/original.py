"""The original course report's numbers, the only ones we did not measure ourselves.

Source: ../shared/ORIGINAL_REPORT.md ("The original course report: facts to reproduce and
surpass"). Kept in one place so the PyTorch notebook and the report quote the same figures.
"""

import statistics

# The NumPy LeNet's test accuracy at each checkpoint (step -> accuracy).
NUMPY_TEST_ACC = {1000: 0.8016, 2000: 0.8264, 3000: 0.8462, 4000: 0.8534, 5000: 0.8612}

# The PyTorch CNN's test accuracy after each of its 20 epochs.
TORCH_TEST_ACC = (0.8797, 0.8907, 0.9011, 0.9083, 0.9161, 0.9136, 0.9232, 0.9252, 0.9255, 0.9258,
                  0.9299, 0.9248, 0.9300, 0.9257, 0.9243, 0.9257, 0.9266, 0.9289, 0.9271, 0.9264)  # fmt: skip

# Its first epoch's log line: "Epoch [1/20]  Train Loss: 0.4571  Acc: 0.8349  Test Loss: 0.3226
# Acc: 0.8797".
TORCH_EPOCH_1 = {"train_loss": 0.4571, "train_acc": 0.8349, "test_acc": TORCH_TEST_ACC[0]}


def torch_mean_test_acc(first: int, last: int, accs: tuple = TORCH_TEST_ACC) -> float | None:
    """The original PyTorch CNN's mean test accuracy over epochs ``first`` to ``last`` (counted
    from 1, both included); None when it did not run them all."""
    return statistics.fmean(accs[first - 1 : last]) if 1 <= first <= last <= len(accs) else None


RESULTS = {
    # the final NumPy checkpoint (step5000)
    "cnn-by-myself": NUMPY_TEST_ACC[5000],
    # the "best model": the epoch with the highest test accuracy, i.e. selected on the test set
    "cnn-by-pytorch": max(TORCH_TEST_ACC),
}

LARGEST_CONFUSION = (6, 0)  # Shirt predicted as T-shirt/top (true class, predicted)

# "It ran about 0.6 s per step (pure-Python loop max-pool, float64): about 50 minutes for 5000
# steps", at its batch size of 64.
NUMPY_SPEED = {"seconds_per_step": 0.6, "train_minutes": 50, "batch_size": 64, "steps": 5000}

# Public reference points, from the dataset's own benchmark table as quoted in the same file.
REFERENCE_POINTS = (
    ("Human performance", "人类水平", 0.835),
    ("Best scikit-learn classifier (about)", "最佳 scikit-learn 分类器（约）", 0.897),
    ("2 conv + pooling + BN", "2 层卷积 + 池化 + BN", 0.934),
    ("ResNet18", "ResNet18", 0.949),
    ("MobileNet", "MobileNet", 0.950),
    ("DenseNet-BC (768K params)", "DenseNet-BC（76.8 万参数）", 0.954),
    ("WRN-28-10", "WRN-28-10", 0.959),
    ("WRN-28-10 + random erasing", "WRN-28-10 + 随机擦除", 0.963),
    ("WRN40-4 (8.9M params)", "WRN40-4（890 万参数）", 0.967),
)
