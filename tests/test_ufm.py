"""Tests for ncrepro.ufm: global UFM solver vs. the closed forms of
"The role of class encoding in neural collapse" (Massion, Makhlouf & Massart).

Conventions: J = 11^T/K, c = K sqrt(n lw lh), gamma = 1/(1 + lb).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncrepro import metrics, ufm
from ncrepro.ufm.solver import _spectral_projection_jacobian

K, N_PER = 4, 5
LW, LH = 1e-2, 2e-2  # c = 4 sqrt(5 * 2e-4) ~ 0.126


def one_hot(K=K, n=N_PER):
    return ufm.make_labels("one_hot", n, K=K)


def Jmat(K):
    return np.full((K, K), 1.0 / K)


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def assert_global_optimum(sol, Y, lw, lh, lb):
    d = ufm.kkt_diagnostics(sol.W, sol.H, sol.b, Y, lw, lh, lb)
    assert d["kkt_residual"] < 1e-10, d
    assert d["spectral_ratio"] <= 1 + 1e-9, d  # global-optimality certificate
    if np.isfinite(d["balance"]):
        assert d["balance"] < 1e-10


# ---------------------------------------------------------------- Theorem III.1 (one-hot)

C_ONE = ufm.c_constant(K, N_PER, LW, LH)
CRIT = C_ONE / (1 - C_ONE)
LAMBDA_BS = [0.0, 0.3 * CRIT, 0.9 * CRIT, CRIT, 1.1 * CRIT, 3 * CRIT, 1.0, 50.0, np.inf]


def expected_bias(lb, c=C_ONE, K=K):
    """Eq. (5), written out independently of ncrepro.ufm.theory."""
    if np.isinf(lb):
        return np.zeros(K)
    coef = 1 / (1 + lb) if lb <= c / (1 - c) else c / lb
    return coef * np.ones(K) / K


def expected_gram(lb, c=C_ONE, K=K, n=N_PER, lw=LW, lh=LH):
    """Eq. (4) with alpha_1 = alpha_2 = (1 - c) sqrt(lw / (n lh)) (derived, see theory.py)."""
    alpha = (1 - c) * np.sqrt(lw / (n * lh))
    sigma = 1.0 if lb <= c / (1 - c) else c / (lb * (1 - c))
    return alpha * (np.eye(K) - sigma * Jmat(K))


def test_critical_lambda_b_and_c():
    assert ufm.c_constant(K, N_PER, LW, LH) == pytest.approx(K * np.sqrt(N_PER * LW * LH))
    assert ufm.critical_lambda_b(K, N_PER, LW, LH) == pytest.approx(CRIT, rel=1e-15)
    assert np.isnan(ufm.critical_lambda_b(K, 100, 1.0, 1.0))


@pytest.mark.parametrize("lb", LAMBDA_BS)
def test_thm_III1_bias_both_regimes(lb):
    Y, _ = one_hot()
    sol = ufm.solve(Y, K + 2, LW, LH, lb)
    assert sol.converged
    np.testing.assert_allclose(sol.b, expected_bias(lb), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ufm.theory_bias(K, N_PER, LW, LH, lb), expected_bias(lb), rtol=1e-14)
    assert_global_optimum(sol, Y, LW, LH, lb)


@pytest.mark.parametrize("lb", LAMBDA_BS)
def test_thm_III1_gram_nc1_nc3(lb):
    Y, labels = one_hot()
    sol = ufm.solve(Y, K + 2, LW, LH, lb)
    Hbar = ufm.class_means(sol.H, labels, K)
    G = expected_gram(lb)
    # NC1: H* = Hbar* C exactly
    assert ufm.within_class_scatter(sol.H, labels) < 1e-14
    # eq. (4), including alpha_1 = alpha_2 = (1 - c) sqrt(lw/(n lh))
    assert rel(Hbar.T @ Hbar, G) < 1e-10
    assert rel(ufm.theory_gram(K, N_PER, LW, LH, lb), G) < 1e-14
    alpha, sigma = ufm.theory_gram_coefficients(K, N_PER, LW, LH, lb)
    assert alpha == pytest.approx((1 - C_ONE) * np.sqrt(LW / (N_PER * LH)), rel=1e-14)
    assert sigma == pytest.approx(1.0 if lb <= CRIT else C_ONE / (lb * (1 - C_ONE)), rel=1e-14)
    # eq. (3): W*^T = sqrt(n lh / lw) Hbar*  (NC3 on uncentred means)
    assert rel(sol.W.T, np.sqrt(N_PER * LH / LW) * Hbar) < 1e-10
    assert ufm.nc3(sol.W, Hbar, centered=False) < 1e-18
    # NC3 with centred means: 0 in the simplex-ETF regime, closed form beyond
    expected_nc3 = ufm.theory_nc3(K, 1.0 if lb <= CRIT else C_ONE / (lb * (1 - C_ONE)))
    assert ufm.nc3(sol.W, Hbar) == pytest.approx(expected_nc3, rel=1e-8, abs=1e-15)
    # objective matches the closed form
    assert sol.objective == pytest.approx(ufm.theory_objective(K, N_PER, LW, LH, lb), rel=1e-12)


def test_thm_III1_transition_simplex_etf_to_orthogonal_frame():
    Y, labels = one_hot()
    betas = []
    for lb in [0.0, 0.5 * CRIT, 2 * CRIT, 10 * CRIT, 1e3, 1e6]:
        Hbar = ufm.class_means(ufm.solve(Y, K, LW, LH, lb).H, labels, K)
        alpha, beta, resid = ufm.fit_ssetf(Hbar, return_residual=True)
        a_th, b_th = ufm.theory_ssetf(K, N_PER, LW, LH, lb)
        assert resid < 1e-10  # Hbar is exactly an SSETF
        # beta = 1 - sqrt(1 - sigma) is ill-conditioned at beta = 1: compare (1 - beta)^2
        assert (1 - beta) ** 2 == pytest.approx((1 - b_th) ** 2, abs=1e-10)
        assert alpha == pytest.approx(a_th, rel=1e-10)
        betas.append(beta)
    assert betas[0] == pytest.approx(1.0, abs=1e-6) and betas[1] == pytest.approx(1.0, abs=1e-6)
    assert all(x > y for x, y in zip(betas[1:], betas[2:], strict=False))  # decreases to OF
    assert betas[-1] < 1e-5
    # bias-free limit: an exact orthogonal frame, Gram = alpha_1 I
    Hbar = ufm.class_means(ufm.solve(Y, K, LW, LH, np.inf).H, labels, K)
    assert rel(Hbar.T @ Hbar, (1 - C_ONE) * np.sqrt(LW / (N_PER * LH)) * np.eye(K)) < 1e-10


@pytest.mark.parametrize("scale", [1.0, 1.5])
@pytest.mark.parametrize("lb", [0.0, 0.2, 5.0])
def test_thm_III1_zero_solution_when_c_at_least_one(scale, lb):
    n = N_PER
    lam = scale / (K * np.sqrt(n))  # lw = lh = lam gives c = scale
    assert ufm.c_constant(K, n, lam, lam) == pytest.approx(scale)
    Y, _ = one_hot()
    sol = ufm.solve(Y, K + 1, lam, lam, lb)
    assert sol.rank == 0
    assert np.all(sol.W == 0) and np.all(sol.H == 0)
    np.testing.assert_allclose(sol.b, np.ones(K) / K / (1 + lb), rtol=1e-12)
    np.testing.assert_allclose(ufm.theory_bias(K, n, lam, lam, lb), sol.b, rtol=1e-12)
    assert np.all(ufm.theory_gram(K, n, lam, lam, lb) == 0)
    assert_global_optimum(sol, Y, lam, lam, lb)
    # metrics are undefined (NaN), not errors, at the zero solution
    assert np.isnan(ufm.nc3_prime(sol.W, np.zeros((K + 1, K))))


def test_zero_solution_reached_by_gradient_descent():
    lam = 1.5 / (3 * np.sqrt(2))
    Y, _ = ufm.make_labels("one_hot", 2, K=3)
    sol = ufm.solve(Y, 4, lam, lam, 0.5)
    gd = ufm.gradient_descent(Y, 4, lam, lam, 0.5, seed=1, lr=0.5, steps=3000, init_scale=0.5)
    assert gd.objective == pytest.approx(sol.objective, rel=1e-10)
    assert np.abs(gd.W).max() < 1e-8


# ---------------------------------------------------------------- Theorem III.4 (bias)


@pytest.mark.parametrize("sizes", [[5] * 4, [2, 7, 3, 5]])
@pytest.mark.parametrize("encoding", ["random", "label_smoothing", "rotated_one_hot"])
def test_thm_III4_unregularised_bias_is_label_mean(encoding, sizes):
    Y, _ = ufm.make_labels(encoding, sizes, delta=0.3, seed=7)
    sol = ufm.solve(Y, K + 1, LW, LH, 0.0)
    np.testing.assert_allclose(sol.b, Y.mean(axis=1), rtol=1e-10, atol=1e-13)
    assert_global_optimum(sol, Y, LW, LH, 0.0)
    # ... and the problem reduces to the bias-free UFM with centred labels
    Yc = Y - Y.mean(axis=1, keepdims=True)
    free = ufm.solve(Yc, K + 1, LW, LH, np.inf)
    assert rel(free.W @ free.H, sol.W @ sol.H) < 1e-10
    assert free.objective == pytest.approx(sol.objective, rel=1e-12)


def test_thm_III4_independent_check_by_gradient_descent():
    Y, _ = ufm.make_labels("random", [2, 3, 1], seed=3)
    gd = ufm.gradient_descent(Y, 4, 0.02, 0.02, 0.0, seed=0, lr=0.5, steps=6000, init_scale=0.3)
    np.testing.assert_allclose(gd.b, Y.mean(axis=1), atol=1e-9)


@pytest.mark.parametrize("lb", [0.0, 0.01, 1.0, 100.0, np.inf])
@pytest.mark.parametrize("encoding", ["random", "one_hot", "label_smoothing"])
def test_thm_III4_centred_labels_give_zero_bias(encoding, lb):
    Y, _ = ufm.make_labels(encoding, [3, 6, 4, 5], seed=2, center=True)
    assert np.allclose(Y.sum(axis=1), 0)
    sol = ufm.solve(Y, K, LW, LH, lb)
    assert np.abs(sol.b).max() < 1e-13
    assert_global_optimum(sol, Y, LW, LH, lb)


# ---------------------------------------------------------------- Theorem IV.1 (NC1)


@pytest.mark.parametrize("lb", [0.0, 0.05, 3.0])
@pytest.mark.parametrize("sizes", [[4, 4, 4, 4], [1, 6, 2, 9], [10, 3, 3, 1]])
def test_thm_IV1_nc1_any_encoding_any_class_sizes(sizes, lb):
    Y, labels = ufm.make_labels("random", sizes, seed=11)
    sol = ufm.solve(Y, K + 2, LW, LH, lb)
    assert ufm.within_class_scatter(sol.H, labels) < 1e-14
    assert ufm.within_class_scatter(sol.H, labels, relative=False) < 1e-28
    assert ufm.nc1(sol.H, labels, K) < 1e-25
    assert_global_optimum(sol, Y, LW, LH, lb)


def test_thm_IV1_nc1_emerges_under_gradient_descent_unequal_classes():
    Y, labels = ufm.make_labels("random", [1, 4, 2], seed=5)
    sol = ufm.solve(Y, 4, 0.02, 0.01, 0.1)
    gd = ufm.gradient_descent(Y, 4, 0.02, 0.01, 0.1, seed=3, lr=0.5, steps=6000, init_scale=0.5)
    assert ufm.within_class_scatter(gd.H, labels) < 1e-6  # random init is not collapsed
    assert gd.objective == pytest.approx(sol.objective, rel=1e-6)


# ---------------------------------------------------------------- Proposition IV.3


@pytest.mark.parametrize("lb", [0.0, 0.02, 2.0])
def test_prop_IV3_rotated_labels(lb):
    Y, labels = ufm.make_labels("random", [3, 5, 4, 2], seed=4)
    Q = ufm.random_orthogonal(K, seed=9)
    s, sq = ufm.solve(Y, K + 1, LW, LH, lb), ufm.solve(Q @ Y, K + 1, LW, LH, lb)
    assert sq.objective == pytest.approx(s.objective, rel=1e-12)
    np.testing.assert_allclose(sq.b, Q @ s.b, atol=1e-12)
    assert rel(sq.W @ sq.H, Q @ s.W @ s.H) < 1e-10  # minimisers (QW, H, Qb)
    assert rel(sq.H.T @ sq.H, s.H.T @ s.H) < 1e-10  # H unchanged up to rotation
    assert rel(sq.W.T @ sq.W, s.W.T @ s.W) < 1e-10


def test_prop_IV3_rotation_breaks_nc3_but_not_nc3_prime():
    Yq, labels = ufm.make_labels("rotated_one_hot", N_PER, K=K, seed=1)
    sol = ufm.solve(Yq, K, LW, LH, 0.0)
    Hbar = ufm.class_means(sol.H, labels, K)
    assert ufm.nc3(sol.W, Hbar) > 0.1
    assert ufm.nc3_prime(sol.W, Hbar) < 1e-12
    # Hbar is the one-hot Hbar (up to rotation): same Gram, same SSETF
    assert rel(Hbar.T @ Hbar, expected_gram(0.0)) < 1e-10
    np.testing.assert_allclose(sol.b, ufm.random_orthogonal(K, 1) @ expected_bias(0.0), atol=1e-13)


# ---------------------------------------------------------------- Theorem IV.4 (NC3')


@pytest.mark.parametrize("lw,lh,lb", [(1e-2, 2e-2, 0.0), (3e-3, 1e-3, 0.1), (5e-2, 1e-3, 10.0)])
@pytest.mark.parametrize("encoding", ["random", "label_smoothing", "rotated_one_hot"])
def test_thm_IV4_nc3_prime_with_kappa(encoding, lw, lh, lb):
    n = 6
    Y, labels = ufm.make_labels(encoding, n, K=5, delta=0.25, seed=8)
    sol = ufm.solve(Y, 7, lw, lh, lb)
    Hbar = ufm.class_means(sol.H, labels, 5)
    kappa = ufm.theory_kappa(n, lw, lh)
    assert kappa == pytest.approx(np.sqrt(lh * n / lw))
    assert rel(sol.W.T @ sol.W, kappa**2 * Hbar @ Hbar.T) < 1e-10
    assert ufm.nc3_prime(sol.W, Hbar) < 1e-12
    assert ufm.fitted_kappa(sol.W, Hbar) == pytest.approx(kappa, rel=1e-10)


def test_unbalanced_nc3_prime_identity():
    """Unequal classes: the proof of Thm IV.4 gives lw W^T W = lh Hbar diag(n_k) Hbar^T instead."""
    sizes = [2, 9, 4, 6]
    Y, labels = ufm.make_labels("random", sizes, seed=8)
    sol = ufm.solve(Y, K, LW, LH, 0.3)
    Hbar = ufm.class_means(sol.H, labels, K)
    assert rel(LW * sol.W.T @ sol.W, LH * (Hbar * np.array(sizes)) @ Hbar.T) < 1e-10
    assert ufm.nc3_prime(sol.W, Hbar) > 1e-3


# ---------------------------------------------------------------- global optimality


GD_CASES = [
    ("one_hot", [2, 2, 2], 0.02, 0.01, 0.0),
    ("one_hot", [2, 2, 2], 0.02, 0.01, 2.0),  # beyond c/(1-c)
    ("random", [1, 3, 2], 0.01, 0.03, 0.3),
    ("label_smoothing", [2, 2, 2], 0.01, 0.01, 0.05),
]


@pytest.mark.parametrize("encoding,sizes,lw,lh,lb", GD_CASES)
def test_solve_is_global_and_matches_gradient_descent(encoding, sizes, lw, lh, lb):
    Y, _ = ufm.make_labels(encoding, sizes, delta=0.2, seed=6)
    sol = ufm.solve(Y, 4, lw, lh, lb)
    assert_global_optimum(sol, Y, lw, lh, lb)
    lr = 0.9 / (1 + lb)
    for seed in range(3):
        gd = ufm.gradient_descent(Y, 4, lw, lh, lb, seed=seed, lr=lr, steps=5000, init_scale=0.5)
        assert sol.objective <= gd.objective * (1 + 1e-13)
        assert gd.objective == pytest.approx(sol.objective, rel=1e-6)
        np.testing.assert_allclose(gd.outputs, sol.outputs, atol=1e-6)
        assert gd.diagnostics["spectral_ratio"] <= 1 + 1e-3  # GD also found the global optimum


def test_random_perturbations_do_not_decrease_objective():
    Y, _ = ufm.make_labels("random", [3, 2, 4, 1], seed=12)
    sol = ufm.solve(Y, 6, LW, LH, 0.1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        eps = 1e-4
        W = sol.W + eps * rng.standard_normal(sol.W.shape)
        H = sol.H + eps * rng.standard_normal(sol.H.shape)
        b = sol.b + eps * rng.standard_normal(K)
        assert ufm.objective(W, H, b, Y, LW, LH, 0.1) >= sol.objective - 1e-15


def test_solution_independent_of_start_and_embedding():
    Y, _ = ufm.make_labels("random", [3, 5, 2, 4], seed=13)
    s0 = ufm.solve(Y, 6, LW, LH, 0.01)
    s1 = ufm.solve(Y, 6, LW, LH, 0.01, b0=np.full(K, 10.0), embedding=ufm.random_orthogonal(6, 2))
    np.testing.assert_allclose(s1.b, s0.b, atol=1e-13)
    assert rel(s1.W @ s1.H, s0.W @ s0.H) < 1e-12
    assert not np.allclose(s1.H, s0.H)  # a different (rotated) minimiser


def test_general_label_matrices_and_small_N():
    rng = np.random.default_rng(3)
    for N in [1, 3, 6, 40]:  # N <= K exercises the transposed Jacobian branch
        Y = rng.standard_normal((5, N))
        for lb in [0.0, 1e-3, 1.0]:
            sol = ufm.solve(Y, 5, 1e-3, 5e-3, lb)
            assert sol.converged
            assert_global_optimum(sol, Y, 1e-3, 5e-3, lb)


def test_tiny_regularisation_converges():
    Y, _ = ufm.make_labels("random", [7, 3, 5, 9], seed=14)
    for lb in [0.0, 1e-8]:
        sol = ufm.solve(Y, K, 1e-6, 1e-5, lb)
        assert sol.converged and sol.iterations < 2000
        assert_global_optimum(sol, Y, 1e-6, 1e-5, lb)


def test_d_smaller_than_K_is_rejected_and_bad_lambdas():
    Y, _ = one_hot()
    with pytest.raises(ValueError, match="d=3 < K=4"):
        ufm.solve(Y, 3, LW, LH, 0.0)
    with pytest.raises(ValueError):
        ufm.solve(Y, 4, 0.0, LH, 0.0)
    with pytest.raises(ValueError):
        ufm.solve(Y, 4, LW, LH, -1.0)


def test_gradient_descent_divergence_is_reported():
    Y, _ = one_hot()
    with pytest.raises(FloatingPointError):
        ufm.gradient_descent(Y, 4, LW, LH, 5.0, seed=0, lr=3.0, steps=500, init_scale=0.5)


def test_spectral_projection_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    for shape in [(4, 6), (6, 3)]:
        X = rng.standard_normal(shape)
        sv = np.linalg.svd(X, compute_uv=False)
        tau = 0.5 * float(sv[1] + sv[2])  # away from the kink sigma = tau

        def P(A, tau=tau):
            U, s, Vt = np.linalg.svd(A, full_matrices=False)
            return (U * np.minimum(s, tau)) @ Vt

        E = rng.standard_normal((2, *shape))
        J = _spectral_projection_jacobian(X, tau, E)
        h = 1e-6
        for k in range(2):
            fd = (P(X + h * E[k]) - P(X - h * E[k])) / (2 * h)
            assert np.abs(J[k] - fd).max() < 1e-7


# ---------------------------------------------------------------- SSETF / label smoothing


@pytest.mark.parametrize("delta", [0.05, 0.1, 0.3, 0.6])
def test_label_smoothing_ssetf_sign(delta):
    """Y_delta = (1-delta) I + delta J is the SSETF with beta = -delta/(1-delta), not +."""
    Kc = 5
    Y_delta = (1 - delta) * np.eye(Kc) + delta * Jmat(Kc)
    alpha, beta = ufm.label_smoothing_ssetf(delta)
    assert alpha == pytest.approx(1 - delta) and beta == pytest.approx(-delta / (1 - delta))
    np.testing.assert_allclose(ufm.ssetf_matrix(alpha, beta, Kc), Y_delta, atol=1e-15)
    paper = ufm.ssetf_matrix(1 - delta, +delta / (1 - delta), Kc)  # as printed in the paper
    assert np.abs(paper - Y_delta).max() == pytest.approx(2 * delta / Kc)
    # the least-squares fit recovers the negative beta ...
    a_fit, b_fit, res = ufm.fit_ssetf(Y_delta, return_residual=True)
    assert a_fit == pytest.approx(1 - delta, rel=1e-13)
    assert b_fit == pytest.approx(-delta / (1 - delta), rel=1e-12)
    assert res < 1e-14
    # ... and the only other Gram-equivalent beta is 2 - beta (reflection), never +delta/(1-delta)
    G = Y_delta.T @ Y_delta
    for b_alt, same in [(2 - beta, True), (delta / (1 - delta), False)]:
        M = ufm.ssetf_matrix(alpha, b_alt, Kc)
        assert np.allclose(M.T @ M, G, atol=1e-14) == same


@pytest.mark.parametrize("beta", [-0.7, 0.0, 0.4, 1.0])
def test_fit_ssetf_gram_algebra(beta):
    rng = np.random.default_rng(1)
    Kc, d, alpha = 6, 9, 1.7
    P = np.linalg.qr(rng.standard_normal((d, Kc)))[0]
    M = ufm.ssetf_matrix(alpha, beta, Kc, P)
    # M^T M = alpha^2 (I - (2 beta - beta^2) J)
    G_th = alpha**2 * (np.eye(Kc) - (2 * beta - beta**2) * Jmat(Kc))
    np.testing.assert_allclose(M.T @ M, G_th, atol=1e-13)
    a_fit, b_fit, res = ufm.fit_ssetf(M, return_residual=True)
    assert a_fit == pytest.approx(alpha, rel=1e-13)
    assert b_fit == pytest.approx(beta, abs=1e-7 if beta == 1.0 else 1e-12)
    assert res < 1e-14
    # reflected parametrisation beta' = 2 - beta is mapped back to the canonical root <= 1
    assert ufm.fit_ssetf(ufm.ssetf_matrix(alpha, 2 - beta, Kc, P))[1] == pytest.approx(
        beta, abs=1e-7 if beta == 1.0 else 1e-12
    )
    # not an SSETF -> positive residual
    assert ufm.fit_ssetf(rng.standard_normal((d, Kc)), return_residual=True)[2] > 1e-2


@pytest.mark.parametrize("lb", [0.0, 0.5 * CRIT, 4 * CRIT, 10.0])
def test_label_smoothing_means_are_ssetf(lb):
    """Balanced label smoothing: b* equals the one-hot b*, Hbar* is an SSETF given by the
    two-level closed form (theory.py), so NC2 holds (Corollary IV.2)."""
    delta = 0.2
    Y, labels = ufm.make_labels("label_smoothing", N_PER, K=K, delta=delta)
    sol = ufm.solve(Y, K + 1, LW, LH, lb)
    Hbar = ufm.class_means(sol.H, labels, K)
    np.testing.assert_allclose(sol.b, expected_bias(lb), rtol=1e-10, atol=1e-14)
    G = ufm.theory_gram(K, N_PER, LW, LH, lb, delta=delta)
    assert rel(Hbar.T @ Hbar, G) < 1e-10
    a, sigma = ufm.theory_gram_coefficients(K, N_PER, LW, LH, lb, delta=delta)
    assert a == pytest.approx((1 - delta - C_ONE) * np.sqrt(LW / (N_PER * LH)), rel=1e-14)
    assert ufm.fit_ssetf(Hbar, return_residual=True)[2] < 1e-10
    nc2 = ufm.nc2(Hbar)
    assert nc2["equinorm"] < 1e-12 and nc2["equiangularity"] < 1e-12
    assert nc2["max_angle"] < 1e-12 and nc2["etf_distance"] < 1e-12
    assert rel(sol.W.T, np.sqrt(N_PER * LH / LW) * Hbar) < 1e-10
    assert sol.objective == pytest.approx(
        ufm.theory_objective(K, N_PER, LW, LH, lb, delta=delta), rel=1e-12
    )


# ---------------------------------------------------------------- metrics, labels, sweeps


def test_metrics_on_synthetic_configurations():
    rng = np.random.default_rng(2)
    Kc, d, n = 4, 6, 3
    P = np.linalg.qr(rng.standard_normal((d, Kc)))[0]
    Hbar = ufm.ssetf_matrix(2.0, 0.3, Kc, P)
    labels = np.repeat(np.arange(Kc), n)
    H = Hbar[:, labels]
    np.testing.assert_allclose(ufm.class_means(H, labels), Hbar, atol=1e-15)
    assert ufm.nc1(H, labels) < 1e-25
    noisy = H + 0.1 * rng.standard_normal(H.shape)
    assert ufm.nc1(noisy, labels) > 1e-4 and ufm.within_class_scatter(noisy, labels) > 1e-3
    assert all(v < 1e-12 for v in ufm.nc2(Hbar).values())
    assert ufm.nc2(rng.standard_normal((d, Kc)))["equiangularity"] > 1e-3
    W = 3.0 * Hbar.T
    assert ufm.nc3(W, Hbar, centered=False) < 1e-25
    assert ufm.nc3(W, Hbar) == pytest.approx(ufm.theory_nc3(Kc, 2 * 0.3 - 0.3**2), rel=1e-12)
    assert ufm.fitted_kappa(W, Hbar) == pytest.approx(3.0)
    assert ufm.nc3_prime(ufm.random_orthogonal(Kc, 0) @ W, Hbar) < 1e-14


def test_ufm_metrics_are_the_shared_metrics():
    """ufm.* (H: d x N) are adapters over ncrepro.metrics (features N x d): same numbers
    as the shared functions on ClassStats.from_features(H^T), with the centring on the
    unweighted mean of the class means (global_mean="class_means").  Unequal classes, so
    that this centring differs from the sample mean."""
    rng = np.random.default_rng(7)
    Kc, d = 5, 8
    labels = rng.permutation(np.repeat(np.arange(Kc), [2, 7, 3, 5, 4]))
    H = 2.0 * rng.standard_normal((d, Kc))[:, labels] + 0.3 * rng.standard_normal((d, 21)) + 1
    W = rng.standard_normal((Kc, d))
    stats = metrics.ClassStats.from_features(H.T, labels, Kc)
    mu_g = stats.global_mean("class_means")
    Hbar = ufm.class_means(H, labels, Kc)
    np.testing.assert_allclose(Hbar.T, stats.means, rtol=1e-13)
    np.testing.assert_allclose(ufm.centered_means(Hbar).T, stats.centred_means(), atol=1e-13)
    assert ufm.nc1(H, labels, Kc) == pytest.approx(metrics.nc1(stats), rel=1e-10)
    assert ufm.within_class_scatter(H, labels, relative=False) == pytest.approx(
        np.trace(stats.within_class_cov()), rel=1e-12
    )
    assert ufm.within_class_scatter(H, labels) == pytest.approx(
        metrics.within_class_scatter(H.T, labels, stats.means), rel=1e-12
    )
    shared_nc2 = metrics.nc2(stats.means, mu_g)
    assert ufm.nc2(Hbar) == pytest.approx(
        {**shared_nc2, "etf_distance": metrics.etf_distance(stats.means, mu_g)}, rel=1e-12
    )
    assert min(shared_nc2.values()) > 1e-3
    assert ufm.nc3(W, Hbar) == pytest.approx(metrics.nc3(W, stats.means, mu_g), rel=1e-12)
    assert ufm.nc3(W, Hbar) != pytest.approx(
        metrics.nc3(W, stats.means, stats.global_mean("samples")), rel=1e-3
    )
    assert ufm.nc3(W, Hbar, centered=False) == pytest.approx(
        metrics.nc3(W, stats.means, centred=False), rel=1e-12
    )
    assert ufm.nc3_prime(W, Hbar) == pytest.approx(metrics.nc3_prime(W, stats.means), rel=1e-12)
    assert ufm.fitted_kappa(W, Hbar) == pytest.approx(
        metrics.nc3_prime_scale(W, stats.means), rel=1e-12
    )


def test_metrics_of_an_orthogonal_frame():
    """Hbar = r P (P: d x K orthonormal columns), W = Hbar^T.  Centring an orthogonal frame
    gives a simplex ETF (NC2 and etf_distance 0); with <W^T, M> = r^2 tr(I - J) = r^2 (K-1),
    ||W|| = r sqrt(K), ||Mc|| = r sqrt(K-1): NC3 (centred) = 2 - 2 sqrt((K-1)/K), while the
    uncentred NC3 and NC3' are 0 and kappa = 1."""
    rng = np.random.default_rng(3)
    Kc, d, r = 4, 7, 1.3
    Hbar = r * np.linalg.qr(rng.standard_normal((d, Kc)))[0]
    W = Hbar.T.copy()
    assert all(v == pytest.approx(0, abs=1e-14) for v in ufm.nc2(Hbar).values())
    expected = 2 - 2 * np.sqrt((Kc - 1) / Kc)
    assert ufm.nc3(W, Hbar) == pytest.approx(expected, rel=1e-13)
    assert ufm.nc3(W, Hbar) == pytest.approx(ufm.theory_nc3(Kc, 0.0), rel=1e-13)
    assert ufm.nc3(W, Hbar, centered=False) == pytest.approx(0, abs=1e-28)
    assert ufm.nc3_prime(W, Hbar) == pytest.approx(0, abs=1e-14)
    assert ufm.fitted_kappa(W, Hbar) == pytest.approx(1.0, rel=1e-13)
    # not centred, the frame is at etf_distance sqrt(2 - 2 sqrt((K-1)/K)) from the simplex
    assert metrics.etf_distance(Hbar.T, np.zeros(d)) == pytest.approx(np.sqrt(expected))


