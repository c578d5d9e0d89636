"""Training objectives: values and gradients against closed forms, coefficient
schedules, the spec keys that choose them, and their errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from ncrepro.models.base import Outputs
from ncrepro.train.objectives import (
    OBJECTIVES,
    Batch,
    CrossEntropy,
    FeaturePenalty,
    build_objective,
    objective_config,
)
from ncrepro.train.schedules import epoch_at


def batch(features, logits, labels, backbone=None):
    backbone = features if backbone is None else backbone
    return Batch(
        torch.zeros(len(labels), 1, 2, 2), labels, Outputs(backbone, features, logits), None
    )


def test_registry_and_config():
    assert {"cross_entropy", "feature_penalty"} <= set(OBJECTIVES)
    assert objective_config({}) == {"name": "cross_entropy"}
    assert objective_config({"loss": "cross_entropy"}) == {"name": "cross_entropy"}
    lpc = {"name": "feature_penalty", "gamma": 0.1}
    assert objective_config({"loss": "cross_entropy", "objective": lpc}) == lpc  # objective wins
    assert isinstance(build_objective({"name": "cross_entropy"}), CrossEntropy)
    assert isinstance(build_objective(lpc), FeaturePenalty)


def test_cross_entropy_is_torchs():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    y = torch.tensor([0, 1])
    loss = CrossEntropy().loss(batch(torch.zeros(2, 4), logits, y), {})
    assert torch.equal(loss, F.cross_entropy(logits, y))
    # hand value: mean of logsumexp - logit of the label
    lse = torch.logsumexp(logits.double(), 1)
    assert loss.item() == pytest.approx(((lse[0] - 2.0) + (lse[1] - 0.5)).item() / 2, rel=1e-6)


def test_feature_penalty_value_and_gradient():
    """CE + gamma · mean(z²): z = [[1, 2], [3, 4]] has mean(z²) = 30 / 4 = 7.5, and the
    penalty's gradient is 2 · gamma · z / (N · d)."""
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    objective = FeaturePenalty(gamma=0.2)
    loss = objective.loss(batch(z, logits, y), {"gamma": 0.2})
    ce = math.log(1 + math.exp(-1.0))  # both rows: margin 1 for the label
    assert loss.item() == pytest.approx(ce + 0.2 * 7.5, rel=1e-6)
    loss.backward()
    torch.testing.assert_close(z.grad, 2 * 0.2 * z.detach() / 4, rtol=0, atol=1e-7)
    # the penalty reads the features, not the backbone output
    both = batch(z.detach(), logits, y, backbone=torch.full((2, 2), 100.0))
    assert objective.loss(both, {"gamma": 0.2}).item() == pytest.approx(ce + 1.5, rel=1e-6)


def test_feature_penalty_schedule():
    """gamma · factor^epoch, capped: 0.1, 0.2, 0.4, then the cap 0.5."""
    objective = FeaturePenalty(gamma=0.1, gamma_factor=2.0, gamma_max=0.5)
    gammas = [objective.coefficients(step=0, epoch=e)["gamma"] for e in range(6)]
    assert gammas == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    assert FeaturePenalty(gamma=0.3).coefficients(10, 7) == {"gamma": 0.3}  # fixed
    huge = FeaturePenalty(gamma=1.0, gamma_factor=1e10, gamma_max=7.0)
    assert huge.coefficients(0, 10_000) == {"gamma": 7.0}  # no overflow error


def test_epoch_is_samples_seen_over_n_train():
    # n = 60, batch 16: epoch = 16 · step // 60
    assert [epoch_at(s, 16, 60) for s in (0, 3, 4, 7, 8, 11, 12)] == [0, 0, 1, 1, 2, 2, 3]
    assert epoch_at(5, 100, 60) == 5  # batch capped at n: one batch = one epoch


@pytest.mark.parametrize(
    "config,match",
    [
        ({"name": "no_such_loss"}, "unknown objective 'no_such_loss'"),
        ({}, "unknown objective None"),
        ({"name": "cross_entropy", "gamma": 1}, "does not take gamma; its parameters: none"),
        ({"name": "feature_penalty", "gama": 1}, "does not take gama"),
        ({"name": "feature_penalty"}, "'feature_penalty' needs gamma"),
        ({"name": "feature_penalty", "gamma": -1}, "gamma >= 0"),
        ({"name": "feature_penalty", "gamma": 1, "gamma_factor": 0}, "gamma_factor > 0"),
    ],
)
def test_objective_errors(config, match):
    with pytest.raises(ValueError, match=match):
        build_objective(config)


def test_objectives_need_logits():
    encoder_batch = batch(torch.ones(2, 3), None, torch.tensor([0, 1]))
    for name, params in (("cross_entropy", {}), ("feature_penalty", {"gamma": 1.0})):
        objective = build_objective({"name": name, **params})
        with pytest.raises(ValueError, match="needs a classifier"):
            objective.loss(encoder_batch, objective.coefficients(0, 0))
