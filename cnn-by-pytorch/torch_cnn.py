"""The PyTorch CNN's training loop (``train``), and ``load``/``predict_proba``, the interface
shared with the NumPy model.

Read in this order: ``torch_config.py`` (the configuration as plain values, and the presets),
``torch_models.py`` (the networks), ``torch_augment.py`` (augmentation on whole batches), this
module, then ``torch_checkpoints.py``. What only makes the loop faster (channels_last, fused
optimizers, bf16, CUDA graphs, the allocator) is in ``torch_fast.py``, which a first reading can
skip: the loop reaches it through ``torch_fast.make_train_step``, ``place`` and ``autocast``.
"""

from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch_fast
from torch import nn
from torch_augment import (
    augment,
    cutmix,
    random_erasing,
    random_hflip,
    random_translate,
    training_batch,
)
from torch_checkpoints import (
    CHECKPOINT_KEYS,
    CheckpointError,
    checkpoint_epoch,
    checkpoint_path,
    latest_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from torch_config import (
    ABLATION_EPOCHS,
    ABLATIONS,
    IMPROVED,
    REPRODUCTION,
    RESNET,
    SPEED_ONLY_FIELDS,
    Config,
    differences,
)
from torch_fast import CUDAGraphStep
from torch_models import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    BasicBlock,
    SqueezeExcite,
    build_model,
    count_params,
    original_net,
    resnet,
    summary,
    summary_rows,
)
from tqdm.auto import tqdm

from fashion_mnist.files import repo_relative

# Defined in the modules beside this one, and used from here by the notebook, the tests and the
# benchmarks: torch_cnn is the one module to import.
__all__ = [
    "ABLATION_EPOCHS", "ABLATIONS", "IMPROVED", "REPRODUCTION", "RESNET", "SPEED_ONLY_FIELDS",
    "Config", "differences", "CUDAGraphStep", "IMAGE_SHAPE", "NUM_CLASSES", "BasicBlock",
    "SqueezeExcite", "build_model", "count_params", "original_net", "resnet", "summary",
    "summary_rows", "augment", "cutmix", "random_erasing", "random_hflip", "random_translate",
    "training_batch", "CHECKPOINT_KEYS", "CheckpointError", "checkpoint_epoch", "checkpoint_path",
    "latest_checkpoint", "read_checkpoint", "save_checkpoint",
]  # fmt: skip


# -----------------------------------------------------------------------------------------------
# Training



def pick_device() -> torch.device:
    """The fastest device present: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Fix every random source we use; with ``deterministic``, ask for deterministic kernels where
    torch has them, else let cuDNN pick its fastest (``torch_fast.choose_kernels``)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 -- the legacy global state is what other code draws from
    torch.manual_seed(seed)  # also seeds CUDA and MPS
    torch_fast.choose_kernels(deterministic)


def to_images(images: np.ndarray, device) -> torch.Tensor:
    """uint8 (N, 784) -> uint8 (N, 1, 28, 28) on ``device``; scaled to [0, 1] a batch at a time."""
    return torch.as_tensor(np.asarray(images, dtype=np.uint8)).reshape(-1, *IMAGE_SHAPE).to(device)


def to_labels(labels: np.ndarray, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(labels, dtype=np.int64)).to(device)


def make_optimizer(config: Config, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer ``config`` names, with the learning rate and speed options of
    ``torch_fast.optimizer_options`` (fused kernels; a tensor rate when graphed)."""
    params = list(model.parameters())
    options = torch_fast.optimizer_options(config, params[0].device)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay, **options)  # fmt: skip
    optimizer = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer(params, weight_decay=config.weight_decay, **options)


def make_scheduler(config: Config, optimizer, total_steps: int):
    """A per-batch learning-rate schedule over the whole run."""
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=total_steps)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


