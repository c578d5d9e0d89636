"""The update step shared by training runs (`ncrepro.train.loop.train`) and the
fine-tuning probe (`ncrepro.probes.finetune.finetune_probe`).

One call of `StepLoop.run(step)` is one update, a pure function of (model state,
optimizer state, seed, step): the batch `batch_indices(n, batch_size, step, seed)`
(last partial batch of each permutation dropped), optional crop+flip seeded by
(seed, step), normalization, each optimizer group's LR from its schedule at
(step, epoch), the objective's coefficients at (step, epoch), bf16 autocast on CUDA
only, zero_grad → backward → optimizer step. Callers own everything around it
(resume, checkpoints, logging, evaluation) and stop on `StepResult.diverged`.

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
from ncrepro.train.device_data import DeviceDataset, Normalizer, batch_indices, crop_flip
from ncrepro.train.objectives import Batch, Objective
from ncrepro.train.optim import SGD, AdamW
from ncrepro.train.schedules import epoch_at, lr_at

AUGMENTATIONS = ("none", "crop_flip", *VIEW_AUGMENTATIONS)


def place_model(model: nn.Module, device: torch.device, images_4d: bool) -> nn.Module:
    """Move `model` to `device` (in place); channels_last for image batches on CUDA."""
    model.to(device)
    if device.type == "cuda" and images_4d:
        model.to(memory_format=torch.channels_last)
    return model


@dataclass
class StepResult:
    loss: float  # the objective on this step's batch, before the update
    logits: torch.Tensor | None  # None for a model without classifier
    labels: torch.Tensor
    coefficients: dict[str, float]  # the objective's scheduled coefficients used

    @property
    def diverged(self) -> bool:
        return not math.isfinite(self.loss)

    def correct(self) -> int:
        """Number of batch samples whose logits' argmax is the label."""
        return int((self.logits.argmax(1) == self.labels).sum())


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
        use_cuda = device.type == "cuda"
        idx = batch_indices(len(self.data), self.batch_size, step, self.seed).to(device)
        batch = self.data.images[idx]
        if self.augment in VIEW_AUGMENTATIONS:  # 1 or more random views of each image
            batch = multi_view(batch, step, self.seed, self.views, self.augment)
        elif self.augment == "crop_flip":
            batch = crop_flip(batch, step, self.seed)
        x, y = self.normalizer(batch), self.data.labels[idx]
        if use_cuda and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        epoch = self.epoch(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(
                step, group["base_lr"], self.total_steps, group["lr_schedule"], epoch
            )
        coefficients = self.objective.coefficients(step, epoch)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_cuda):
            outputs = outputs_of(self.model, x)
            batch = Batch(x, y, outputs, self.model, views=self.views)
            loss = self.objective.loss(batch, coefficients)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        logits = outputs.logits
        if logits is not None and self.views > 1:
            logits = logits[: len(y)]  # the first view's, for the train-accuracy log
        return StepResult(float(loss.detach()), logits, y, coefficients)
