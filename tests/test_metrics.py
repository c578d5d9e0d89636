"""NC metrics: closed forms, hand-computed cases, invariances, subsets and streaming."""

import numpy as np
import pytest

from ncrepro.metrics import (
    ClassStats,
    cdnv,
    compute_all,
    cross_entropy,
    nc1,
    nc2,
    nc3,
    nc4,
    top_eig_pinv,
    variance_ratio,
    weak_test_variance,
)


def simplex_etf(k, d, seed=0):
    """K unit-norm vectors in R^d with pairwise cosine -1/(K-1)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d, k)))
    m = (np.eye(k) - np.ones((k, k)) / k) * np.sqrt(k / (k - 1))
    return (basis @ m).T  # K×d


def clusters(k=4, d=6, n=50, sigma=0.0, seed=0, means=None):
    rng = np.random.default_rng(seed)
    means = simplex_etf(k, d, seed) * 3 if means is None else means
    labels = np.repeat(np.arange(k), n)
    features = means[labels] + sigma * rng.standard_normal((k * n, d))
    return features, labels, means


def test_exact_collapse_gives_zero():
    h, y, means = clusters(sigma=0.0)
    stats = ClassStats.from_features(h, y, 4)
    assert variance_ratio(h, y, 4) == pytest.approx(0, abs=1e-24)
    assert nc1(stats) == pytest.approx(0, abs=1e-24)
    assert cdnv(stats) == pytest.approx(0, abs=1e-24)
    assert weak_test_variance(h, 4, seed=0, n_init=4) == pytest.approx(0, abs=1e-12)
    etf = nc2(stats.means - stats.global_mean())
    assert etf["equinorm"] == pytest.approx(0, abs=1e-12)
    assert etf["equiangularity"] == pytest.approx(0, abs=1e-12)
    assert etf["max_angle"] == pytest.approx(0, abs=1e-12)
    assert nc3(2.5 * (stats.means - stats.global_mean()), stats) == pytest.approx(0, abs=1e-20)


def test_isotropic_gaussian_clusters_match_closed_form():
    k, d, n, sigma = 5, 8, 4000, 0.7
    h, y, means = clusters(k, d, n, sigma, seed=1)
    between = np.mean(np.sum((means - means.mean(0)) ** 2, axis=1))
    expected = d * sigma**2 / between  # E||h - mu_y||^2 = d sigma^2
    # sample means shift the ratio by O(1/n); the numerator's relative std is
    # sqrt(2/(N d)) ~ 0.0035; 4 standard errors plus the O(d/n) bias:
    assert variance_ratio(h, y, k) == pytest.approx(expected, rel=0.02)
    # NC1 closed form for Sigma_W = sigma^2 I: (1/K) sigma^2 Tr(Sigma_B^+)
    sb = (means - means.mean(0)).T @ (means - means.mean(0)) / k
    nc1_expected = sigma**2 * np.trace(top_eig_pinv(sb, k - 1)) / k
    assert nc1(ClassStats.from_features(h, y, k)) == pytest.approx(nc1_expected, rel=0.03)
    # CDNV: (2 d sigma^2) / (2 ||mu_i - mu_j||^2); the ETF has equal pair distances
    dist2 = np.sum((means[0] - means[1]) ** 2)
    cdnv_expected = d * sigma**2 / dist2
    assert cdnv(ClassStats.from_features(h, y, k)) == pytest.approx(cdnv_expected, rel=0.02)


def test_hand_computed_case():
    # class 0: (0,0), (2,0), (1,3) -> mean (1,1); class 1: (4,4), (6,4), (5,1) -> mean (5,3)
    h = np.array([[0, 0], [2, 0], [1, 3], [4, 4], [6, 4], [5, 1]], float)
    y = np.array([0, 0, 0, 1, 1, 1])
    # squared distances to own mean: 2, 2, 4 (class 0) and 2, 2, 4 (class 1): mean 16/6
    # mean of class means = (3, 2); ||mu_c - mu||^2 = 4 + 1 = 5 for both
    assert variance_ratio(h, y, 2) == pytest.approx((16 / 6) / 5)
    # CDNV: Var_0 = Var_1 = 8/3; ||mu_0 - mu_1||^2 = 16 + 4 = 20 -> (16/3) / 40
    assert cdnv(ClassStats.from_features(h, y, 2)) == pytest.approx((16 / 3) / 40)
    # cross-entropy of logits (0, log 3) with label 1: -log(3/4)
    assert cross_entropy(np.array([[0.0, np.log(3)]]), np.array([1])) == pytest.approx(
        -np.log(0.75)
    )


def test_invariances():
    h, y, _ = clusters(k=4, d=6, n=40, sigma=0.8, seed=2)
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    perm = rng.permutation(4)

    def all_metrics(features, labels):
        stats = ClassStats.from_features(features, labels, 4)
        etf = nc2(stats.means - stats.global_mean())
        return np.array(
            [
                variance_ratio(features, labels, 4),
                nc1(stats),
                cdnv(stats),
                etf["equinorm"],
                etf["equiangularity"],
                etf["max_angle"],
            ]
        )

    base = all_metrics(h, y)
    np.testing.assert_allclose(all_metrics(h @ q.T, y), base, rtol=1e-9)  # rotation
    np.testing.assert_allclose(all_metrics(3.7 * h, y), base, rtol=1e-9)  # scaling
    np.testing.assert_allclose(all_metrics(h + 5.0, y), base, rtol=1e-9)  # translation
    np.testing.assert_allclose(all_metrics(h, perm[y]), base, rtol=1e-9)  # relabeling


def test_unequal_class_counts_are_counted_from_data():
    h, y, _ = clusters(k=3, d=4, n=60, sigma=1.0, seed=4)
    keep = np.concatenate(
        [np.flatnonzero(y == 0)[:5], np.flatnonzero(y == 1)[:37], np.flatnonzero(y == 2)]
    )
    hs, ys = h[keep], y[keep]
    means = np.stack([hs[ys == c].mean(0) for c in range(3)])
    within = np.mean(np.sum((hs - means[ys]) ** 2, axis=1))
    between = np.mean(np.sum((means - means.mean(0)) ** 2, axis=1))
    assert variance_ratio(hs, ys, 3) == pytest.approx(within / between, rel=1e-12)
    stats = ClassStats.from_features(hs, ys, 3)
    assert stats.counts.tolist() == [5, 37, 60]
    sw = sum((hs[ys == c] - means[c]).T @ (hs[ys == c] - means[c]) for c in range(3)) / len(ys)
    np.testing.assert_allclose(stats.within_class_cov("pooled"), sw, rtol=1e-12)
    with pytest.raises(ValueError, match="no samples"):
        variance_ratio(hs[ys != 1], ys[ys != 1], 3)


def test_streamed_chunks_equal_one_shot():
    h, y, _ = clusters(k=3, d=5, n=100, sigma=1.0, seed=5)
    h = (h + 1e4).astype(np.float32)  # large offset: the stable update must keep precision
    order = np.random.default_rng(0).permutation(len(y))
    h, y = h[order], y[order]
    one = ClassStats.from_features(h, y, 3)
    merged = ClassStats.empty(3, 5)
    for chunk in np.array_split(np.arange(len(y)), 7):
        merged = merged.merge(ClassStats.from_features(h[chunk], y[chunk], 3))
    np.testing.assert_allclose(merged.means, one.means, rtol=1e-12)
    np.testing.assert_allclose(merged.scatter, one.scatter, rtol=1e-8, atol=1e-6)
    assert nc1(merged) == pytest.approx(nc1(one), rel=1e-8)


def test_top_k_pinv_convention_matters_and_nc1_is_nonnegative():
    # K = 3 classes in d = 10: Sigma_B has rank 2; float32 noise puts tiny eigenvalues
    # in the other 8 directions, which a default pinv inverts into huge weights.
    rng = np.random.default_rng(6)
    h, y, means = clusters(k=3, d=10, n=30, sigma=0.5, seed=6)
    stats = ClassStats.from_features(h.astype(np.float32), y, 3)
    sb32 = stats.between_class_cov().astype(np.float32)
    sb32 += (1e-7 * rng.standard_normal((10, 10))).astype(np.float32)
    sw = stats.within_class_cov()
    naive = np.trace(sw @ np.linalg.pinv(sb32, rcond=1e-15)) / 3
    ours = np.trace(sw @ top_eig_pinv(sb32.astype(np.float64), 2)) / 3
    assert ours == pytest.approx(nc1(stats), rel=1e-3)
    assert abs(naive - ours) > 100 * ours  # the default picks up noise directions
    for seed in range(5):
        hh, yy, _ = clusters(k=4, d=5, n=10, sigma=2.0, seed=seed)
        assert nc1(ClassStats.from_features(hh, yy, 4)) >= 0


def test_nc4_hand_built():
    means = np.array([[0.0, 0.0], [10.0, 0.0]])
    h = np.array([[1.0, 0.0], [9.0, 0.0], [4.0, 0.0], [6.0, 0.0]])
    y = np.array([0, 1, 0, 1])
    stats = ClassStats.from_features(np.vstack([h, means]), np.concatenate([y, [0, 1]]), 2)
    # nearest class mean (from the stats) predicts 0, 1, 0, 1; the network says 0, 1, 1, 1
    logits = np.array([[1.0, 0], [0, 1], [0, 1], [0, 1]])
    stats.means = means  # use the exact means for a clean hand computation
    assert nc4(h, logits, stats) == pytest.approx(0.25)


def test_compute_all_rows_and_conventions():
    h, y, means = clusters(k=3, d=4, n=20, sigma=0.3, seed=7)
    w = means - means.mean(0)
    logits = h @ w.T
    data = {"features": h, "labels": y, "logits": logits, "W": w, "b": np.zeros(3)}
    rows = compute_all(data, data, 3, kmeans_n_init=2, seed=0)
    names = {(r["split"], r["metric"]) for r in rows}
    for expected in [
        ("train", "train_variance"),
        ("test", "strong_test_variance"),
        ("test", "weak_test_variance"),
        ("train", "nc1"),
        ("train", "nc3"),
        ("train", "nc4"),
        ("test", "accuracy"),
        ("train", "loss"),
        ("train", "cdnv"),
        ("train", "nc2_equinorm"),
    ]:
        assert expected in names
    assert all(r["sigma_w"] == "pooled" and r["means_at"] == "same_checkpoint" for r in rows)
    acc = next(r["value"] for r in rows if r["metric"] == "accuracy")
    assert acc == pytest.approx(np.mean(np.argmax(logits, 1) == y))
