"""Geometric complexity (ncrepro.metrics.geometric) and the GC penalty objective: closed
forms, hand-computed Jacobians, unbiasedness of every estimator, the collapse quantities
and the bound (Munn, Dherin & Gonzalvo 2024)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ncrepro.metrics import geometric as G
from ncrepro.train.objectives import Batch, GCPenalty, build_objective

torch.set_num_threads(1)
ESTIMATORS = ("batch", "entries", "outputs", "projections")


class Linear(nn.Module):
    """h(x) = A vec(x): GC = ||A||_F^2 for every input."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, x):
        return x.flatten(1) @ self.a.T


class TanhNet(nn.Module):
    """h(x) = W2 tanh(W1 x + b1) + b2, Jacobian W2 diag(1 - tanh^2(W1 x + b1)) W1."""

    def __init__(self, d_in=6, hidden=5, d_out=4, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.l1, self.l2 = nn.Linear(d_in, hidden), nn.Linear(hidden, d_out)

    def forward(self, x):
        return self.l2(torch.tanh(self.l1(x)))

    def jacobian(self, x):  # hand-computed, one sample
        s = 1 - torch.tanh(self.l1(x)) ** 2
        return self.l2.weight @ torch.diag(s) @ self.l1.weight


def _double(module):
    return module.double().eval()


@pytest.mark.parametrize("method", ["loop", "vmap"])
def test_linear_map_gc_is_frobenius_norm(method):
    torch.manual_seed(1)
    a = torch.randn(7, 2 * 3 * 3, dtype=torch.float64)
    fn = Linear(a)
    x = torch.randn(11, 2, 3, 3, dtype=torch.float64)
    expected = float(a.pow(2).sum())
    assert G.gc_exact(fn, x, chunk=4, method=method) == pytest.approx(expected, rel=1e-12)
    norms = G.jacobian_sq_norms(fn, x, chunk=3, method=method)
    np.testing.assert_allclose(norms.numpy(), expected, rtol=1e-12)
    # every estimator is exact for fraction 1 where it keeps everything
    gen = torch.Generator().manual_seed(0)
    assert G.gc_batch(fn, x, 1.0, gen) == pytest.approx(expected, rel=1e-12)
    assert G.gc_outputs(fn, x, 1.0, gen) == pytest.approx(expected, rel=1e-12)
    assert G.gc_entries(fn, x, 1.0, gen) == pytest.approx(expected, rel=1e-12)


def test_tanh_network_matches_hand_computed_jacobian():
    net = _double(TanhNet())
    x = torch.randn(9, 6, dtype=torch.float64)
    with torch.no_grad():
        by_hand = torch.stack([net.jacobian(xi) for xi in x])  # 9 x 4 x 6
    for method in ("loop", "vmap"):
        jac = torch.cat([j for _, j in G.jacobians(net, x, chunk=4, method=method)])
        torch.testing.assert_close(jac, by_hand, rtol=1e-12, atol=1e-12)
    expected = float(by_hand.pow(2).sum((1, 2)).mean())
    assert G.gc_exact(net, x) == pytest.approx(expected, rel=1e-12)
    # only some output rows
    rows = torch.tensor([3, 0])
    (_, part), *_ = list(G.jacobians(net, x, chunk=9, outputs=rows))
    torch.testing.assert_close(part, by_hand[:, rows], rtol=1e-12, atol=1e-12)


def test_conv_model_loop_and_vmap_agree_in_eval_mode():
    from ncrepro.models import build_model

    torch.manual_seed(0)
    model = build_model("vgg11_bn", num_classes=3, in_channels=1, image_size=8, width=0.0625)
    # non-trivial batch-norm statistics, then eval mode (model_map): samples independent
    model.train()
    model(torch.randn(16, 1, 8, 8))
    fn = G.model_map(model, "features")
    assert not model.training
    x = torch.randn(5, 1, 8, 8)
    loop = G.jacobian_sq_norms(fn, x, chunk=2, method="loop")
    vmap = G.jacobian_sq_norms(fn, x, chunk=5, method="vmap")
    torch.testing.assert_close(loop, vmap, rtol=1e-5, atol=1e-8)
    # the logits' GC: through the classifier
    logits = G.gc_exact(G.model_map(model, "logits"), x)
    assert logits > 0 and math.isfinite(logits)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimators_are_unbiased(estimator):
    net = _double(TanhNet(d_in=5, hidden=6, d_out=8, seed=3))
    x = torch.randn(12, 5, dtype=torch.float64) * 2
    exact = G.gc_exact(net, x)
    gen = torch.Generator().manual_seed(7)
    draws = np.array([G.gc_estimate(net, x, estimator, 0.25, gen, chunk=5) for _ in range(300)])
    # the mean of 300 draws is within 4 standard errors of the exact value
    assert abs(draws.mean() - exact) <= 4 * draws.std(ddof=1) / math.sqrt(len(draws))
    assert draws.std() > 0  # a genuine random estimator at fraction 0.25


def test_estimator_draws_unbiased_and_consistent():
    net = _double(TanhNet(d_in=5, hidden=6, d_out=8, seed=4))
    x = torch.randn(16, 5, dtype=torch.float64)
    fractions = {e: [0.25, 1.0] for e in ESTIMATORS}
    exact, rows = G.estimator_draws(net, x, fractions, draws=200, seed=0, chunk=6)
    assert exact == pytest.approx(G.gc_exact(net, x), rel=1e-12)
    for estimator in ESTIMATORS:
        for fraction in (0.25, 1.0):
            values = np.array(
                [
                    r["value"]
                    for r in rows
                    if r["estimator"] == estimator and r["fraction"] == fraction
                ]
            )
            assert len(values) == 200
            if fraction == 1.0 and estimator != "projections":
                np.testing.assert_allclose(values, exact, rtol=1e-12)  # keeps everything
            else:
                sem = values.std(ddof=1) / math.sqrt(len(values))
                assert abs(values.mean() - exact) <= 4 * sem + 1e-12
    # the same seed gives the same draws
    assert (
        G.estimator_draws(net, x, fractions, draws=3, seed=5)[1]
        == G.estimator_draws(net, x, fractions, draws=3, seed=5)[1]
    )


def test_projection_count_and_bad_arguments():
    net = _double(TanhNet())
    x = torch.randn(4, 6, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="fraction"):
        G.gc_batch(net, x, 0.0, gen)
    with pytest.raises(ValueError, match="unknown GC estimator"):
        G.gc_estimate(net, x, "magic", 0.5, gen)
    with pytest.raises(ValueError, match="Generator"):
        G.gc_estimate(net, x, "batch", 0.5)
    with pytest.raises(ValueError, match="output"):
        G.model_map(net, "pixels")
    with pytest.raises(ValueError, match="method"):
        G.gc_exact(net, x, method="fast")


# ------------------------------------------------------------------ collapse quantities


def test_geometric_collapse_and_inverse_distances_by_hand():
    means = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    # squared distances 4, 1, 5 -> mean inverse (1/4 + 1 + 1/5) / 3
    inverse = (0.25 + 1.0 + 0.2) / 3
    assert G.mean_inverse_sq_distance(means) == pytest.approx(inverse)
    assert G.geometric_collapse(2.0, means) == pytest.approx(3 * 2.0 * inverse)
    # = GC/(K-1) * sum over ordered pairs of 1/d^2
    assert G.geometric_collapse(2.0, means) == pytest.approx(2.0 / 2 * 2 * (0.25 + 1.0 + 0.2))
    with pytest.raises(ValueError, match="K >= 2"):
        G.geometric_collapse(1.0, means[:1])


def test_ncc_error_by_hand():
    means = np.array([[0.0, 0.0], [4.0, 0.0]])
    features = np.array([[1.0, 0.0], [3.0, 1.0], [1.9, 5.0], [2.1, 0.0]])
    labels = np.array([0, 1, 1, 0])
    # nearest: 0, 1, 0, 1 -> two errors
    assert G.ncc_error(features, labels, means) == 0.5
    assert G.ncc_error(features, labels, means, chunk=1) == 0.5
    stats = G.class_means(features, labels, 2)
    np.testing.assert_allclose(stats, [[1.55, 0.0], [2.45, 3.0]])
    with pytest.raises(ValueError, match="without samples"):
        G.class_means(features, np.zeros(4, int), 2)


def test_bound_formula_poincare_and_relative_error():
    assert G.ncc_error_bound(0.01, 10, 5) == pytest.approx(12 * 9 * (1 + 2.5 / 5) * 0.01)
    assert G.gc_bound(0.5, 10, 5, 0.02) == pytest.approx(G.ncc_error_bound(0.01, 10, 5))
    assert G.poincare_estimate([1.0, 3.0, np.nan], [2.0, 2.0, 1.0]) == 1.5
    with pytest.raises(ValueError):
        G.poincare_estimate([np.nan], [1.0])
    with pytest.raises(ValueError, match="Poincar"):
        G.gc_bound(0.5, 10, 5, 0.0)
    assert G.relative_error(1.1, 1.0) == pytest.approx(0.1)


def test_geometric_collapse_bounds_cdnv_for_gaussian_classes():
    """Gaussian classes N(mu_c, s^2 I) have Poincare constant s^2; a linear embedding
    h = A x has Var_c = s^2 ||A||_F^2 = rho * GC_c, so CDNV <= rho * GCol (eq. 6)."""
    from ncrepro.metrics import ClassStats, cdnv

    rng = np.random.default_rng(0)
    s, k, n, d_in = 0.7, 4, 4000, 6
    centres = rng.normal(size=(k, d_in)) * 3
    x = np.concatenate([c + s * rng.normal(size=(n, d_in)) for c in centres])
    y = np.repeat(np.arange(k), n)
    a = rng.normal(size=(3, d_in))
    h = x @ a.T
    gc = float((a**2).sum())
    means = G.class_means(h, y, k)
    value = cdnv(ClassStats.from_features(h, y, k, scatter="none"))
    collapse = G.geometric_collapse(gc, means)
    assert value <= s**2 * collapse
    assert value <= s**2 * collapse / k * 1.2  # for a linear map GC_c = GC: K times tighter


def test_ncc_bound_holds_by_monte_carlo():
    """The CDNV bound of the nearest-class-mean classifier with means from m samples holds
    on Gaussian classes (its derivation is ours: check it)."""
    from ncrepro.metrics import ClassStats, cdnv

    rng = np.random.default_rng(1)
    k, d, m, spread = 3, 5, 4, 1.2
    centres = rng.normal(size=(k, d)) * 2
    errors = []
    for _ in range(300):
        support = np.concatenate([c + spread * rng.normal(size=(m, d)) for c in centres])
        means = G.class_means(support, np.repeat(np.arange(k), m), k)
        test = np.concatenate([c + spread * rng.normal(size=(50, d)) for c in centres])
        errors.append(G.ncc_error(test, np.repeat(np.arange(k), 50), means))
    population = np.concatenate([c + spread * rng.normal(size=(20000, d)) for c in centres])
    labels = np.repeat(np.arange(k), 20000)
    avg_cdnv = cdnv(ClassStats.from_features(population, labels, k, scatter="none"))
    assert np.mean(errors) <= G.ncc_error_bound(avg_cdnv, k, m)


# ------------------------------------------------------------------------- GC penalty


def _mlp(seed=0):
    from ncrepro.models import build_model

    torch.manual_seed(seed)
    return build_model(
        "mlp", num_classes=3, in_channels=1, image_size=4, width=1.0, depth=2, hidden=8
    )


def _batch(model, x, y):
    return Batch(x, y, model.outputs(x), model)


def test_gc_penalty_exact_equals_logit_gc():
    model = _mlp()
    x, y = torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    objective = build_objective({"name": "gc_penalty", "rate": 0.5})
    objective.coefficients(0, 0)
    penalty = float(objective.penalty(_batch(model, x, y)).detach())
    expected = G.gc_exact(G.model_map(model, "logits"), x)  # MLP: no batch coupling
    assert penalty == pytest.approx(expected, rel=1e-5)
    model.train()
    ce = torch.nn.functional.cross_entropy(model(x), y)
    loss = objective.loss(_batch(model, x, y), {})
    assert float(loss) == pytest.approx(float(ce) + 0.5 * expected, rel=1e-5)
    on_features = GCPenalty(rate=1.0, on="features").penalty(_batch(model, x, y))
    assert float(on_features) == pytest.approx(
        G.gc_exact(G.model_map(model, "features"), x), rel=1e-5
    )


def test_gc_penalty_projections_unbiased_seeded_and_differentiable():
    model = _mlp(1)
    x, y = torch.randn(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    exact = G.gc_exact(G.model_map(model, "logits"), x)
    model.train()
    objective = GCPenalty(rate=1.0, estimator="projections", projections=2)
    values = []
    for step in range(400):
        objective.coefficients(step, 0)
        values.append(float(objective.penalty(_batch(model, x, y))))
    values = np.array(values)
    assert abs(values.mean() - exact) <= 4 * values.std(ddof=1) / math.sqrt(len(values))
    objective.coefficients(7, 0)
    again = float(objective.penalty(_batch(model, x, y)))
    assert again == values[7]  # seeded by the step: a resumed run draws the same
    # double backward: the penalty moves the parameters' gradients
    model.zero_grad()
    objective.loss(_batch(model, x, y), {}).backward()
    with_penalty = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    GCPenalty(rate=0.0).loss(_batch(model, x, y), {}).backward()
    plain = [p.grad.clone() for p in model.parameters()]
    assert any(not torch.allclose(a, b) for a, b in zip(with_penalty, plain, strict=True))


def test_gc_penalty_leaves_batch_norm_statistics_alone():
    from ncrepro.models import build_model

    torch.manual_seed(0)
    model = build_model("vgg11_bn", num_classes=3, in_channels=1, image_size=8, width=0.0625)
    model.train()
    x, y = torch.randn(8, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    batch = _batch(model, x, y)  # the step's forward pass updates the statistics once
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    loss = GCPenalty(rate=0.1, estimator="projections").loss(batch, {})
    loss.backward()
    after = {k: v for k, v in model.state_dict().items() if "running" in k}
    for key, value in before.items():
        torch.testing.assert_close(after[key], value)
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_gc_penalty_arguments():
    with pytest.raises(ValueError, match="gc_penalty"):
        GCPenalty(rate=-1.0)
    with pytest.raises(ValueError, match="gc_penalty"):
        GCPenalty(rate=1.0, estimator="entries")
    with pytest.raises(ValueError, match="needs rate"):
        build_objective({"name": "gc_penalty"})


def test_gc_penalty_schema_branch_accepts_what_the_code_accepts():
    import jsonschema

    from ncrepro.config import load_schema

    defs = load_schema()["$defs"]
    schema = {"$defs": defs, "$ref": "#/$defs/objective"}
    ok = {
        "name": "gc_penalty",
        "rate": 0.01,
        "on": "logits",
        "estimator": "projections",
        "projections": 2,
    }
    assert jsonschema.Draft202012Validator(schema).is_valid(ok)
    build_objective(ok)
    assert not jsonschema.Draft202012Validator(schema).is_valid({"name": "gc_penalty"})
