"""CCA, the rank (Gaussian-copula) transform, the Gaussian information bottleneck and the
ETF signatures (ncrepro.metrics.cca, .information_bottleneck, .etf): known answers."""

import numpy as np
import pytest
from scipy.stats import norm

from ncrepro.metrics.cca import canonical_correlations, leading_summary
from ncrepro.metrics.etf import class_means, etf_metrics, etf_signatures
from ncrepro.metrics.information_bottleneck import (
    RankTransform,
    gaussian_ib,
    rank_transform,
    relative,
)


def orthonormal_centred(n, k, seed):
    """n×k with centred, orthonormal columns scaled so that (1/n) QᵀQ = I."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, k))
    a -= a.mean(0)
    q, _ = np.linalg.qr(a)
    return q * np.sqrt(n)


def pair_with_correlations(rho, n=500, extra_x=2, extra_y=3, seed=0):
    """x (N×(k+extra_x)), y (N×(k+extra_y)) whose sample canonical correlations are
    exactly rho (then zeros), each side mixed by a random invertible matrix."""
    rho = np.asarray(rho, float)
    k = len(rho)
    q = orthonormal_centred(n, 2 * k + extra_x + extra_y, seed)
    shared, noise = q[:, :k], q[:, k : 2 * k]
    x = np.hstack([shared, q[:, 2 * k : 2 * k + extra_x]])
    y = np.hstack([shared * rho + noise * np.sqrt(1 - rho**2), q[:, 2 * k + extra_x :]])
    rng = np.random.default_rng(seed + 1)
    mix_x = rng.standard_normal((x.shape[1],) * 2) + 3 * np.eye(x.shape[1])
    mix_y = rng.standard_normal((y.shape[1],) * 2) + 3 * np.eye(y.shape[1])
    return x @ mix_x + 5.0, y @ mix_y - 2.0


RHO = [0.95, 0.8, 0.5, 0.2]


def test_cca_recovers_known_canonical_correlations():
    x, y = pair_with_correlations(RHO)
    rho = canonical_correlations(x, y)
    assert len(rho) == min(x.shape[1], y.shape[1]) == 6
    np.testing.assert_allclose(rho[:4], RHO, atol=1e-10)
    np.testing.assert_allclose(rho[4:], 0.0, atol=1e-10)
    # symmetric, and invariant under invertible maps of either side
    np.testing.assert_allclose(canonical_correlations(y, x), rho, atol=1e-10)
    rng = np.random.default_rng(5)
    np.testing.assert_allclose(
        canonical_correlations(x @ (rng.standard_normal((6, 6)) + 4 * np.eye(6)), y),
        rho,
        atol=1e-9,
    )
    # a representation and an invertible linear map of it: all ones (identifiable)
    np.testing.assert_allclose(canonical_correlations(x, x @ np.diag([1, 2, 3, 4, 5, 6])), 1.0)


def test_cca_summary_and_rank_deficient_sides():
    x, y = pair_with_correlations(RHO)
    summary = leading_summary(canonical_correlations(x, y), 3)
    assert summary["count"] == 3
    assert summary["mean"] == pytest.approx(np.mean(RHO[:3]))
    assert summary["var"] == pytest.approx(np.var(RHO[:3]))
    # a dead unit (constant column) and a duplicated column change nothing without a
    # ridge (the whitening works on the column space) ...
    wide = np.hstack([x, np.zeros((len(x), 1)), x[:, :1]])
    np.testing.assert_allclose(canonical_correlations(wide, y)[:4], RHO, atol=1e-8)
    # ... and a small ridge shrinks every correlation a little
    shrunk = canonical_correlations(x, y, ridge=1e-3)
    assert np.all(shrunk[:4] < np.asarray(RHO)) and np.allclose(shrunk[:4], RHO, atol=1e-2)
    with pytest.raises(ValueError, match="same rows"):
        canonical_correlations(x, y[:-1])


def test_rank_transform_values_ties_and_new_data():
    data = np.array([[3.0, 1.0], [1.0, 1.0], [2.0, 5.0], [10.0, 1.0]])
    u = RankTransform.fit(data).uniform(data)
    # ranks / (N + 1); the three tied 1.0 of column 1 share the average rank 2
    np.testing.assert_allclose(u[:, 0], np.array([3, 1, 2, 4]) / 5)
    np.testing.assert_allclose(u[:, 1], np.array([2, 2, 4, 2]) / 5)
    z = RankTransform.fit(data).transform(data)
    np.testing.assert_allclose(z, norm.ppf(u))
    # new values through the fitted CDF: below all, between, equal to one, above all
    new = np.array([[0.0, 0.0], [2.5, 3.0], [2.0, 5.0], [11.0, 9.0]])
    np.testing.assert_allclose(
        RankTransform.fit(data).uniform(new),
        np.array([[0.5, 0.5], [2.5, 3.5], [2.0, 4.0], [4.5, 4.5]]) / 5,
    )


def test_rank_transform_is_invariant_under_monotone_maps():
    rng = np.random.default_rng(0)
    train, test = rng.standard_normal((300, 4)), rng.standard_normal((100, 4))
    train[:, 3] = np.maximum(train[:, 3], 0.0)  # ReLU-like ties at 0
    test[:, 3] = np.maximum(test[:, 3], 0.0)

    def monotone(a):  # a different strictly increasing map per coordinate
        return np.stack(
            [np.exp(a[:, 0]), a[:, 1] ** 3 + a[:, 1], 7 * a[:, 2] - 1, np.log1p(a[:, 3])], axis=1
        )

    z_train, z_test = rank_transform(train, test)
    m_train, m_test = rank_transform(monotone(train), monotone(test))
    np.testing.assert_array_equal(z_train, m_train)
    np.testing.assert_array_equal(z_test, m_test)
    # Gaussian margins on the fitted data: the ranks 1..N map to normal quantiles
    np.testing.assert_allclose(np.sort(z_train[:, 0]), norm.ppf(np.arange(1, 301) / 301))


def test_gaussian_ib_eigenvalues_are_one_minus_rho_squared():
    x, y = pair_with_correlations(RHO)
    ib = gaussian_ib(x, y)
    expected = np.sort(np.concatenate([1 - np.asarray(RHO) ** 2, [1.0, 1.0]]))
    np.testing.assert_allclose(ib.eigenvalues, expected, atol=1e-9)
    np.testing.assert_allclose(ib.r, 1.0, atol=1e-9)
    # v_i are left eigenvectors of Σ_x|y Σ_x⁻¹ (Chechik et al.'s definition)
    xc, yc = x - x.mean(0), y - y.mean(0)
    sx, sy, sxy = xc.T @ xc / len(x), yc.T @ yc / len(y), xc.T @ yc / len(x)
    m = (sx - sxy @ np.linalg.solve(sy, sxy.T)) @ np.linalg.inv(sx)
    for lam, v in zip(ib.eigenvalues, ib.vectors.T, strict=True):
        np.testing.assert_allclose(v @ m, lam * v, atol=1e-8)
    # λ = 1 − ρ² from CCA on the same data
    rho = canonical_correlations(x, y)
    np.testing.assert_allclose(ib.eigenvalues[:4], 1 - rho[:4] ** 2, atol=1e-9)
    # critical betas, α at a given β, the projection's K leading rows
    np.testing.assert_allclose(ib.critical_betas[:4], 1 / np.asarray(RHO) ** 2, rtol=1e-8)
    beta = 3.0  # above β_1^c = 1.108, β_2^c = 1.5625, below β_3^c = 4
    lam = ib.eigenvalues
    alpha = ib.alphas(beta, 4)
    np.testing.assert_allclose(alpha[:2], np.sqrt((beta * (1 - lam[:2]) - 1) / lam[:2]))
    np.testing.assert_array_equal(alpha[2:], 0.0)
    a = ib.projection(2, beta=4.0)  # β = β_3^c: α_3 = 0, the 2-dim solution's last β
    assert ib.next_critical_beta(2) == pytest.approx(4.0)
    np.testing.assert_allclose(a, ib.alphas(4.0, 2)[:, None] * ib.vectors[:, :2].T)
    # the default: the β → ∞ shape sqrt((1 − λ) / λ)
    shape = np.sqrt((1 - lam[:2]) / lam[:2])
    np.testing.assert_allclose(ib.projection(2), shape[:, None] * ib.vectors[:, :2].T)
    t = ib.transform(x, 2)
    assert t.shape == (len(x), 2)
    # each IB dimension is a canonical direction: its best linear prediction from y
    # (least squares, centred) correlates with it at ρ_i
    for i in range(2):
        ti = t[:, i] - t[:, i].mean()
        predicted = yc @ np.linalg.lstsq(yc, ti, rcond=None)[0]
        assert np.corrcoef(ti, predicted)[0, 1] == pytest.approx(RHO[i], abs=1e-8)


def test_gaussian_ib_matches_the_population_solution():
    """A large jointly Gaussian sample: λ_i close to 1 − ρ_i² of the population."""
    rng = np.random.default_rng(3)
    n, rho = 200_000, np.array([0.9, 0.6, 0.3])
    z = rng.standard_normal((n, 3))
    x = z @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.1, 0.0, 3.0]])
    y = z * rho + rng.standard_normal((n, 3)) * np.sqrt(1 - rho**2)
    ib = gaussian_ib(x, y)
    np.testing.assert_allclose(ib.eigenvalues, np.sort(1 - rho**2), atol=0.01)


def test_relative_alphas_and_infinite_beta():
    x, y = pair_with_correlations([0.9, 0.9, 0.9])
    ib = gaussian_ib(x, y)
    # equal correlations: equal scalings at any β, at the next critical β = ∞ too
    np.testing.assert_allclose(relative(ib.alphas(10.0, 3)), 1.0, atol=1e-9)
    assert ib.next_critical_beta(3) == np.inf
    np.testing.assert_allclose(relative(ib.alphas(np.inf, 3)), 1.0, atol=1e-9)


def simplex(k, d, scale=1.0, shift=0.0, seed=0):
    """K simplex-ETF means in d dims, rotated randomly."""
    m = np.eye(k) - 1.0 / k
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return scale * (np.hstack([m, np.zeros((k, d - k))]) @ rotation) + shift


def test_etf_signatures_of_a_simplex_and_of_a_hand_case():
    sig = etf_signatures(simplex(5, 8, scale=3.0, shift=2.0))
    assert sig["etf_norm_cv"] == pytest.approx(0.0, abs=1e-12)
    assert sig["etf_angle_std_deg"] == pytest.approx(0.0, abs=1e-5)
    assert sig["etf_mean_cosine"] == pytest.approx(-0.25) == sig["etf_cosine_target"]
    # three means (0,0), (2,0), (0,4): centred (-2/3,-4/3), (4/3,-4/3), (-2/3,8/3)
    sig = etf_signatures(np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]]))
    c = np.array([[-2, -4], [4, -4], [-2, 8]]) / 3
    norms = np.linalg.norm(c, axis=1)
    cos = [c[i] @ c[j] / norms[i] / norms[j] for i, j in ((0, 1), (0, 2), (1, 2))]
    assert sig["etf_norm_cv"] == pytest.approx(norms.std() / norms.mean())
    assert sig["etf_mean_cosine"] == pytest.approx(np.mean(cos))
    assert sig["etf_angle_std_deg"] == pytest.approx(np.degrees(np.arccos(cos)).std())


def test_etf_metric_set_on_collapsed_features():
    k, d = 4, 6
    means = simplex(k, d)
    labels = np.repeat(np.arange(k), 5)
    rng = np.random.default_rng(0)
    features = means[labels] + 1e-3 * rng.standard_normal((len(labels), d))
    data = {"features": features, "labels": labels}
    rows = etf_metrics(data, data, k, seed=0)
    values = {(r["split"], r["metric"]): r["value"] for r in rows}
    assert values[("train", "nc1")] < 1e-4
    assert values[("test", "etf_mean_cosine")] == pytest.approx(-1 / 3, abs=1e-3)
    np.testing.assert_allclose(class_means(features, labels, k), means, atol=2e-3)
