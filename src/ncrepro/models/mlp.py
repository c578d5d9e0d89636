"""Fully connected network on the flattened image."""

from __future__ import annotations

import torch
from torch import nn

from ncrepro.models.base import PenultimateModel, activation_module, scaled


class MLP(PenultimateModel):
    """`depth` hidden layers of `hidden × width` units, each Linear → ReLU (or SiLU with
    `activation="silu"`).

    The input image is flattened (C·H·W features). The paper's "MLP 3×1024" is
    depth=3, hidden=1024. **Backbone** (the penultimate features without a head) = the
    activation output of the last hidden layer.
    Layers use PyTorch's default nn.Linear initialisation.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        depth: int = 3,
        hidden: int = 1024,
        width: float = 1.0,
        activation: str = "relu",
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"mlp needs depth >= 1 hidden layers, got {depth}")
        size = scaled(hidden, width)
        layers: list[nn.Module] = [nn.Flatten()]
        previous = in_features
        for _ in range(depth):
            layers += [nn.Linear(previous, size), activation_module(activation)]
            previous = size
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(previous, num_classes)

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
