"""Training objectives: the loss a run minimises, named by `spec["objective"]`.

`spec["objective"]` is a dict {"name": ..., **parameters}; without it the objective
is {"name": spec.get("loss", "cross_entropy")}, so older specs keep their loss.
`OBJECTIVES` maps each name to its class: a new objective (SupCon, ArcFace/CosFace,
a gradient-norm penalty, ...) is a subclass of `Objective` added there, and the
training loop needs no change.

An objective sees one `Batch`: the model's `Outputs` (backbone output, the
classifier's input `features`, `logits`; see ncrepro.models.base), the labels, and
the inputs and model themselves (for losses that read the classifier's weights, as
ArcFace/CosFace do, or differentiate through the model, as a gradient-norm penalty
does). Coefficients that change during training are pure functions of (step, epoch),
never running state, so resumed runs stay bit-identical; `coefficients(step, epoch)`
gives their values, the loop passes them to `loss` and writes them to the train log.
The epoch is
`ncrepro.train.schedules.epoch_at(step, batch_size, n_train)`
= step · batch_size // n_train (samples seen over the train-set size).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ncrepro.models.base import Outputs


@dataclass
class Batch:
    """One training step's batch, as the objective sees it."""

    inputs: torch.Tensor  # normalized (and augmented) images
    labels: torch.Tensor
    outputs: Outputs  # the model's forward pass on `inputs`
    model: nn.Module


class Objective:
    """A loss over model outputs. Subclasses set `name`, take their parameters as
    keyword arguments (checked in `__init__`) and define `loss`."""

    name: str

    def coefficients(self, step: int, epoch: int) -> dict[str, float]:
        """Scheduled coefficients for the update at `step` (in epoch `epoch`)."""
        return {}

    def loss(self, batch: Batch, coefficients: dict[str, float]) -> torch.Tensor:
        """Scalar loss of a batch, given `coefficients(step, epoch)`."""
        raise NotImplementedError


def _logits(batch: Batch, name: str) -> torch.Tensor:
    if batch.outputs.logits is None:
        raise ValueError(f"objective {name!r} needs a classifier; the model has none")
    return batch.outputs.logits


class CrossEntropy(Objective):
    """Mean cross-entropy of the logits (computed in float32 under autocast)."""

    name = "cross_entropy"

    def loss(self, batch, coefficients):
        return F.cross_entropy(_logits(batch, self.name).float(), batch.labels)


class FeaturePenalty(Objective):
    """Cross-entropy + γ_e · mean(z²) over the batch and the d dimensions of the
    features z (the classifier's input): the objective of Latent Point Collapse
    (Sbailò & Ghiringhelli), whose L2 penalty pulls each class onto one point.

    γ_e = min(gamma · gamma_factor^e, gamma_max) in epoch e: gamma_factor = 1 keeps γ
    fixed, > 1 grows it each epoch up to gamma_max (default: no cap).
    """

    name = "feature_penalty"

    def __init__(self, *, gamma: float, gamma_factor: float = 1.0, gamma_max: float | None = None):
        if not (gamma >= 0 and gamma_factor > 0 and (gamma_max is None or gamma_max >= 0)):
            raise ValueError(
                f"feature_penalty needs gamma >= 0, gamma_factor > 0, gamma_max >= 0; got "
                f"{gamma}, {gamma_factor}, {gamma_max}"
            )
        self.gamma, self.gamma_factor, self.gamma_max = gamma, gamma_factor, gamma_max

    def coefficients(self, step, epoch):
        try:
            gamma = self.gamma * self.gamma_factor**epoch
        except OverflowError:  # a large factor over many epochs: the cap (if any) applies
            gamma = math.inf
        if self.gamma_max is not None:
            gamma = min(gamma, self.gamma_max)
        return {"gamma": gamma}

    def loss(self, batch, coefficients):
        ce = F.cross_entropy(_logits(batch, self.name).float(), batch.labels)
        return ce + coefficients["gamma"] * batch.outputs.features.float().pow(2).mean()


OBJECTIVES: dict[str, type[Objective]] = {
    CrossEntropy.name: CrossEntropy,
    FeaturePenalty.name: FeaturePenalty,
}


def objective_config(spec: dict) -> dict:
    """`spec["objective"]`, or the objective the older "loss" key names."""
    return dict(spec.get("objective") or {"name": spec.get("loss", "cross_entropy")})


def build_objective(config: dict) -> Objective:
    """The objective {"name": ..., **parameters} describes."""
    params = dict(config)
    name = params.pop("name", None)
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    signature = inspect.signature(cls).parameters
    unknown = sorted(set(params) - set(signature))
    if unknown:
        raise ValueError(
            f"objective {name!r} does not take {', '.join(unknown)}; "
            f"its parameters: {', '.join(sorted(signature)) or 'none'}"
        )
    missing = [k for k, p in signature.items() if p.default is p.empty and k not in params]
    if missing:
        raise ValueError(f"objective {name!r} needs {', '.join(missing)}")
    return cls(**params)
