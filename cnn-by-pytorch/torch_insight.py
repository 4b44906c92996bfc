"""What a PyTorch network learned: its penultimate features, its feature maps, and Grad-CAM.

Works on any of ``torch_models``' networks (the original, its SE variant, the ResNet) through
forward hooks, which read a layer's input or output without changing the model's code. Images
are the dataset's uint8 ``(N, 784)`` rows, as for ``torch_cnn.predict_proba``; the model runs in
eval mode, without flip TTA.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_cnn import to_images
from torch_models import IMAGE_SHAPE, NUM_CLASSES


def _inputs(model: nn.Module, images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, 784)`` -> float ``(N, 1, 28, 28)`` in [0, 1] on the model's device."""
    return to_images(images, next(model.parameters()).device).float() / 255


def _last(model: nn.Module, kind: type) -> nn.Module:
    found = [m for m in model.modules() if isinstance(m, kind)]
    if not found:
        raise ValueError(f"the model has no {kind.__name__} layer")
    return found[-1]


@torch.no_grad()
def features(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The penultimate features ``(N, D)``: the input of the last ``nn.Linear`` (512 values for
    the original network, 256 for the ResNet), read by a forward pre-hook."""
    captured = []
    hook = _last(model, nn.Linear).register_forward_pre_hook(
        lambda module, args: captured.append(args[0].float().cpu())
    )
    model.eval()
    try:
        for batch in _inputs(model, images).split(batch_size):
            model(batch)
    finally:
        hook.remove()
    return torch.cat(captured).numpy()


@torch.no_grad()
def feature_maps(model: nn.Module, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """``(module name, (C, H, W))`` for one uint8 image ``(784,)``: the output of every
    convolution and max-pool, in the order they run (a convolution's before its batch norm)."""
    maps, hooks = [], []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            # clone: a ReLU working in place may later overwrite what a layer returned
            hooks.append(module.register_forward_hook(
                lambda _, __, out, name=name: maps.append((name, out[0].float().cpu().clone()))
            ))  # fmt: skip
    model.eval()
    try:
        model(_inputs(model, np.asarray(image).reshape(1, -1)))
    finally:
        for hook in hooks:
            hook.remove()
    return [(name, array.numpy()) for name, array in maps]


def grad_cam(model: nn.Module, images: np.ndarray, classes, layer: nn.Module | None = None
             ) -> np.ndarray:  # fmt: skip
    """Grad-CAM maps ``(N, 28, 28)`` in [0, 1] (Selvaraju et al. 2017): where in each image the
    evidence for its class lies, as ``layer`` sees it (default: the last convolution).

    With A the layer's output ``(N, K, h, w)`` and y the class's logit, each channel is weighted
    by its mean gradient ``a_k = mean over pixels of dy/dA_k``; the map is ``relu(sum_k a_k A_k)``
    upsampled bilinearly to 28x28 and divided by its maximum (a map with no positive evidence
    stays 0).
    """
    layer = layer if layer is not None else _last(model, nn.Conv2d)
    x = _inputs(model, images)
    classes = torch.as_tensor(np.asarray(classes), device=x.device).expand(len(x))
    if classes.dtype.is_floating_point or classes.min() < 0 or classes.max() >= NUM_CLASSES:
        raise ValueError(f"classes must be integers in [0, {NUM_CLASSES}), one per image")
    captured = []
    hook = layer.register_forward_hook(lambda _, __, out: captured.append(out))
    model.eval()
    try:
        with torch.enable_grad():
            scores = model(x).gather(1, classes[:, None].long()).sum()
            (grads,) = torch.autograd.grad(scores, captured[0])
    finally:
        hook.remove()
    activations = captured[0].detach()
    cam = F.relu((grads.mean(dim=(2, 3), keepdim=True) * activations).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=IMAGE_SHAPE[1:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(torch.finfo(cam.dtype).tiny)
    return (cam / peak[:, None, None]).cpu().numpy()
