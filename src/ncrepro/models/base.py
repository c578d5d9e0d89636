"""The contract every architecture follows, and the width helpers they share."""

from __future__ import annotations

import math

import torch
from torch import nn


class PenultimateModel(nn.Module):
    """A classifier split into `penultimate` (the features) and one final `nn.Linear`.

    Subclasses define `penultimate(x) -> N×d` once and set `self.classifier`;
    `forward(x)` is *defined* as `classifier(penultimate(x))`, so the logits the
    network trains on and the features the metrics read can never disagree.
    W = `classifier.weight` (K×d), b = `classifier.bias` (K).
    """

    classifier: nn.Linear

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def feature_dim(self) -> int:
        """d, the width of the penultimate features (= `classifier.in_features`)."""
        return int(self.classifier.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.penultimate(x))


def scaled(channels: int, width: float) -> int:
    """`channels × width`, rounded half up, at least 1."""
    return max(1, math.floor(channels * width + 0.5))


def check_width(width: float) -> float:
    if not (isinstance(width, int | float) and math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a positive number, got {width!r}")
    return float(width)
