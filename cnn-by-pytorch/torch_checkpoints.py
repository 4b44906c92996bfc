"""Checkpoint files: one per epoch, ``OUT/checkpoints/model_epoch{N}.pt``, written atomically and
read back with ``weights_only=True``, with errors that say what is wrong with a file."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch
from torch import nn
from torch_config import Config

from fashion_mnist.files import atomic_write


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or does not hold what this module wrote."""


CHECKPOINT_KEYS = {"model", "ema", "optimizer", "scheduler", "epoch", "config", "history", "rng"}


def checkpoint_path(out_dir, epoch: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"model_epoch{epoch}.pt"


def checkpoint_epoch(path) -> int | None:
    """The epoch in a checkpoint's file name (``model_epoch12.pt`` -> 12), else None."""
    match = re.fullmatch(r"model_epoch(\d+)\.pt", Path(path).name)
    return int(match[1]) if match else None


def latest_checkpoint(out_dir) -> Path | None:
    """The checkpoint of the latest epoch in ``out_dir``, or None."""
    paths = Path(out_dir).glob("checkpoints/model_epoch*.pt")
    numbered = [(checkpoint_epoch(p), p) for p in paths if checkpoint_epoch(p) is not None]
    return max(numbered)[1] if numbered else None


def save_checkpoint(out_dir: Path, config: Config, history: list[dict], model: nn.Module, ema,
                    optimizer, scheduler, device: torch.device) -> None:  # fmt: skip
    """Everything a resumed run needs after the last epoch of ``history``, written atomically."""
    checkpoint = {
        "model": model.state_dict(),
        "ema": ema.model.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": history[-1]["epoch"],
        "config": dataclasses.asdict(config),
        "history": history,
        "rng": _rng_state(device),
    }
    with atomic_write(checkpoint_path(out_dir, history[-1]["epoch"]), "wb") as f:
        torch.save(checkpoint, f)


def read_checkpoint(path, device="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code) and check its layout."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"{path}: cannot be read as a PyTorch checkpoint (truncated or corrupted?): {e}"
        ) from e
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= state.keys():
        found = sorted(state.keys()) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path}: not a torch_cnn checkpoint: expected keys {sorted(CHECKPOINT_KEYS)}, "
            f"found {found}"
        )
    try:
        state["config"] = Config(**state["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its config is not a torch_cnn Config: {e}") from e
    return state


def load_weights(model: nn.Module, weights: dict, path, config: Config) -> None:
    """``weights`` into ``model`` in place, or a CheckpointError naming the file ``path``."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path}: the weights do not fit the {config.model!r} model its config names: {e}"
        ) from e


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore the random number generators' state saved with a checkpoint."""
    # RNG states are CPU byte tensors, whatever map_location moved them to.
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
