"""The networks: the original report's CNN, its squeeze-and-excitation variant and a small ResNet,
their initialisation (``build_model``), and a layer table measured from the code (``summary``)."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al. 2018): rescale each channel by a gate computed from all."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x):
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return x * gate[:, :, None, None]


def original_net(se: bool = False) -> nn.Sequential:
    """The report's network: two conv-BN-ReLU-pool blocks, then 3136 -> 512 -> 10 with dropout.

    The ReLUs work in place (nothing needs their inputs for the gradient): one large tensor fewer
    to allocate and fill each step, about 8% of a CPU step.
    """
    layers = OrderedDict()
    for i, (c_in, c_out) in enumerate([(1, 32), (32, 64)], start=1):
        layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, 3, padding=1)
        layers[f"bn{i}"] = nn.BatchNorm2d(c_out)
        layers[f"relu{i}"] = nn.ReLU(inplace=True)
        if se:
            layers[f"se{i}"] = SqueezeExcite(c_out)
        layers[f"pool{i}"] = nn.MaxPool2d(2)
    layers["flatten"] = nn.Flatten()
    layers["fc1"] = nn.Linear(64 * 7 * 7, 512)
    layers["relu3"] = nn.ReLU(inplace=True)
    layers["dropout"] = nn.Dropout(0.5)
    layers["fc2"] = nn.Linear(512, NUM_CLASSES)
    return nn.Sequential(layers)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (He et al. 2016); a 1x1 projection when shapes change."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet(widths=(64, 128, 256), blocks: int = 2) -> nn.Sequential:
    """A CIFAR-style ResNet for 28x28: a 3x3 stem, three stages (28, 14, 7 pixels), global pooling."""
    layers = OrderedDict(
        stem=nn.Conv2d(1, widths[0], 3, padding=1, bias=False),
        stem_bn=nn.BatchNorm2d(widths[0]),
        stem_relu=nn.ReLU(inplace=True),
    )
    c_in = widths[0]
    for stage, width in enumerate(widths, start=1):
        for b in range(1, blocks + 1):
            stride = 2 if stage > 1 and b == 1 else 1
            layers[f"stage{stage}_block{b}"] = BasicBlock(c_in, width, stride)
            c_in = width
    layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(c_in, NUM_CLASSES)
    return nn.Sequential(layers)


def build_model(config) -> nn.Module:
    """The network ``config.model`` names, initialised as ``config.init`` says (a
    ``torch_cnn.Config``; only those two fields are read).

    'as_marked' reads the original's layer table to the letter: it marks He on the first
    convolution and Xavier-uniform on the first linear layer, so the other layers and every bias
    keep PyTorch's defaults (uniform, scaled by the fan-in, smaller than He's or Xavier's).
    'pytorch' keeps the defaults everywhere. Both come near the original's first logged epoch;
    the marks extended to every layer did not (experiments/README.md, the initialisation sweep).
    """
    model = resnet() if config.model == "resnet" else original_net(se=config.model == "se")
    if config.init == "as_marked":
        nn.init.kaiming_normal_(model.conv1.weight, nonlinearity="relu")
        nn.init.xavier_uniform_(model.fc1.weight)
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summary_rows(model: nn.Module) -> list[dict]:
    """One row per computing layer: name, output shape and parameters, measured by running a dummy
    image through the model (forward hooks), so the table cannot drift from the code."""
    rows, hooks = [], []

    def record(name):
        def hook(module, _, out):
            rows.append({
                "layer": f"{name} ({type(module).__name__})",
                "output": str(tuple(out.shape[1:])),
                "params": sum(p.numel() for p in module.parameters()),
            })  # fmt: skip

        return hook

    for name, module in model.named_modules():
        if name and not list(module.children()):  # leaves: the layers that compute
            hooks.append(module.register_forward_hook(record(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *IMAGE_SHAPE, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def summary(model: nn.Module) -> str:
    """The layer table of ``summary_rows`` as text, with the total."""
    rows = summary_rows(model)
    width = max(len(r["layer"]) for r in rows) + 2
    lines = [f"{'Layer':<{width}}{'Output':<16}{'Params':>12}", "-" * (width + 28)]
    lines += [f"{r['layer']:<{width}}{r['output']:<16}{r['params']:>12,}" for r in rows]
    lines += ["-" * (width + 28), f"{'Total':<{width}}{'':<16}{count_params(model):>12,}"]
    return "\n".join(lines)