class EMA:
    """An exponential moving average of a model's weights and BatchNorm statistics.

    The average is a second model, evaluated in place of the trained one. Its decay ramps up from
    0 so the first steps do not drag in the random initialisation. Build it once the model is on
    its device, and load weights into either model in place (``load_state_dict``): it keeps
    references to both models' tensors.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0
        # Both models' tensors, paired once (a state_dict shares its tensors' storage; training and
        # loading update them in place), so that a step is two foreach calls, as in
        # torch.optim.swa_utils, rather than two state_dict() calls and a kernel per tensor: the
        # ResNet has 92 of them.
        pairs = zip(self.model.state_dict().values(), model.state_dict().values(), strict=True)
        self._averaged, self._trained, self._counters, self._counted = [], [], [], []
        for avg, new in pairs:
            if avg.is_floating_point():
                self._averaged.append(avg)
                self._trained.append(new)
            else:  # BatchNorm's batch counters
                self._counters.append(avg)
                self._counted.append(new)

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._averaged, self._trained, 1.0 - decay)
        torch._foreach_copy_(self._counters, self._counted)


@torch.no_grad()
def _log_proba(model: nn.Module, x: torch.Tensor, tta_flip: bool) -> torch.Tensor:
    """Log-probabilities of uint8 images; with ``tta_flip``, of the mean of image and mirror."""
    x = x.float() / 255
    with torch_fast.autocast(x.device):
        log_p = F.log_softmax(model(x).float(), dim=1)
        if tta_flip:
            log_p_flip = F.log_softmax(model(x.flip(3)).float(), dim=1)
            log_p = torch.logsumexp(torch.stack([log_p, log_p_flip]), 0) - math.log(2)
    return log_p


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, tta_flip: bool):
    """Mean cross-entropy and accuracy over a whole set, in eval mode."""
    model.eval()
    # Summed on the device: reading each batch's result would make the CPU wait for a GPU.
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        log_p = _log_proba(model, xb, tta_flip)
        loss += F.nll_loss(log_p, yb, reduction="sum")
        correct += (log_p.argmax(1) == yb).sum()
    return loss.item() / len(y), correct.item() / len(y)


def train(config: Config, train_images: np.ndarray, train_labels: np.ndarray,
          val_images: np.ndarray | None, val_labels: np.ndarray | None, out_dir,
          test_images: np.ndarray | None = None, test_labels: np.ndarray | None = None,
          on_epoch=None, resume: bool = True, device=None, tensorboard_dir=None) -> dict:
    """Train ``config``; return its history and what it says, as plain data (``_summarise``).

    Each epoch trains on shuffled, augmented batches, evaluates validation and test (when given;
    test for reporting only), writes ``out_dir/checkpoints/model_epoch{N}.pt`` and calls
    ``on_epoch(record)``. Without validation images the last epoch is the selected one. With ``resume`` it continues from the latest checkpoint, ending with the
    weights an uninterrupted run would have (on the CPU). TensorBoard events go to
    ``tensorboard_dir`` (default ``out_dir/tensorboard``) when ``tensorboard`` is installed."""
    device, out_dir = torch.device(device) if device is not None else pick_device(), Path(out_dir)
    seed_everything(config.seed, config.deterministic)
    x_train, y_train = to_images(train_images, device), to_labels(train_labels, device)
    eval_sets = {name: (to_images(x, device), to_labels(y, device)) for name, x, y in
                 (("val", val_images, val_labels), ("test", test_images, test_labels))
                 if x is not None}  # fmt: skip
    model = torch_fast.place(build_model(config), device)  # channels_last, on the device
    ema = EMA(model, config.ema) if config.ema else None
    optimizer = make_optimizer(config, model)
    steps_per_epoch = math.ceil(len(y_train) / config.batch_size)
    scheduler = make_scheduler(config, optimizer, config.epochs * steps_per_epoch)
    history = (_resume(out_dir, config, model, ema, optimizer, scheduler, steps_per_epoch, device,
                       validating=val_images is not None) if resume else [])  # fmt: skip
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    def step(idx: torch.Tensor):
        """One optimisation step on the images ``idx``: its mean loss and correct count."""
        x, y, y_pasted, lam = training_batch(x_train, y_train, idx, config)
        with torch_fast.autocast(device):  # bf16 on CUDA, a no-op elsewhere
            logits = model(x).float()
        loss = loss_fn(logits, y)
        if y_pasted is not None:  # CutMix: the pasted box's labels, weighted by its area
            loss = lam * loss + (1 - lam) * loss_fn(logits, y_pasted)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), (logits.argmax(1) == y).sum()

    step = torch_fast.make_train_step(step, config, device)  # a CUDA graph where it applies
    writer = _tensorboard_writer(Path(tensorboard_dir or out_dir / "tensorboard"))
    for epoch in range(len(history) + 1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        batches = torch.randperm(len(y_train), device=device).split(config.batch_size)
        # Each step's loss and correct count stay on the device, read once per epoch: reading
        # them every step would make the CPU wait for the GPU every step.
        losses = torch.zeros(len(batches), device=device)
        correct = torch.zeros(len(batches), dtype=torch.long, device=device)
        for i, idx in enumerate(tqdm(batches, desc=f"Epoch {epoch}/{config.epochs}",
                                     leave=False, unit="batch")):  # fmt: skip
            losses[i], correct[i] = step(idx)
            scheduler.step()
            if ema is not None:
                ema.update()
        record = _epoch_record(epoch, config, batches, losses, correct, scheduler)
        for name, (x, y) in eval_sets.items():  # the EMA's weights when there is one
            record[f"{name}_loss"], record[f"{name}_acc"] = evaluate(
                model if ema is None else ema.model, x, y, config.eval_batch_size, config.tta_flip)
        history.append({**record, "seconds": time.perf_counter() - t0})
        save_checkpoint(out_dir, config, history, model, ema, optimizer, scheduler, device)
        _log_epoch(writer, history[-1], on_epoch)
    if writer is not None:
        writer.close()
    return _summarise(history, out_dir, len(y_train), count_params(model), device)


def _epoch_record(epoch: int, config: Config, batches, losses, correct, scheduler) -> dict:
    """An epoch's training loss and accuracy, from each step's mean loss and correct count; a
    loss that is not finite stops the run (checked once per epoch: the rest of a bad epoch is
    wasted, but no checkpoint is written after a bad step)."""
    bad_steps = (~torch.isfinite(losses)).nonzero()
    if len(bad_steps):
        kept = f"the last checkpoint is of epoch {epoch - 1}" if epoch > 1 else "no checkpoint"
        raise FloatingPointError(
            f"loss is not finite at epoch {epoch}, step {bad_steps[0].item() + 1}/{len(batches)}"
            f" ({kept})"
        )
    sizes = torch.tensor([len(idx) for idx in batches], device=losses.device)
    return {
        "epoch": epoch,
        "epochs": config.epochs,
        "train_loss": (losses * sizes).sum().item() / sizes.sum().item(),
        "train_acc": correct.sum().item() / sizes.sum().item(),
        "lr": float(scheduler.get_last_lr()[0]),  # a tensor when graphed
        "val_loss": None, "val_acc": None, "test_loss": None, "test_acc": None,  # when evaluated
    }


def _log_epoch(writer, record: dict, on_epoch) -> None:
    """An epoch's record to TensorBoard (when installed), then to ``on_epoch``."""
    if writer is not None:
        for key, value in record.items():
            if key not in ("epoch", "epochs") and value is not None:
                writer.add_scalar(key, value, record["epoch"])
        writer.flush()
    if on_epoch is not None:
        on_epoch(record)


