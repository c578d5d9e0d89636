"""Training library: the model a run spec describes and the training loop (the stage that
writes a run's files is ncrepro.stages.train)."""

from __future__ import annotations

import torch

from ncrepro.train.loop import (
    CheckpointError,
    Interrupted,
    TrainResult,
    load_checkpoint,
    resolve_device,
    train,
    write_run_record,
)

__all__ = [
    "CheckpointError",
    "Interrupted",
    "TrainResult",
    "build_for_spec",
    "load_checkpoint",
    "resolve_device",
    "train",
    "write_run_record",
]


def build_for_spec(spec: dict, num_classes: int, image_shape: tuple[int, int, int]):
    """The model a spec describes, initialised from the spec's seed: `arch`, `width`,
    `arch_params` and the optional `head` and `classifier` (see
    ncrepro.models.PenultimateModel.set_head; absent = none / unchanged)."""
    from ncrepro.models import build_model

    torch.manual_seed(spec["seed"])
    return build_model(
        spec["arch"],
        num_classes=num_classes,
        in_channels=image_shape[0],
        image_size=image_shape[1],
        width=spec["width"],
        head=spec.get("head"),
        classifier=spec.get("classifier"),
        **spec.get("arch_params", {}),
    )
