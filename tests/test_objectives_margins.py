"""SupCon + cross-entropy (with and without the feature penalty), ArcFace and CosFace:
values against hand computations, their per-epoch schedules, what they read from the
model, and the schema entries that configure them."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ncrepro.config import load_schema
from ncrepro.models.base import Outputs
from ncrepro.train.contrastive import supcon_loss
from ncrepro.train.objectives import (
    OBJECTIVES,
    ArcFace,
    Batch,
    CosFace,
    SupConCrossEntropy,
    build_objective,
    ramp,
)


class _Classifier(nn.Module):
    """A bare model: only its classifier (what the margin losses read)."""

    def __init__(self, weight):
        super().__init__()
        self.classifier = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(weight)


def _batch(features, labels, *, logits=None, backbone=None, model=None):
    backbone = features if backbone is None else backbone
    if logits is None:
        logits = torch.zeros(len(labels), int(labels.max()) + 1)
    return Batch(torch.zeros(len(labels), 1), labels, Outputs(backbone, features, logits), model)


def test_registered_and_built_from_config():
    assert {"supcon_ce", "arcface", "cosface"} <= set(OBJECTIVES)
    assert isinstance(
        build_objective({"name": "supcon_ce", "temperature": 0.05}), SupConCrossEntropy
    )
    assert isinstance(build_objective({"name": "arcface", "scale": 16, "margin": 0.1}), ArcFace)
    assert isinstance(build_objective({"name": "cosface", "scale": 32, "margin": 0.25}), CosFace)
    with pytest.raises(ValueError, match="needs temperature"):
        build_objective({"name": "supcon_ce"})
    with pytest.raises(ValueError, match="temperature > 0"):
        build_objective({"name": "supcon_ce", "temperature": 0.1, "on": "logits"})
    with pytest.raises(ValueError, match="scale > 0"):
        build_objective({"name": "arcface", "scale": 0, "margin": 0.1})


def test_supcon_ce_is_cross_entropy_plus_supcon_on_the_backbone():
    torch.manual_seed(0)
    backbone, z = torch.randn(6, 5), torch.randn(6, 3)
    logits, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    batch = _batch(z, y, logits=logits, backbone=backbone)
    ce = F.cross_entropy(logits, y)
    objective = SupConCrossEntropy(temperature=0.05, weight=0.5)
    assert objective.coefficients(0, 3) == {}  # no penalty, no coefficient
    expected = ce + 0.5 * supcon_loss(backbone, y, temperature=0.05)
    torch.testing.assert_close(objective.loss(batch, {}), expected)
    on_features = SupConCrossEntropy(temperature=0.05, on="features")
    expected = ce + supcon_loss(z, y, temperature=0.05)
    torch.testing.assert_close(on_features.loss(batch, {}), expected)


def test_supcon_ce_with_the_feature_penalty_lpc_scl():
    """LPC-SCL: + gamma_e · mean(z²) on the features, gamma_e as feature_penalty's."""
    backbone = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    objective = SupConCrossEntropy(temperature=0.1, gamma=0.01, gamma_factor=2.0, gamma_max=0.03)
    gammas = [objective.coefficients(0, e)["gamma"] for e in range(4)]
    assert gammas == [0.01, 0.02, 0.03, 0.03]
    batch = _batch(z, y, backbone=backbone)
    without = SupConCrossEntropy(temperature=0.1).loss(batch, {})
    with_penalty = objective.loss(batch, {"gamma": 0.02})
    # mean(z²) = (1 + 4 + 9 + 16 + 0 + 0 + 1 + 1) / 8 = 4
    assert (with_penalty - without).item() == pytest.approx(0.02 * 4.0, rel=1e-6)