def held_out_validation(history: list[dict]) -> bool:
    """Whether the run of these epoch records measured validation accuracy (it was given
    validation images)."""
    return any(r.get("val_acc") is not None for r in history)


def select_epoch(history: list[dict]) -> dict:
    """The epoch record with the best validation accuracy; on ties, the earlier epoch. A run that
    held out no validation images keeps its last epoch."""
    if not held_out_validation(history):
        return history[-1]
    return max(history, key=lambda r: (r["val_acc"], -r["epoch"]))


def _resume(out_dir: Path, config: Config, model: nn.Module, ema, optimizer, scheduler,
            steps_per_epoch: int, device: torch.device, validating: bool) -> list[dict]:  # fmt: skip
    """Load the training state of the latest checkpoint in ``out_dir`` in place; return its
    history (empty when there is no checkpoint). The run resumed must have been ``validating``
    (given validation images) as this one is."""
    path = latest_checkpoint(out_dir)
    if path is None:
        return []
    state = read_checkpoint(path, device)
    if differences(state["config"], config):
        raise CheckpointError(
            f"{path}: written by another configuration; pass resume=False or use a new "
            f"out_dir (checkpoint: {state['config']}, now: {config})"
        )
    if held_out_validation(state["history"]) != validating:
        given = "given" if validating else "not given"
        raise CheckpointError(f"{path}: resumed with validation images {given}, unlike the run "
                              "that wrote it; pass the same sets, or resume=False")
    load_weights(model, state["model"], path, config)
    if ema is not None:
        load_weights(ema.model, state["ema"], path, config)
        ema.updates = state["epoch"] * steps_per_epoch
    optimizer.load_state_dict(state["optimizer"])
    torch_fast.match_device(optimizer, config, device)
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"], device)
    print(f"Resumed from {repo_relative(path)}")
    return state["history"]


