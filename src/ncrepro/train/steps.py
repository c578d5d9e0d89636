"""The update step shared by training runs (`ncrepro.train.loop.train`) and the
fine-tuning probe (`ncrepro.probes.finetune.finetune_probe`).

One call of `StepLoop.run(step)` is one update, a pure function of (model state,
optimizer state, seed, step): the batch `batch_indices(n, batch_size, step, seed)`
(last partial batch of each permutation dropped), optional crop+flip seeded by
(seed, step), normalization, each optimizer group's LR from its schedule at
(step, epoch), the objective's coefficients at (step, epoch), the forward pass in the
loop's precision, zero_grad → backward → optimizer step. Callers own everything around
it (resume, checkpoints, logging, evaluation) and stop on a non-finite loss
(`StepResult.diverged` reads it at once; the training loop and the fine-tuning probe
read an interval's at once).

Precision is explicit (`PRECISIONS`): "fp32" (the CPU default: float32, no autocast,
bit-identical reruns) or "bf16-autocast" (the CUDA default: the forward pass under
bfloat16 autocast, weights, gradients and optimizer state in float32); image models are
channels_last on every device (`place_model`). The same steps, batches and
update run either way; only the arithmetic differs.

`run` never waits for the device: its loss and correct count stay device tensors
(`StepResult.loss_tensor`, `correct_tensor`) until a caller reads them, which the
training loop does once per logging interval (`ncrepro.train.loop`).

With `views` V > 1 (contrastive learning) each image of the batch enters V times, as V
augmented views (`ncrepro.train.augment.multi_view`, augment "supcon" or
"supcon_geometric", seeded by
(seed, step, view)), stacked view-major in one forward pass; the objective sees
`Batch.views` = V and the labels of the N images. V = 1 is the single-view path above,
unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ncrepro.models.base import outputs_of
from ncrepro.train.augment import VIEW_AUGMENTATIONS, multi_view
from ncrepro.train.device_data import DeviceDataset, Normalizer, crop_flip
from ncrepro.train.objectives import Batch, Objective
from ncrepro.train.optim import SGD, AdamW
from ncrepro.train.schedules import epoch_at, lr_at

AUGMENTATIONS = ("none", "crop_flip", *VIEW_AUGMENTATIONS)
PRECISIONS = ("fp32", "bf16-autocast")


def default_precision(device: torch.device) -> str:
    """bf16 autocast on CUDA (tensor cores); float32 elsewhere (CPU results unchanged)."""
    return "bf16-autocast" if torch.device(device).type == "cuda" else "fp32"


def uses_channels_last(device: torch.device, images_4d: bool) -> bool:
    """Image models run channels_last on every device: cuDNN's fast layout on CUDA, and
    oneDNN's on CPU (bench/bench_memory_format.py: ~1.35x the steps/s of
    the default layout for ResNet18/VGG at width 0.125 on 2 cores). Only the arithmetic's
    order changes, not the algorithm."""
    return images_4d


def deterministic_algorithms() -> None:
    """Make torch choose deterministic kernels (warning where an op has none): what
    `torch.use_deterministic_algorithms(True, warn_only=True)` does, without also setting
    torch.compile's flag, whose import (torch._inductor) costs ~1 s in every job;
    nothing in ncrepro compiles."""
    torch._C._set_deterministic_algorithms(True, warn_only=True)


def place_model(model: nn.Module, device: torch.device, images_4d: bool) -> nn.Module:
    """Move `model` to `device` (in place); channels_last for image batches."""
    model.to(device)
    if uses_channels_last(device, images_4d):
        model.to(memory_format=torch.channels_last)
    return model


@dataclass
class StepResult:
    loss_tensor: torch.Tensor  # 0-d, on the device: the objective on this step's batch
    logits: torch.Tensor | None  # None for a model without classifier
    labels: torch.Tensor
    coefficients: dict[str, float]  # the objective's scheduled coefficients used
    lrs: list[float]  # each optimizer param group's LR used

    @property
    def loss(self) -> float:
        """The loss as a number (waits for the step to finish on the device)."""
        return float(self.loss_tensor)

    @property
    def diverged(self) -> bool:
        return not math.isfinite(self.loss)

    def correct_tensor(self) -> torch.Tensor:
        """Number of batch samples whose logits' argmax is the label (0-d, on the device)."""
        return (self.logits.argmax(1) == self.labels).sum()

    def correct(self) -> int:
        return int(self.correct_tensor())


class StepLoop:
    """Updates `model` one batch at a time.

    Every optimizer param group carries its "base_lr" and "lr_schedule"
    (see ncrepro.train.optim.param_groups); `total_steps` is the cosine horizon.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: SGD | AdamW,
        objective: Objective,
        data: DeviceDataset,
        normalizer: Normalizer,
        *,
        batch_size: int,
        seed: int,
        total_steps: int,
        augment: str = "none",
        views: int = 1,
        precision: str | None = None,
    ):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {augment!r}; known: {AUGMENTATIONS}")
        if not (isinstance(views, int) and views >= 1):
            raise ValueError(f"views must be an integer >= 1, got {views!r}")
        if views > 1 and augment not in VIEW_AUGMENTATIONS:
            raise ValueError(
                f"{views} views need a random view pipeline ({', '.join(VIEW_AUGMENTATIONS)}), "
                f"not augment {augment!r}"
            )
        precision = precision or default_precision(data.device)
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; known: {PRECISIONS}")
        self.precision = precision
        self.views = views
        self.model, self.optimizer, self.objective = model, optimizer, objective
        self.data, self.normalizer = data, normalizer
        self.batch_size, self.seed, self.total_steps = batch_size, seed, total_steps
        self.augment = augment

    def epoch(self, step: int) -> int:
        return epoch_at(step, self.batch_size, len(self.data))

    def run(self, step: int) -> StepResult:
        """The update that takes the model from `step` to `step + 1`."""
        device = self.data.device
        idx = self.data.batch_index(self.batch_size, step, self.seed)
        batch = self.data.images[idx]
        if self.augment in VIEW_AUGMENTATIONS:  # 1 or more random views of each image
            batch = multi_view(batch, step, self.seed, self.views, self.augment)
        elif self.augment == "crop_flip":
            batch = crop_flip(batch, step, self.seed)
        x, y = self.normalizer(batch), self.data.labels[idx]
        if uses_channels_last(device, x.ndim == 4):
            x = x.contiguous(memory_format=torch.channels_last)
        epoch = self.epoch(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(
                step, group["base_lr"], self.total_steps, group["lr_schedule"], epoch
            )
        coefficients = self.objective.coefficients(step, epoch)
        autocast = self.precision == "bf16-autocast"
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            outputs = outputs_of(self.model, x)
            batch = Batch(x, y, outputs, self.model, views=self.views)
            loss = self.objective.loss(batch, coefficients)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        logits = outputs.logits
        if logits is not None and self.views > 1:
            logits = logits[: len(y)]  # the first view's, for the train-accuracy log
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        return StepResult(loss.detach(), logits, y, coefficients, lrs)
