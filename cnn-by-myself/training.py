"""Training the NumPy CNN: SGD, the run's configuration, its checkpoints and the loop.

:class:`TrainConfig` holds everything that defines a run and checks each value as it enters;
:func:`train` runs it, writing checkpoints it can resume from bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from layers import SoftmaxCrossEntropy, to_input

from fashion_mnist.files import atomic_write

if TYPE_CHECKING:
    from numpy_cnn import Sequential

SCHEDULES = ("constant", "step", "cosine")


class SGD:
    """SGD with momentum as in the original: ``v = m*v - lr*g; p += v``.

    ``weight_decay`` adds ``wd * p`` to each gradient (L2). With ``nesterov`` the step looks
    ahead along the new velocity: ``p += m*v - lr*g``.
    """

    def __init__(self, params: dict[str, np.ndarray], lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0, nesterov: bool = False):
        self.params, self.lr, self.momentum = params, lr, momentum
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.velocity = {key: np.zeros_like(p) for key, p in params.items()}

    def step(self, grads: dict[str, np.ndarray], lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        m = self.momentum
        for key, p in self.params.items():
            g = grads[key]
            if self.weight_decay:
                g = g + self.weight_decay * p
            v = self.velocity[key]
            v *= m
            v -= lr * g
            p += (m * v - lr * g) if self.nesterov else v


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_finite_number(value) -> bool:
    return (_is_int(value) or isinstance(value, (float, np.floating))) and math.isfinite(value)


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run; plain values, so ``asdict`` is JSON.

    Every value is checked when the config is made (or replaced), so that a bad one fails here,
    naming itself, not as a NumPy error some steps into a run.
    """

    steps: int = 10000
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # 'constant' | 'step' | 'cosine'
    step_every: int = 2000  # 'step' schedule: multiply lr by step_gamma every step_every steps
    step_gamma: float = 0.1
    hflip: bool = False  # augmentation: mirror each training image left-right with p = 1/2
    translate: int = 1  # augmentation: shift each training image by up to this many pixels
    label_smoothing: float = 0.0  # target (1 - e) * onehot + e / 10
    checkpoint_every: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, requirement: str) -> None:
            if not ok:
                value = getattr(self, name)
                raise ValueError(f"TrainConfig.{name} must be {requirement}, got {value!r}")

        for name in ("steps", "batch_size", "step_every", "checkpoint_every"):
            value = getattr(self, name)
            check(name, _is_int(value) and value > 0, "a positive integer")
        for name in ("translate", "seed"):
            value = getattr(self, name)
            check(name, _is_int(value) and value >= 0, "a non-negative integer")
        for name in ("nesterov", "hflip"):
            check(name, isinstance(getattr(self, name), (bool, np.bool_)), "True or False")
        numbers = {"lr": (lambda v: v > 0, "a finite number > 0"),
                   "step_gamma": (lambda v: v > 0, "a finite number > 0"),
                   "weight_decay": (lambda v: v >= 0, "a finite number >= 0"),
                   "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
                   "label_smoothing": (lambda v: 0 <= v < 1, "a number in [0, 1)")}
        for name, (in_range, requirement) in numbers.items():
            value = getattr(self, name)
            check(name, _is_finite_number(value) and in_range(value), requirement)
        check("schedule", isinstance(self.schedule, str) and self.schedule in SCHEDULES,
              f"one of {', '.join(SCHEDULES)}")


# The original's settings, for the reproduction row (the original reached 86.12% test).
ORIGINAL = TrainConfig(steps=5000, batch_size=64, lr=0.0005, momentum=0.9, nesterov=False,
                       weight_decay=0.0, schedule="constant", translate=0)
# The default: the PyTorch reference recipe for this net (SGD with Nesterov momentum, lr 0.1,
# cosine decay, weight decay 5e-4, batch 128) plus random shifts of up to one pixel, trained for
# 10,000 steps (~23 epochs of 55,000 images): the run the sweep on the validation split chose
# (experiments/numpy_sweep/, whose README has the table and what each ingredient bought).
TUNED = TrainConfig()


