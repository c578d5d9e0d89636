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
from ncrepro.train.contrastive import supcon_loss
from ncrepro.train.device_data import to_device


@dataclass
class Batch:
    """One training step's batch, as the objective sees it.

    With `views` V > 1 (contrastive learning) `inputs` and `outputs` hold V augmented
    views of each of the N images, view-major (V·N rows), and `labels` the N labels."""

    inputs: torch.Tensor  # normalized (and augmented) images
    labels: torch.Tensor
    outputs: Outputs  # the model's forward pass on `inputs`
    model: nn.Module
    views: int = 1

    def per_view(self, rows: torch.Tensor) -> torch.Tensor:
        """N×V×d from V·N view-major rows (one per view and image) of `outputs`."""
        n = len(self.labels)
        if rows.shape[0] != self.views * n:
            raise ValueError(f"{rows.shape[0]} rows are not {self.views} views of {n} images")
        return rows.reshape(self.views, n, *rows.shape[1:]).transpose(0, 1)


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


class SupConCrossEntropy(Objective):
    """Cross-entropy + `weight` · SupCon, optionally + γ_e · mean(z²): the SCL and LPC-SCL
    models of Sbailò & Ghiringhelli (LPC).

    SupCon is `ncrepro.train.contrastive.supcon_loss` of one view (the batch itself, its
    labels), L2-normalized, at `temperature`, on `on`: "backbone" (default: the backbone's
    output, before any head, where the LPC code puts it) or "features" (the classifier's
    input). `gamma` > 0 adds the feature penalty with FeaturePenalty's schedule
    (gamma, gamma_factor, gamma_max) on the features z.
    """

    name = "supcon_ce"
    ON = ("backbone", "features")

    def __init__(
        self,
        *,
        temperature: float,
        weight: float = 1.0,
        on: str = "backbone",
        base_temperature: float | None = None,
        gamma: float = 0.0,
        gamma_factor: float = 1.0,
        gamma_max: float | None = None,
    ):
        if not (temperature > 0 and weight >= 0 and on in self.ON):
            raise ValueError(
                f"supcon_ce needs temperature > 0, weight >= 0, on in {self.ON}; got "
                f"{temperature}, {weight}, {on!r}"
            )
        self.temperature, self.weight, self.on = temperature, weight, on
        self.base_temperature = base_temperature
        self.penalty = FeaturePenalty(gamma=gamma, gamma_factor=gamma_factor, gamma_max=gamma_max)

    def coefficients(self, step, epoch):
        return self.penalty.coefficients(step, epoch) if self.penalty.gamma > 0 else {}

    def loss(self, batch, coefficients):
        ce = F.cross_entropy(_logits(batch, self.name).float(), batch.labels)
        embedding = batch.outputs.backbone if self.on == "backbone" else batch.outputs.features
        contrastive = supcon_loss(
            embedding,
            batch.labels,
            temperature=self.temperature,
            base_temperature=self.base_temperature,
        )
        loss = ce + self.weight * contrastive
        if "gamma" in coefficients:
            loss = loss + coefficients["gamma"] * batch.outputs.features.float().pow(2).mean()
        return loss


def ramp(start: float, per_epoch: float, maximum: float | None, epoch: int) -> float:
    """start + per_epoch · epoch, capped at `maximum` (None: no cap)."""
    value = start + per_epoch * epoch
    return value if maximum is None else min(value, maximum)


