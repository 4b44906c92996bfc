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


def read_checkpoint(path, device="cpu", for_inference: bool = False) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code) and check its layout.
    ``for_inference`` also reads a checkpoint written before the run chose its validation
    (``_legacy_fields``), for its weights; resuming from one is refused."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"{path}: cannot be read as a PyTorch checkpoint (truncated or corrupted?): {e}"
        ) from e
    if (not isinstance(state, dict) or not CHECKPOINT_KEYS <= state.keys()
            or not isinstance(state["config"], dict)):  # fmt: skip
        found = sorted(state.keys()) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path}: not a torch_cnn checkpoint: expected keys {sorted(CHECKPOINT_KEYS)}, "
            f"found {found}"
        )
    fields = _current_fields(state["config"], path, for_inference)
    try:
        state["config"] = Config(**fields)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its config is not a torch_cnn Config: {e}") from e
    return state


def _legacy_fields(config: dict) -> list[str]:
    """The fields of an older Config among a checkpoint's: ``hold_out_validation`` (now the run's
    choice, ``torch_run.run``'s ``validation``) and init 'he_xavier' (He and Xavier on every
    layer, gone; no init at all before Config had one)."""
    legacy = []
    if "hold_out_validation" in config:
        legacy.append(f"hold_out_validation={config['hold_out_validation']}")
    if config.get("init", "he_xavier") == "he_xavier":
        legacy.append(f"init={config.get('init', '(none)')}")
    return legacy


def _current_fields(config: dict, path, for_inference: bool) -> dict:
    """A checkpoint's config fields as Config takes them now. Neither legacy field changes what
    the trained weights compute, so for inference they go: the validation flag is dropped, and
    the model is built with init 'pytorch' (any model takes it; the checkpoint's weights replace
    the initial ones). Training cannot resume from such a checkpoint: its config is not one a run
    could be trained with today."""
    legacy = _legacy_fields(config)
    if legacy and not for_inference:
        raise CheckpointError(
            f"{path}: its config has values Config no longer takes ({', '.join(legacy)}): "
            "torch_cnn.load reads its weights for inference, but training cannot resume from "
            "it; train afresh (resume=False or a new out_dir)"
        )
    fields = {k: v for k, v in config.items() if k != "hold_out_validation"}
    if fields.get("init", "he_xavier") == "he_xavier":
        fields["init"] = "pytorch"
    return fields


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