def test_ramp_and_the_arcface_schedule_of_the_appendix():
    """s = min(16 + e, 64), m = min(0.1 + 0.01 e, 0.5) in epoch e (0-based)."""
    arc = ArcFace(
        scale=16, scale_step=1, scale_max=64, margin=0.1, margin_step=0.01, margin_max=0.5
    )
    assert arc.coefficients(0, 0) == {"scale": 16, "margin": 0.1}
    c = arc.coefficients(0, 20)
    assert c["scale"] == 36 and c["margin"] == pytest.approx(0.3)
    assert arc.coefficients(0, 1000) == {"scale": 64, "margin": 0.5}
    assert ramp(2.0, 0.0, None, 10**6) == 2.0  # fixed


def _two_class_batch(theta, label=0):
    """One sample at angle theta from W_0 = e1 (norm 3), W_1 = e2 (norm 0.5)."""
    w = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    z = 2.0 * torch.tensor([[math.cos(theta), math.sin(theta)]])
    return _batch(z, torch.tensor([label]), model=_Classifier(w))


def _ce(logits, label):
    return -logits[label] + math.log(sum(math.exp(v) for v in logits))


def test_arcface_adds_the_angle_margin_to_the_label_only():
    theta, s, m = 0.4, 10.0, 0.3
    batch = _two_class_batch(theta)
    loss = ArcFace(scale=s, margin=m).loss(batch, {"scale": s, "margin": m})
    # cosines to W_0, W_1 (norms of W and z do not matter): cos θ, sin θ
    expected = _ce([s * math.cos(theta + m), s * math.sin(theta)], 0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # the label's weight row gets a gradient through the classifier
    loss.backward()
    assert batch.model.classifier.weight.grad.abs().sum() > 0


def test_arcface_beyond_pi_uses_the_linear_fallback():
    """θ + m > π: the logit is cos θ − m · sin(π − m) (insightface, the LPC code), then
    clamped to −(1 − 1e-7) like every target logit: cos θ <= −cos m implies
    cos θ − m sin m < −1, so the clamp always binds there."""
    theta, s, m = 3.0, 4.0, 0.5  # cos θ = -0.99 <= cos(π - 0.5) = -0.878
    batch = _two_class_batch(theta)
    loss = ArcFace(scale=s, margin=m).loss(batch, {"scale": s, "margin": m})
    target = max(math.cos(theta) - m * math.sin(math.pi - m), -1.0 + 1e-7)
    expected = _ce([s * target, s * math.sin(theta)], 0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_cosface_subtracts_the_margin_from_the_label_cosine():
    theta, s, m = 1.0, 32.0, 0.25
    batch = _two_class_batch(theta, label=1)  # label 1: its cosine is sin θ
    loss = CosFace(scale=s, margin=m).loss(batch, {"scale": s, "margin": m})
    expected = _ce([s * math.cos(theta), s * (math.sin(theta) - m)], 1)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_margin_losses_need_the_classifier():
    batch = _batch(torch.ones(2, 2), torch.tensor([0, 1]), model=nn.Identity())
    with pytest.raises(ValueError, match="classifier weight"):
        CosFace(scale=1, margin=0.1).loss(batch, {"scale": 1.0, "margin": 0.1})


def test_schema_accepts_what_the_code_accepts():
    import jsonschema

    schema = load_schema()
    defs = schema["$defs"]

    def valid(instance):
        wrapped = {"$defs": defs, **defs["objective"]}
        return jsonschema.Draft202012Validator(wrapped).is_valid(instance)

    good = [
        {"name": "supcon_ce", "temperature": 0.05},
        {"name": "supcon_ce", "temperature": 0.05, "on": "features", "gamma": 0.01},
        {"name": "arcface", "scale": 16, "scale_step": 1, "scale_max": 64, "margin": 0.1},
        {"name": "cosface", "scale": 32, "margin": 0.25},
    ]
    for objective in good:
        assert valid(objective), objective
        build_objective(objective)
    assert not valid({"name": "supcon_ce"})
    assert not valid({"name": "arcface", "scale": 16})
    assert not valid({"name": "cosface", "scale": 16, "margin": 0.1, "gamma": 1})