class _AngularMargin(Objective):
    """Cross-entropy of s · cos θ_j, θ_j the angle between the features z and the row W_j
    of the classifier's weight (read through `Batch.model.classifier`), with a margin on
    the label's logit (ArcFace, CosFace); replaces plain cross-entropy. The classifier's
    own logits W z stay the network's output (accuracy, evaluation).

    Scale and margin rise linearly per epoch: s_e = min(scale + scale_step · e,
    scale_max), m_e = min(margin + margin_step · e, margin_max) (steps 0: fixed).
    """

    def __init__(
        self,
        *,
        scale: float,
        margin: float,
        scale_step: float = 0.0,
        scale_max: float | None = None,
        margin_step: float = 0.0,
        margin_max: float | None = None,
    ):
        if not (scale > 0 and scale_step >= 0 and margin >= 0 and margin_step >= 0):
            raise ValueError(
                f"{self.name} needs scale > 0, margin >= 0 and non-negative steps; got "
                f"scale {scale} (+{scale_step}), margin {margin} (+{margin_step})"
            )
        self.scale, self.scale_step, self.scale_max = scale, scale_step, scale_max
        self.margin, self.margin_step, self.margin_max = margin, margin_step, margin_max

    def coefficients(self, step, epoch):
        return {
            "scale": ramp(self.scale, self.scale_step, self.scale_max, epoch),
            "margin": ramp(self.margin, self.margin_step, self.margin_max, epoch),
        }

    def cosines(self, batch: Batch) -> torch.Tensor:
        classifier = getattr(batch.model, "classifier", None)
        if classifier is None:
            raise ValueError(f"objective {self.name!r} needs the model's classifier weight")
        z = F.normalize(batch.outputs.features.float(), dim=1, eps=1e-7)
        w = F.normalize(classifier.weight.float(), dim=1, eps=1e-7)
        return z @ w.T

    def target_logit(self, cos: torch.Tensor, margin: float) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch, coefficients):
        cos = self.cosines(batch)
        label = F.one_hot(batch.labels, cos.shape[1]).bool()
        margin = self.target_logit(cos, coefficients["margin"])
        logits = torch.where(label, margin, cos) * coefficients["scale"]
        return F.cross_entropy(logits, batch.labels)


class ArcFace(_AngularMargin):
    """ArcFace (Deng et al.): the label's logit is cos(θ + m). Where θ + m would pass π
    (cos θ <= cos(π − m)) it is cos θ − m · sin(π − m) instead, as in the reference
    implementation (insightface) and the LPC code; cosines are clamped to ±(1 − 1e-7)."""

    name = "arcface"

    def target_logit(self, cos, margin):
        cos = cos.clamp(-1.0 + 1e-7, 1.0 - 1e-7)
        sin = torch.sqrt(1.0 - cos**2)
        phi = cos * math.cos(margin) - sin * math.sin(margin)
        phi = torch.where(
            cos > math.cos(math.pi - margin), phi, cos - math.sin(math.pi - margin) * margin
        )
        return phi.clamp(-1.0 + 1e-7, 1.0 - 1e-7)


class CosFace(_AngularMargin):
    """CosFace (Wang et al.): the label's logit is cos θ − m, clamped to ±(1 − 1e-7) as
    in the LPC code."""

    name = "cosface"

    def target_logit(self, cos, margin):
        return (cos - margin).clamp(-1.0 + 1e-7, 1.0 - 1e-7)


class SupCon(Objective):
    """The supervised contrastive loss alone (Khosla et al. 2020, L^sup_out): SupCon
    models are encoders trained without a classifier, their projection head's output
    (the features) L2-normalized. `ncrepro.train.contrastive.supcon_loss` of the N×V×d
    features of the batch's V views (`Batch.per_view`; one view: each image's positives
    are the other images of its class) at `temperature`; `base_temperature` scales the
    loss by temperature / base_temperature as the reference code does (0.07 there).
    """

    name = "supcon"

    def __init__(self, *, temperature: float = 0.1, base_temperature: float | None = None):
        if not (temperature > 0 and (base_temperature is None or base_temperature > 0)):
            raise ValueError(
                f"supcon needs temperature > 0 and base_temperature > 0 (or none); got "
                f"{temperature}, {base_temperature}"
            )
        self.temperature, self.base_temperature = temperature, base_temperature

    def loss(self, batch, coefficients):
        return supcon_loss(
            batch.per_view(batch.outputs.features),
            batch.labels,
            temperature=self.temperature,
            base_temperature=self.base_temperature,
        )