def test_ufm_metrics_are_nan_where_undefined():
    rng = np.random.default_rng(4)
    H = rng.standard_normal((3, 6))
    # one class
    one = np.zeros(6, int)
    assert np.isnan(ufm.nc1(H, one))
    assert all(np.isnan(v) for v in ufm.nc2(ufm.class_means(H, one)).values())
    # a class without samples (label 1 unused): NC1 undefined, the scatter ignores it
    gap = np.array([0, 0, 2, 2, 3, 3])
    assert np.isnan(ufm.nc1(H, gap, 4))
    dense = np.array([0, 0, 1, 1, 2, 2])
    assert ufm.within_class_scatter(H, gap) == pytest.approx(ufm.within_class_scatter(H, dense))
    # a centred mean at 0: every NC2 measure NaN; zero W or means: NC3, NC3', kappa NaN
    Hbar = np.c_[H[:, 0], -H[:, 0], np.zeros(3)]  # mean of the means: exactly 0
    assert all(np.isnan(v) for v in ufm.nc2(Hbar).values())
    zeros = np.zeros((3, 3))
    assert np.isnan(ufm.nc3(zeros, Hbar)) and np.isnan(ufm.nc3(zeros, Hbar, centered=False))
    assert np.isnan(ufm.nc3_prime(Hbar.T, zeros)) and np.isnan(ufm.fitted_kappa(Hbar.T, zeros))


