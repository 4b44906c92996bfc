"""Augmentation on batched tensors (N, 1, 28, 28) in [0, 1], as the improved runs train: random
shifts, mirror images, random erasing and CutMix. No per-image Python, no workers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch_config import Config


def random_translate(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image by up to ``pad`` pixels each way, filling with black: a random crop of the
    zero-padded image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None], 0, rows, cols][:, None]


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_erasing(x: torch.Tensor, p: float, area=(0.02, 0.33), ratio=(0.3, 3.3)) -> torch.Tensor:
    """Replace a random rectangle of each image, with probability ``p``, by uniform noise in
    [0, 1] (Zhong et al. 2020); the sizes are those of torchvision's RandomErasing."""
    n, _, h, w = x.shape
    dev = x.device
    a = torch.empty(n, device=dev).uniform_(*area) * h * w
    r = torch.exp(torch.empty(n, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    eh = torch.sqrt(a * r).round().clamp(1, h).long()
    ew = torch.sqrt(a / r).round().clamp(1, w).long()
    top = (torch.rand(n, device=dev) * (h - eh + 1)).long()
    left = (torch.rand(n, device=dev) * (w - ew + 1)).long()
    ys, xs = torch.arange(h, device=dev), torch.arange(w, device=dev)
    in_rows = (ys >= top[:, None]) & (ys < (top + eh)[:, None])
    in_cols = (xs >= left[:, None]) & (xs < (left + ew)[:, None])
    erase = (
        in_rows[:, :, None] & in_cols[:, None, :] & (torch.rand(n, device=dev) < p)[:, None, None]
    )
    return torch.where(erase[:, None], torch.rand_like(x), x)


def augment(x: torch.Tensor, config: Config) -> torch.Tensor:
    if config.translate:
        x = random_translate(x, config.translate)
    if config.hflip:
        x = random_hflip(x)
    if config.erasing:
        x = random_erasing(x, config.erasing)
    return x


def cutmix(x: torch.Tensor, y: torch.Tensor):
    """Paste one random box from a shuffled copy of the batch (Yun et al. 2019).

    Returns the mixed images, the pasted labels and the fraction ``lam`` of each image left as is.
    """
    n, _, h, w = x.shape
    perm = torch.randperm(n, device=x.device)
    cut = math.sqrt(1.0 - torch.rand(()).item())  # lam ~ Beta(1, 1): the box side is sqrt(1 - lam)
    bh, bw = round(h * cut), round(w * cut)
    top = torch.randint(0, h - bh + 1, ()).item()
    left = torch.randint(0, w - bw + 1, ()).item()
    x = x.clone()
    x[:, :, top : top + bh, left : left + bw] = x[perm, :, top : top + bh, left : left + bw]
    return x, y[perm], 1.0 - bh * bw / (h * w)


def training_batch(x_train: torch.Tensor, y_train: torch.Tensor, idx: torch.Tensor,
                   config: Config):  # fmt: skip
    """The images ``idx`` augmented, in [0, 1], and their labels; then, for a batch CutMix mixes,
    the pasted labels and the fraction of each image left as is (else None and 1.0)."""
    x, y = augment(x_train[idx].float() / 255, config), y_train[idx]
    if config.cutmix and torch.rand(()).item() < config.cutmix:
        x, y_pasted, lam = cutmix(x, y)
        return x, y, y_pasted, lam
    return x, y, None, 1.0