class GCPenalty(Objective):
    """Cross-entropy + `rate` · GC of the batch: explicit geometric-complexity
    regularization (Munn, Dherin & Gonzalvo 2024, appendix A.5.6, on the logits; Dherin et
    al. 2022). GC = (1/B) Σ_n ‖∂out(x_n)/∂x_n‖_F², `on` "logits" (default; the paper's
    choice) or "features" (the embedding), x the normalized inputs.

    estimator "exact": the K output coordinates' input gradients, K backward passes with
    create_graph; "projections": Hutchinson, (1/k) Σ_j ‖v_jᵀ ∂out/∂x‖² with v_j ~ N(0, I)
    per sample, k = `projections` backward passes: an unbiased estimate of the penalty and
    of its gradient. The draws are seeded by the step (resumed runs stay identical).

    The penalty needs input gradients, so the model runs a second forward pass on the
    inputs with requires_grad (the step's first pass gives the cross-entropy); batch norm's
    running statistics are frozen during it (momentum 0), so it does not count twice. In
    training mode batch norm couples the samples of a batch: the gradient taken is that of
    the batch's summed outputs, whose cross-sample terms are O(1/B). `rate` 0 is plain
    cross-entropy.
    """

    name = "gc_penalty"
    ON = ("logits", "features")
    ESTIMATORS = ("exact", "projections")

    def __init__(
        self, *, rate: float, on: str = "logits", estimator: str = "exact", projections: int = 1
    ):
        if not (rate >= 0 and on in self.ON and estimator in self.ESTIMATORS and projections >= 1):
            raise ValueError(
                f"gc_penalty needs rate >= 0, on in {self.ON}, estimator in {self.ESTIMATORS}, "
                f"projections >= 1; got {rate}, {on!r}, {estimator!r}, {projections}"
            )
        self.rate, self.on, self.estimator, self.projections = rate, on, estimator, projections
        self._step = 0

    def coefficients(self, step, epoch):
        self._step = step  # seeds the projections of this step's penalty
        return {}

    def penalty(self, batch: Batch) -> torch.Tensor:
        """The batch's GC of `on`, differentiable in the parameters (double backward)."""
        x = batch.inputs.detach().requires_grad_(True)
        norms = [m for m in batch.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [m.momentum for m in norms]
        try:
            for m in norms:
                m.momentum = 0.0  # running stats unchanged by the second pass
            out = batch.model.outputs(x)
        finally:
            for m, momentum in zip(norms, saved, strict=True):
                m.momentum = momentum
        out = (out.logits if self.on == "logits" else out.features).float()
        # cotangents made without a host sync: no index tensor built from Python numbers
        # on the device, and the CPU draws in one copy that the host does not wait for
        if self.estimator == "exact":
            cotangents = [torch.zeros_like(out) for _ in range(out.shape[1])]
            for k, cotangent in enumerate(cotangents):
                cotangent[:, k].fill_(1.0)
        else:
            gen = torch.Generator().manual_seed(1_000_003 * self._step + 12_345)
            draws = [torch.randn(out.shape, generator=gen) for _ in range(self.projections)]
            cotangents = to_device(torch.stack(draws), out.device).unbind(0)
        total = out.new_zeros(())
        for cotangent in cotangents:
            (grad,) = torch.autograd.grad(out, x, cotangent, create_graph=True)
            total = total + grad.float().pow(2).sum()
        scale = len(cotangents) if self.estimator == "projections" else 1
        return total / (scale * len(x))

    def loss(self, batch, coefficients):
        ce = F.cross_entropy(_logits(batch, self.name).float(), batch.labels)
        return ce if self.rate == 0 else ce + self.rate * self.penalty(batch)


OBJECTIVES: dict[str, type[Objective]] = {
    CrossEntropy.name: CrossEntropy,
    FeaturePenalty.name: FeaturePenalty,
    GCPenalty.name: GCPenalty,
    SupConCrossEntropy.name: SupConCrossEntropy,
    ArcFace.name: ArcFace,
    CosFace.name: CosFace,
    SupCon.name: SupCon,
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