def test_make_labels():
    Y, labels = ufm.make_labels("one_hot", [2, 1, 3])
    assert Y.shape == (3, 6) and list(labels) == [0, 0, 1, 2, 2, 2]
    np.testing.assert_array_equal(Y, ufm.assignment_matrix(labels))
    Yr, _ = ufm.make_labels("rotated_one_hot", 2, K=3, seed=4)
    Q = ufm.make_encoding("rotated_one_hot", 3, seed=4)
    np.testing.assert_allclose(Q.T @ Q, np.eye(3), atol=1e-14)
    np.testing.assert_allclose(Yr, Q @ ufm.make_labels("one_hot", 2, K=3)[0])
    Yc, _ = ufm.make_labels("random", [1, 2, 3], seed=0, center=True)
    np.testing.assert_allclose(Yc.sum(axis=1), 0, atol=1e-14)
    Ys, _ = ufm.make_labels("label_smoothing", 1, K=4, delta=0.2)
    np.testing.assert_allclose(Ys, 0.8 * np.eye(4) + 0.05)
    with pytest.raises(ValueError, match="unknown encoding"):
        ufm.make_labels("two_hot", 2, K=3)
    with pytest.raises(ValueError, match="K is required"):
        ufm.make_labels("one_hot", 2)


ROW_KEYS = {"metric", "value", "theory", "residual", "source"}
REQUIRED = {
    "bias_norm", "bias_deviation", "ssetf_beta", "ssetf_alpha", "gram_residual", "nc1",
    "nc2_equinorm", "nc2_equiangularity", "nc3", "nc3_prime", "kappa", "objective",
    "kkt_residual",
}  # fmt: skip


