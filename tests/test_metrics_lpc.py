"""Separation ratio, norm spread, Kozachenko-Leonenko entropy and GMM binarity (the LPC
paper's metrics) against closed forms and constructed point sets."""

import math

import numpy as np
import pytest

from ncrepro.metrics.binarity import abs_cv, binarity, gmm_two_peaks
from ncrepro.metrics.entropy import kozachenko_leonenko, log_unit_ball_volume
from ncrepro.metrics.separation import class_separation_ratio, norm_cv

GAUSSIAN_SCORE = -0.5 * math.log(2 * math.pi * math.e)  # mean log-density of N(0, 1)


# ----------------------------------------------------------------------- separation ratio
def test_separation_ratio_by_hand():
    """Class 0: (±1, 0) around (0, 0); class 1: (10 ± 1, 0) around (10, 0).
    Every sample is 1 from its mean; the nearest other mean is 9 or 11 away: mean 10."""
    z = np.array([[-1.0, 0], [1, 0], [9, 0], [11, 0]])
    y = np.array([0, 0, 1, 1])
    assert class_separation_ratio(z, y) == pytest.approx((11 + 9 + 9 + 11) / 4)


def _brute_force_ratio(z, y):
    means = np.stack([z[y == c].mean(0) for c in np.unique(y)])
    d = np.linalg.norm(z[:, None] - means[None], axis=2)
    own = d[np.arange(len(z)), y].copy()
    d[np.arange(len(z)), y] = np.inf
    return np.mean(d.min(1) / own)


def test_separation_ratio_nearest_other_class_and_invariances():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 40.0]])
    y = np.repeat(np.arange(3), 50)
    z = centres[y] + rng.normal(size=(150, 2))
    ratio = class_separation_ratio(z, y)
    assert ratio == pytest.approx(_brute_force_ratio(z, y), rel=1e-12)
    # invariant to rotation, translation and scale; order of samples irrelevant
    q = np.linalg.qr(rng.normal(size=(2, 2)))[0]
    moved = 3.0 * z @ q + 7.0
    perm = rng.permutation(150)
    assert class_separation_ratio(moved[perm], y[perm]) == pytest.approx(ratio, rel=1e-10)
    # classes shrunk onto their means by 1e-6: the ratio grows ~1e6 times, and the tiny
    # own-mean distances are exact (no cancellation of |z|^2 - 2<z, mu> + |mu|^2)
    means = np.stack([z[y == c].mean(0) for c in range(3)])
    shrunk = means[y] + 1e-6 * (z - means[y])
    assert class_separation_ratio(shrunk, y) == pytest.approx(
        _brute_force_ratio(shrunk, y), rel=1e-8
    )
    assert class_separation_ratio(shrunk, y) > 1e5 * ratio


def test_separation_ratio_edges():
    assert math.isnan(class_separation_ratio(np.ones((3, 2)), np.zeros(3, int)))
    z = np.array([[0.0, 0], [0, 0], [4, 0], [6, 0]])  # class 0 collapsed exactly
    assert class_separation_ratio(z, np.array([0, 0, 1, 1])) == math.inf
    assert class_separation_ratio.conventions() == {
        "separation_means": "same_split",
        "zero_own_distance": "inf",
    }
    with pytest.raises(TypeError, match="integers"):
        class_separation_ratio(z, np.array([0.0, 0, 1, 1]))


# ----------------------------------------------------------------------------- norm CV
def test_norm_cv_samples_and_class_means():
    z = np.array([[3.0, 4.0], [0.0, 5.0], [-5.0, 0.0], [6.0, 8.0]])  # norms 5, 5, 5, 10
    norms = np.array([5.0, 5, 5, 10])
    assert norm_cv(z) == pytest.approx(norms.std() / norms.mean())
    y = np.array([0, 0, 1, 1])  # means (1.5, 4.5) and (0.5, 4): norms sqrt(22.5), sqrt(16.25)
    m = np.array([math.sqrt(22.5), math.sqrt(16.25)])
    assert norm_cv(z, y, over="class_means") == pytest.approx(m.std() / m.mean())
    on_circle = np.array([[1.0, 0], [0, -1], [-0.6, 0.8]])
    assert norm_cv(on_circle) == pytest.approx(0.0, abs=1e-15)
    assert norm_cv.conventions(over="class_means") == {"over": "class_means", "std_ddof": 0}
    with pytest.raises(ValueError, match="needs the labels"):
        norm_cv(z, over="class_means")


# ----------------------------------------------------------------------------- entropy
def test_unit_ball_volumes():
    assert math.exp(log_unit_ball_volume(1)) == pytest.approx(2.0)
    assert math.exp(log_unit_ball_volume(2)) == pytest.approx(math.pi)
    assert math.exp(log_unit_ball_volume(3)) == pytest.approx(4 * math.pi / 3)