def random_translate(x: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image of ``(C, H, W, N)`` by up to ``pad`` pixels each way, filling with 0.

    Equivalent to a random ``H x W`` crop of the zero-padded image, one offset per image, taken
    with a single fancy-indexing gather instead of a loop over the batch.
    """
    c, h, w, n = x.shape
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad, n), dtype=x.dtype)
    padded[:, pad:pad + h, pad:pad + w, :] = x
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, n))
    rows = (np.arange(h)[:, None] + dy)[:, None, :]  # (H, 1, N)
    cols = (np.arange(w)[:, None] + dx)[None, :, :]  # (1, W, N)
    return np.ascontiguousarray(padded[:, rows, cols, np.arange(n)])  # (C, H, W, N)


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate used at ``step`` (1-based)."""
    t = step - 1
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        return config.lr * config.step_gamma ** (t // config.step_every)
    # "cosine": TrainConfig admits no other schedule
    return config.lr * 0.5 * (1 + math.cos(math.pi * t / config.steps))


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------

_CHECKPOINT = re.compile(r"model_step(\d+)\.npz$")
_HISTORY = ("step", "loss", "accuracy", "lr")


def checkpoint_step(path) -> int:
    """The step of ``.../model_step{N}.npz``."""
    match = _CHECKPOINT.search(Path(path).name)
    if not match:
        raise ValueError(f"{path} is not named model_step{{N}}.npz")
    return int(match.group(1))


def list_checkpoints(checkpoint_dir) -> list[Path]:
    """The checkpoints in a folder, sorted by step."""
    folder = Path(checkpoint_dir)
    found = [p for p in folder.glob("model_step*.npz") if _CHECKPOINT.search(p.name)]
    return sorted(found, key=checkpoint_step)


def save_checkpoint(path, model: Sequential, optimizer: SGD, step: int, config: TrainConfig,
                    rng: np.random.Generator, perm: np.ndarray, perm_pos: int,
                    history: dict) -> None:
    """Write everything needed to resume, atomically; only arrays and JSON text, no pickles."""
    arrays = dict(model.state())
    arrays.update({f"momentum_{key}": v for key, v in optimizer.velocity.items()})
    arrays.update({f"history_{key}": np.asarray(history[key]) for key in _HISTORY})
    arrays.update(step=np.int64(step), perm=perm, perm_pos=np.int64(perm_pos),
                  rng_state=np.str_(json.dumps(rng.bit_generator.state)),
                  config=np.str_(json.dumps(dataclasses.asdict(config))))
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def read_npz(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _resume(path: Path, config: TrainConfig, model: Sequential, optimizer: SGD,
            rng: np.random.Generator) -> tuple:
    """Restore the model, the optimizer and the RNG from ``path``; the rest of the run's state:
    the epoch's permutation, the position in it, the step and the history."""
    state = read_npz(path)
    saved = json.loads(str(state["config"]))
    if saved != dataclasses.asdict(config):
        raise ValueError(f"{path} was written with config {saved}, not {config}")
    model.load_state(state, source=str(path))
    for key, v in optimizer.velocity.items():
        v[...] = state[f"momentum_{key}"]
    rng.bit_generator.state = json.loads(str(state["rng_state"]))
    history = {key: state[f"history_{key}"].tolist() for key in _HISTORY}
    return state["perm"], int(state["perm_pos"]), int(state["step"]), history


def augment(x: np.ndarray, config: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """The config's random flips and shifts of a ``(1, 28, 28, N)`` batch."""
    if config.hflip:  # the flip mask broadcasts over the innermost batch axis
        x = np.where(rng.random(x.shape[-1]) < 0.5, x[:, :, ::-1, :], x)
    if config.translate:
        x = random_translate(x, config.translate, rng)
    return x


def train(model: Sequential, config: TrainConfig, train_images: np.ndarray,
          train_labels: np.ndarray, checkpoint_dir,
          on_step: Callable[[int, float, float], None] | None = None,
          resume: bool = True) -> dict:
    """Train ``model`` in place with SGD on shuffled batches (a fresh permutation per epoch).

    Writes ``checkpoint_dir/model_step{N}.npz`` every ``config.checkpoint_every`` steps and at the
    last one. With ``resume`` it continues from the latest checkpoint there, ending with the same
    weights as an uninterrupted run. Returns the history: lists ``step``, ``loss``, ``accuracy``
    (of each training batch), ``lr``, and ``checkpoints`` (paths written by this call).
    """
    checkpoint_dir = Path(checkpoint_dir)
    n = train_images.shape[0]
    if config.batch_size > n:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {n} training images")
    rng = np.random.default_rng(config.seed)
    optimizer = SGD(model.params(), config.lr, config.momentum, config.weight_decay,
                    config.nesterov)
    perm, perm_pos, start = np.arange(0), 0, 0
    history = {key: [] for key in _HISTORY}
    existing = list_checkpoints(checkpoint_dir) if resume else []
    if existing:
        perm, perm_pos, start, history = _resume(existing[-1], config, model, optimizer, rng)
    loss_fn = SoftmaxCrossEntropy(config.label_smoothing)
    written = []
    for step in range(start + 1, config.steps + 1):
        if perm_pos + config.batch_size > perm.size:  # new epoch (the short remainder is dropped)
            perm, perm_pos = rng.permutation(n), 0
        idx = perm[perm_pos:perm_pos + config.batch_size]
        perm_pos += config.batch_size
        labels = train_labels[idx]
        x = augment(to_input(train_images[idx], model.dtype), config, rng)  # (1, 28, 28, N)
        logits = model.forward(x, train=True)
        loss = loss_fn.forward(logits, labels)
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at step {step}; stopping (the last good "
                                     f"checkpoint in {checkpoint_dir} is kept)")
        accuracy = float((loss_fn.probs.argmax(axis=0) == labels).mean())
        model.backward(loss_fn.backward())
        lr = learning_rate(config, step)
        optimizer.step(model.grads(), lr)
        for key, value in zip(_HISTORY, (step, loss, accuracy, lr), strict=True):
            history[key].append(value)
        if on_step is not None:
            on_step(step, loss, accuracy)
        if step % config.checkpoint_every == 0 or step == config.steps:
            path = checkpoint_dir / f"model_step{step}.npz"
            save_checkpoint(path, model, optimizer, step, config, rng, perm, perm_pos, history)
            written.append(str(path))
    return {**history, "checkpoints": written}