@pytest.mark.parametrize("encoding", ["one_hot", "label_smoothing", "rotated_one_hot"])
@pytest.mark.parametrize("lb", [0.0, 3 * CRIT])
def test_sweep_rows_match_theory(encoding, lb):
    spec = ufm.UFMSpec(K=K, n=N_PER, d=K + 2, lambda_w=LW, lambda_h=LH, lambda_b=lb,
                       encoding=encoding, delta=0.2, seed=3)  # fmt: skip
    rows = ufm.sweep_rows(spec)
    assert all(set(r) == ROW_KEYS for r in rows)
    by = {r["metric"]: r for r in rows}
    assert REQUIRED <= set(by)
    for name in REQUIRED - {"ssetf_beta"}:
        assert np.isfinite(by[name]["theory"]), name
        assert by[name]["residual"] <= 1e-8 * max(1.0, abs(by[name]["theory"])), by[name]
    assert by["ssetf_beta"]["residual"] < 1e-4  # sqrt-conditioned at beta = 1
    if encoding == "rotated_one_hot":
        assert by["nc3"]["value"] > 0.05 and np.isfinite(by["nc3"]["theory"])


def test_sweep_rows_random_and_unbalanced():
    rows = ufm.sweep_rows(
        {
            "K": 4,
            "n": [2, 5, 3, 4],
            "lambda_w": LW,
            "lambda_h": LH,
            "lambda_b": 0.0,
            "encoding": "random",
            "seed": 1,
        }  # fmt: skip
    )
    by = {r["metric"]: r for r in rows}
    assert np.isnan(by["gram_residual"]["theory"]) and np.isnan(by["kappa"]["theory"])
    assert by["bias_deviation"]["value"] < 1e-12 and by["bias_deviation"]["source"] == "Thm III.4"
    assert by["nc1"]["residual"] < 1e-20 and by["kkt_residual"]["value"] < 1e-10


def test_sweep_frame_is_tidy():
    specs = [ufm.UFMSpec(K=3, n=2, lambda_w=LW, lambda_h=LH, lambda_b=lb) for lb in (0.0, 1.0)]
    df = ufm.sweep_frame(specs)
    assert isinstance(df, pd.DataFrame)
    assert {"K", "n", "d", "lambda_b", "encoding", "metric", "value", "theory"} <= set(df.columns)
    assert len(df) == 2 * len(ufm.sweep_rows(specs[0]))