@pytest.mark.parametrize("d", [1, 3, 6])
def test_kl_entropy_of_a_gaussian_matches_the_closed_form(d):
    """H(N(0, Σ)) = ½ log det(2πe Σ). 4000 samples, k = 20: the estimator's error is a
    few hundredths of a nat per dimension (its sampling std is ~0.01 here)."""
    rng = np.random.default_rng(d)
    a = rng.normal(size=(d, d))
    sigma = a @ a.T + 0.5 * np.eye(d)
    x = rng.multivariate_normal(np.zeros(d), sigma, size=4000)
    exact = 0.5 * np.linalg.slogdet(2 * math.pi * math.e * sigma)[1]
    estimate = kozachenko_leonenko(x, standardize=False, per_dimension=False)
    assert estimate == pytest.approx(exact, abs=0.05 * d)
    per_dim = kozachenko_leonenko(x, standardize=False)
    assert per_dim == pytest.approx(estimate / d, rel=1e-12)


def test_kl_entropy_standardized_is_that_of_the_correlation_matrix():
    rng = np.random.default_rng(1)
    sigma = np.array([[4.0, 1.2], [1.2, 1.0]])
    x = rng.multivariate_normal([3.0, -1.0], sigma, size=4000)
    corr = sigma / np.sqrt(np.outer(np.diag(sigma), np.diag(sigma)))
    exact = 0.5 * np.linalg.slogdet(2 * math.pi * math.e * corr)[1] / 2
    assert kozachenko_leonenko(x) == pytest.approx(exact, abs=0.05)
    # scaling a dimension changes nothing once standardized
    assert kozachenko_leonenko(x * [10.0, 0.1]) == pytest.approx(kozachenko_leonenko(x))


def test_kl_entropy_drops_under_collapse_and_conventions():
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(4, 3)) * 5
    y = np.repeat(np.arange(4), 250)
    spread = centres[y] + rng.normal(size=(1000, 3))
    collapsed = centres[y] + 1e-4 * rng.normal(size=(1000, 3))
    assert kozachenko_leonenko(collapsed) < kozachenko_leonenko(spread) - 5
    assert kozachenko_leonenko.conventions() == {
        "entropy_k": 20,
        "entropy_standardize": True,
        "entropy_per_dimension": True,
        "entropy_epsilon": 1e-10,
    }
    with pytest.raises(ValueError, match="k must be"):
        kozachenko_leonenko(spread[:10], k=20)


# ---------------------------------------------------------------------------- binarity
def test_gmm_on_a_gaussian_dimension_gives_the_gaussian_score():
    x = np.random.default_rng(0).normal(size=20000)
    score, distance, _ = gmm_two_peaks(x, seed=0)
    assert score == pytest.approx(GAUSSIAN_SCORE, abs=0.01)
    assert distance < 2.0  # two overlapping components, no separated peaks


def test_gmm_on_two_narrow_peaks():
    """z = ±1 + σ·noise, balanced: standardized peaks at ±1/s, component std σ/s with
    s = sqrt(1 + σ²): peak distance 2/σ, score log ½ − ½ log(2πe) − log(σ/s)."""
    rng = np.random.default_rng(1)
    sigma, n = 0.05, 20000
    x = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) + sigma * rng.normal(size=n)
    score, distance, std = gmm_two_peaks(x, seed=0)
    s = math.sqrt(1 + sigma**2)
    assert distance == pytest.approx(2 / sigma, rel=0.03)
    assert std == pytest.approx(sigma / s, rel=0.03)
    assert score == pytest.approx(math.log(0.5) + GAUSSIAN_SCORE - math.log(sigma / s), abs=0.03)


def test_binarity_summaries_over_dimensions_and_abs_cv():
    rng = np.random.default_rng(2)
    n = 4000
    binary = np.where(rng.random((n, 2)) < 0.5, -2.0, 2.0) + 0.02 * rng.normal(size=(n, 2))
    gaussian = rng.normal(size=(n, 1))
    z = np.hstack([binary, gaussian])
    out = binarity(z, seed=0)
    assert out["score"].shape == (3,)
    assert out["score_min"] == pytest.approx(out["score"][2]) and out["score"][2] < -1.3
    assert out["score_mean"] == pytest.approx(out["score"].mean())
    assert out["peak_distance_min"] == out["peak_distance"].min() < 2
    assert out["peak_distance"][:2].min() > 50
    assert out["std_std"] == pytest.approx(out["std"].std())
    # |z| of the binary dimensions is ~2 everywhere: small CV; Gaussian |z|: large
    assert abs_cv(binary) < 0.02
    half_normal_cv = math.sqrt(math.pi / 2 - 1)  # std/mean of |N(0, 1)|
    assert abs_cv(rng.normal(size=(200000, 1))) == pytest.approx(half_normal_cv, rel=0.01)
    assert binarity.conventions(seed=3)["gmm_seed"] == 3