def run_summary(history: list[dict], n_train: int) -> dict:
    """What a run's per-epoch history says of it: the selected epoch (``select_epoch``) with the
    accuracies measured then, and its times (training and the per-epoch evaluation)."""
    best = select_epoch(history)
    seconds = sum(r["seconds"] for r in history)
    return {"selected_epoch": best["epoch"], "val_accuracy": best["val_acc"],
            "test_accuracy": best["test_acc"], "train_seconds": seconds,
            "images_per_second": n_train * len(history) / seconds}  # fmt: skip


def _summarise(history: list, out_dir: Path, n_train: int, params: int, device) -> dict:
    summary = run_summary(history, n_train)
    return {
        "history": history,
        "best_epoch": summary["selected_epoch"],
        "best_val_acc": summary["val_accuracy"],
        "test_acc_at_best": summary["test_accuracy"],
        "best_checkpoint": str(checkpoint_path(out_dir, summary["selected_epoch"])),
        "checkpoints": [str(checkpoint_path(out_dir, r["epoch"])) for r in history],
        "params": params,
        "device": str(device),
        "train_seconds": summary["train_seconds"],
        "images_per_second": summary["images_per_second"],
    }


def _tensorboard_writer(log_dir: Path):
    """A SummaryWriter when the optional ``tensorboard`` package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))


# -----------------------------------------------------------------------------------------------
# The interface shared with the NumPy model



def load(path, device="cpu") -> nn.Module:
    """The model in a checkpoint, in eval mode; the EMA weights when it was trained with EMA
    (those are the ones evaluated). Its config is kept as ``model.config``: ``predict_proba``
    evaluates it as the run did."""
    state = read_checkpoint(path, device, for_inference=True)
    config = state["config"]
    model = build_model(config).to(device)
    load_weights(model, state["ema"] if config.ema else state["model"], path, config)
    model.config = config
    return model.eval()


def predict_proba(model: nn.Module, images: np.ndarray, batch_size: int = Config.eval_batch_size,
                  tta_flip: bool | None = None) -> np.ndarray:  # fmt: skip
    """Class probabilities (N, 10) for uint8 images (N, 784). With ``tta_flip``, those of the mean
    of each image and its mirror; by default as the model's run evaluated it (``Config.tta_flip``
    of a model from ``load``; False for a model without a config)."""
    if tta_flip is None:
        tta_flip = model.config.tta_flip if hasattr(model, "config") else False
    device = next(model.parameters()).device
    model.eval()
    x = to_images(images, device)
    return np.concatenate(
        [_log_proba(model, xb, tta_flip).exp().cpu().numpy() for xb in x.split(batch_size)]
    )
