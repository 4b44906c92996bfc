"""What makes the training loop of ``torch_cnn`` fast, kept apart from what it computes.

Nothing here changes what a run learns on a CPU (a CUDA graph and bf16 change a GPU run's last
digits); each piece is a speed-up measured on this project's runs. Skip this module on a first
read: ``torch_cnn.train`` calls it in a few marked places, and with ``make_train_step`` as the one
seam around its training step (the plain step unless CUDA graphs apply).

- channels_last memory (``place``): oneDNN (CPU) and cuDNN pick faster convolution and pooling
  kernels, about 25% less time per step on the CPU here;
- glibc's malloc keeps the buffers a step frees (``fashion_mnist.memory``);
- fused optimizers (``optimizer_options``): about 12% less time per step on 2 CPU cores;
- bf16 autocast on CUDA (``autocast``);
- cuDNN's kernel timing when the run need not be deterministic (``choose_kernels``);
- CUDA graphs (``CUDAGraphStep``): the step captured once and replayed, its learning rate then in
  a device tensor the scheduler rewrites in place (``learning_rate``).
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from fashion_mnist.memory import keep_freed_memory


def choose_kernels(deterministic: bool) -> None:
    """With ``deterministic``, ask for deterministic kernels where torch has them; else let cuDNN
    time its kernels and keep the fastest (two runs then differ slightly on a GPU)."""
    # cuBLAS is deterministic only with this workspace setting (read when CUDA starts).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    # Deterministic mode also fills every new tensor with NaN, to expose reads of uninitialised
    # memory; no kernel we use reads before it writes, and the filling cost ~5% of a CPU step.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = not deterministic


def place(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device`` in channels_last memory (MPS's support for it is patchy), with
    glibc's malloc told to keep freed buffers for the next step."""
    keep_freed_memory()
    memory_format = torch.preserve_format if device.type == "mps" else torch.channels_last
    return model.to(device, memory_format=memory_format)


def autocast(device: torch.device):
    """bf16 on CUDA's tensor cores; on CPU and MPS it is slower or unsupported, so fp32 there.
    No cache of the bf16 weights: a CUDA graph's capture must not keep tensors it made."""
    return torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=device.type == "cuda", cache_enabled=False
    )


def graphed(config, device: torch.device) -> bool:
    """Whether the run's step is replayed as a CUDA graph (``Config.cuda_graphs``, on CUDA)."""
    return config.cuda_graphs and device.type == "cuda"


def learning_rate(value: float, config, device: torch.device) -> float | torch.Tensor:
    """The learning rate as the optimizer holds it. A CUDA graph would replay a float rate as
    captured; when graphed, the scheduler writes each step's rate into a tensor in place, which
    every replay reads."""
    return torch.tensor(value, device=device) if graphed(config, device) else value


def optimizer_options(config, device: torch.device) -> dict:
    """The optimizer's learning rate and speed options: fused kernels update every parameter in
    one pass (CPU and CUDA); a graphed Adam keeps its step count on the device (capturable)."""
    options = {"lr": learning_rate(config.lr, config, device),
               "fused": device.type in ("cpu", "cuda")}  # fmt: skip
    if config.optimizer != "sgd":
        options["capturable"] = graphed(config, device)
    return options


def match_device(optimizer: torch.optim.Optimizer, config, device: torch.device) -> None:
    """After loading a checkpoint: it may come from a run graphed on CUDA and be resumed
    elsewhere, or the other way round; its learning rate and capturable flag are then the wrong
    kind here."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(float(group["lr"]), config, device)
        if "capturable" in group:
            group["capturable"] = graphed(config, device)


def make_train_step(step, config, device: torch.device):
    """The training step to call for each batch: ``step`` itself, or, when graphed, ``step``
    captured as a CUDA graph and replayed (``CUDAGraphStep``)."""
    return CUDAGraphStep(step, config.batch_size, device) if graphed(config, device) else step


class CUDAGraphStep:
    """A training step captured once as a CUDA graph, then replayed for every full batch.

    A step of the original network launches about a hundred small kernels, and on a GPU each
    launch costs the CPU more time than the kernel takes the GPU: 4 ms of CPU per step for 0.5 ms
    of GPU work on an H200 (measured with torch.profiler). A replay launches the whole step at once.
    PyTorch's whole-network capture recipe: a few eager warm-up steps on a side stream (real
    steps; they also let cuDNN and the optimizer set themselves up), then the capture, which
    records the step without running it. The graph reads its batch from a fixed index tensor
    and leaves the loss and correct count in fixed output tensors; batches of another size (an
    epoch's last) run eagerly. Dropout and augmentation draw new random numbers at every replay.
    """

    warmup_steps = 3

    def __init__(self, step, batch_size: int, device: torch.device):
        self.step = step  # step(batch_indices) -> (loss, correct), as tensors on the device
        self.batch = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.side_stream = torch.cuda.Stream(device)
        self.graph, self.outputs, self.warmed_up = None, None, 0

    def __call__(self, idx: torch.Tensor):
        if len(idx) != len(self.batch):
            return self._eager(idx)
        if self.warmed_up < self.warmup_steps:
            self.warmed_up += 1
            self.side_stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side_stream):
                outputs = self._eager(idx)
            torch.cuda.current_stream().wait_stream(self.side_stream)
            return outputs
        self.batch.copy_(idx)
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.outputs = self.step(self.batch)
        self.graph.replay()
        return self.outputs

    def _eager(self, idx: torch.Tensor):
        with warnings.catch_warnings():
            # The optimizer was made capturable for the graph; its eager steps are expected.
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            return self.step(idx)
