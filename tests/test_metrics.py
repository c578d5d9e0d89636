"""NC metrics: exact collapse, closed forms, a hand-computed case, invariances, subsets,
streaming, the top-(K−1) pseudo-inverse convention, NC4, the per-checkpoint rows, and the
measures of the class-encoding UFM study (ETF distance, uncentred NC3, NC3′ and its κ,
within-class scatter, the relative-cut-off Σ_B⁺)."""

import numpy as np
import pandas as pd
import pytest

from ncrepro.metrics import (
    ClassStats,
    SplitData,
    accuracy,
    cdnv,
    compute_all,
    cross_entropy,
    etf_distance,
    nc1,
    nc2,
    nc2_weights,
    nc3,
    nc3_prime,
    nc3_prime_scale,
    nc4,
    top_eig_pinv,
    variance_ratio,
    variance_ratio_from_stats,
    weak_test_variance,
    within_class_scatter,
)


def simplex_etf(k, d, seed=0):
    """K unit-norm rows in R^d with pairwise cosine −1/(K−1), summing to 0."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return ((np.eye(k) - np.ones((k, k)) / k) * np.sqrt(k / (k - 1)) @ basis.T).copy()


def clusters(k=4, d=6, n=50, sigma=0.0, seed=0, means=None, offset=0.0):
    """Isotropic Gaussian clusters h = μ_c + σ z (n per class, or counts n[c])."""
    rng = np.random.default_rng(seed)
    means = 3.0 * simplex_etf(k, d, seed) + offset if means is None else means
    labels = np.repeat(np.arange(k), n)
    features = means[labels] + sigma * rng.standard_normal((len(labels), d))
    return features, labels, means


def stats_of(h, y, k):
    return ClassStats.from_features(h, y, k, scatter="per_class")


# --------------------------------------------------------------------------- exact collapse


def test_exact_collapse_gives_zero():
    k = 4
    h, y, means = clusters(k=k, sigma=0.0, offset=7.0)
    stats = stats_of(h, y, k)
    assert variance_ratio(h, y, k) == pytest.approx(0, abs=1e-28)
    assert nc1(stats) == pytest.approx(0, abs=1e-28)
    assert nc1(stats, sigma_w="class_averaged") == pytest.approx(0, abs=1e-28)
    assert cdnv(stats) == pytest.approx(0, abs=1e-28)
    # k-means finds the K distinct points, so every sample sits on its centroid
    assert weak_test_variance(h, k, seed=0, n_init=3) == pytest.approx(0, abs=1e-24)


def test_simplex_etf_means_give_zero_nc2_and_scaled_means_zero_nc3():
    k, d = 5, 9
    etf = simplex_etf(k, d, seed=1)
    means = 4.2 * etf + np.arange(d)  # scaled ETF around a non-zero global mean
    mu_g = means.mean(axis=0)
    for value in nc2(means, mu_g).values():
        assert value == pytest.approx(0, abs=1e-12)
    for value in nc2_weights(2.0 * etf).values():
        assert value == pytest.approx(0, abs=1e-12)
    assert nc3(0.3 * (means - mu_g), means, mu_g) == pytest.approx(0, abs=1e-24)
    assert nc3(-(means - mu_g), means, mu_g) == pytest.approx(4.0)  # the opposite frame
    # a non-ETF geometry is detected by all three NC2 numbers
    skewed = means.copy()
    skewed[0] *= 1.5
    assert min(nc2(skewed, skewed.mean(axis=0)).values()) > 1e-3


# --------------------------------------------------------------------------- closed forms


def test_isotropic_gaussian_clusters_match_closed_forms():
    """h = μ_c + σ z, z ~ N(0, I_d), n per class, K classes, ETF means (radius r, + offset).

    Variance ratio, with B = E_c‖μ_c − μ̄‖² the population between-class variance:
      numerator   = σ² χ²_{K d (n−1)} / N:  mean dσ²(n−1)/n, var 2Kd(n−1)σ⁴/N²
      denominator = B + (2/K)Σ_c a_c·e_c + (1/K)Σ_c‖e_c‖², e_c the centred mean errors:
                    mean B + dσ²(K−1)/(Kn), var 4σ²B/(Kn) + 2d(K−1)σ⁴/(Kn)²
      (independent for Gaussians), so the ratio has relative variance ≈ the sum of the two
      relative variances (delta method).  Tolerance: 4 standard errors.
    NC1 for Σ_W = σ²I: (1/K) σ² Tr(Σ_B⁺); CDNV for equal pair distances D²: dσ²/D².  Their
    sampling SD is measured from 100 independent replicates; tolerance 4 SD.  The O(1/n)
    biases (≈ σ²/(n λ) ≈ 1e-3 relative here) are well inside.
    """
    k, d, n, sigma = 5, 8, 400, 0.7
    means = 2.0 * simplex_etf(k, d, seed=2) + 1.0
    centred = means - means.mean(axis=0)
    b = np.mean(np.sum(centred**2, axis=1))
    big_n = k * n

    num = d * sigma**2 * (n - 1) / n
    den = b + d * sigma**2 * (k - 1) / (k * n)
    var_num = 2 * k * d * (n - 1) * sigma**4 / big_n**2
    var_den = 4 * sigma**2 * b / (k * n) + 2 * d * (k - 1) * sigma**4 / (k * n) ** 2
    expected = num / den
    se = expected * np.sqrt(var_num / num**2 + var_den / den**2)
    naive = d * sigma**2 / b  # the population value the estimator targets

    sb = centred.T @ centred / k
    nc1_closed = sigma**2 * np.trace(top_eig_pinv(sb, k - 1)) / k
    assert nc1_closed == pytest.approx(sigma**2 * (k - 1) ** 2 / (k * 4.0))  # λ = r²/(K−1)
    cdnv_closed = d * sigma**2 / np.sum((means[0] - means[1]) ** 2)

    replicates = []
    for seed in range(100):
        h, y, _ = clusters(k, d, n, sigma, seed=100 + seed, means=means)
        stats = ClassStats.from_features(h, y, k)
        replicates.append([variance_ratio(h, y, k), nc1(stats), cdnv(stats)])
    sd = np.std(replicates, axis=0)
    assert sd[0] == pytest.approx(se, rel=0.25)  # the analytic SE agrees with the spread

    h, y, _ = clusters(k, d, n, sigma, seed=7, means=means)
    stats = ClassStats.from_features(h, y, k)
    assert abs(variance_ratio(h, y, k) - expected) < 4 * se
    assert abs(variance_ratio(h, y, k) - naive) < 4 * se + abs(naive - expected)
    assert abs(nc1(stats) - nc1_closed) < 4 * sd[1]
    assert abs(cdnv(stats) - cdnv_closed) < 4 * sd[2]
    mean_nc1, mean_cdnv = np.mean(replicates, axis=0)[1:]
    assert mean_nc1 == pytest.approx(nc1_closed, rel=0.01)
    assert mean_cdnv == pytest.approx(cdnv_closed, rel=0.01)


def test_hand_computed_tiny_case():
    # class 0: (0,0) (2,0) (1,3) -> mean (1,1);  class 1: (4,4) (6,4) (5,1) -> mean (5,3)
    h = np.array([[0, 0], [2, 0], [1, 3], [4, 4], [6, 4], [5, 1]], np.float64)
    y = np.array([0, 0, 0, 1, 1, 1])
    stats = stats_of(h, y, 2)
    np.testing.assert_allclose(stats.means, [[1, 1], [5, 3]])
    # deviations: (−1,−1) (1,−1) (0,2) and (−1,1) (1,1) (0,−2): squared norms 2,2,4 twice,
    # so E‖h − μ_y‖² = 16/6 = 8/3; μ̄ = (3,2), ‖μ_c − μ̄‖² = 4 + 1 = 5 for both classes
    assert variance_ratio(h, y, 2) == pytest.approx((8 / 3) / 5)
    # Σ_W = (1/6)[[4,0],[0,12]] = diag(2/3, 2) (per class diag(2,6)/3 too)
    np.testing.assert_allclose(stats.within_class_cov("pooled"), [[2 / 3, 0], [0, 2]])
    np.testing.assert_allclose(stats.within_class_cov("class_averaged"), [[2 / 3, 0], [0, 2]])
    # Σ_B = (1/2)[(−2,−1)(−2,−1)ᵀ + (2,1)(2,1)ᵀ] = [[4,2],[2,1]]: rank 1, λ = 5,
    # v = (2,1)/√5, Σ_B⁺ = [[4,2],[2,1]]/25; Tr(Σ_W Σ_B⁺) = (4·2/3 + 1·2)/25 = 14/75;
    # NC1 = (1/2)(14/75) = 7/75
    np.testing.assert_allclose(stats.between_class_cov(), [[4, 2], [2, 1]])
    assert nc1(stats) == pytest.approx(7 / 75)
    assert nc1(stats, sigma_w="class_averaged") == pytest.approx(7 / 75)
    # CDNV: Var_0 = Var_1 = 8/3, ‖μ_0 − μ_1‖² = 16 + 4 = 20: (16/3)/40 = 2/15
    assert cdnv(stats) == pytest.approx(2 / 15)
    # K = 2: antipodal centred means -> equinorm 0, one pair (std 0), cos = −1 = −1/(K−1)
    assert nc2(stats.means, stats.global_mean()) == pytest.approx(
        {"equinorm": 0, "equiangularity": 0, "max_angle": 0}, abs=1e-12
    )
    # NC3 with W = I: M̄ = [[−2,2],[−1,1]], ‖M̄‖_F = √10, ‖I‖_F = √2;
    # ‖I/√2 − M̄/√10‖² = 1 + 1 − 2·(−2 + 1)/√20 = 2 + 1/√5
    assert nc3(np.eye(2), stats.means, stats.global_mean()) == pytest.approx(2 + 1 / np.sqrt(5))
    # k-means (K=2) recovers the two classes (any other split has inertia > 16), so
    # WeakTestVariance = StrongTestVariance = 8/15
    assert weak_test_variance(h, 2, seed=0, n_init=5) == pytest.approx(8 / 15)
    # nearest class mean: 0,0,0,1,1,1; network argmax below: 0,1,0,1,1,0 -> NC4 = 2/6,
    # accuracy = 4/6
    logits = np.array([[2, 1], [0, 1], [3, 0], [0, 2], [1, 5], [4, 1]], np.float64)
    assert nc4(h, logits, stats.means) == pytest.approx(1 / 3)
    assert accuracy(logits, y) == pytest.approx(2 / 3)
    # cross-entropy of logits (0, log 3) with label 1: −log(3/4); shifting by 1000 keeps it
    z = np.array([[0.0, np.log(3)], [1000.0, 1000.0 + np.log(3)]])
    assert cross_entropy(z, np.array([1, 1])) == pytest.approx(-np.log(0.75))


def test_cross_entropy_is_stable_in_float64():
    from scipy.special import logsumexp

    rng = np.random.default_rng(0)
    z = (rng.standard_normal((50, 7)) * 300).astype(np.float32)  # exp overflows float32/64
    y = rng.integers(0, 7, 50)
    z64 = z.astype(np.float64)
    expected = np.mean(logsumexp(z64, axis=1) - z64[np.arange(50), y])
    assert np.isfinite(cross_entropy(z, y))
    assert cross_entropy(z, y) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- invariances


def test_invariance_under_relabeling_rotation_scaling_translation():
    k, d = 4, 6
    rng = np.random.default_rng(3)
    h, y, _ = clusters(k=k, d=d, n=[20, 35, 50, 28], sigma=0.8, seed=3)
    w = rng.standard_normal((k, d))
    logits = h @ w.T + rng.standard_normal(k)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    perm = rng.permutation(k)  # class c becomes class perm[c]
    inv = np.argsort(perm)

    def metrics(features, labels, weight, z):
        stats = stats_of(features, labels, k)
        out = [variance_ratio(features, labels, k), cdnv(stats)]
        for sigma_w in ("pooled", "class_averaged"):
            for mu in ("class_means", "samples"):
                out.append(nc1(stats, sigma_w=sigma_w, global_mean=mu))
        out += list(nc2(stats.means, stats.global_mean()).values())
        out += [nc3(weight, stats.means, stats.global_mean()), nc4(features, z, stats.means)]
        return np.array(out)

    base = metrics(h, y, w, logits)
    shift = 5.0 * rng.standard_normal(d)
    np.testing.assert_allclose(metrics(h @ q.T, y, w @ q.T, logits), base, rtol=1e-9)
    np.testing.assert_allclose(metrics(3.7 * h, y, 3.7 * w, logits), base, rtol=1e-9)
    np.testing.assert_allclose(metrics(h + shift, y, w, logits), base, rtol=1e-9)
    np.testing.assert_allclose(metrics(h, perm[y], w[inv], logits[:, inv]), base, rtol=1e-9)


# --------------------------------------------------------------------------- subsets


def direct_numpy(h, y):
    """Independent numpy computation on a subset, classes = the labels present."""
    classes = np.unique(y)
    k = len(classes)
    groups = [h[y == c] for c in classes]
    means = np.array([g.mean(axis=0) for g in groups])
    dev = [g - m for g, m in zip(groups, means, strict=True)]
    out = {"counts": [len(g) for g in groups]}
    out["sw_pooled"] = sum(e.T @ e for e in dev) / len(h)
    out["sw_class"] = sum(e.T @ e / len(e) for e in dev) / k
    out["ratio"] = np.mean(np.sum((h - means[np.searchsorted(classes, y)]) ** 2, axis=1)) / (
        np.mean(np.sum((means - means.mean(axis=0)) ** 2, axis=1))
    )
    for name, mu_g in (("class_means", means.mean(axis=0)), ("samples", h.mean(axis=0))):
        m_bar = (means - mu_g).T  # d×K; Σ_B = M̄M̄ᵀ/K, top K−1 directions from its SVD
        u, s, _ = np.linalg.svd(m_bar, full_matrices=False)
        sb_pinv = (u[:, : k - 1] * (k / s[: k - 1] ** 2)) @ u[:, : k - 1].T
        for kind in ("pooled", "class"):
            out[f"nc1_{kind}_{name}"] = np.trace(out[f"sw_{kind}"] @ sb_pinv) / k
    var = [np.mean(np.sum(e**2, axis=1)) for e in dev]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    out["cdnv"] = np.mean(
        [(var[i] + var[j]) / (2 * np.sum((means[i] - means[j]) ** 2)) for i, j in pairs]
    )
    return out


def test_unequal_class_counts_are_counted_from_data():
    k = 4
    h, y, _ = clusters(k=k, d=5, n=60, sigma=1.0, seed=4)
    rng = np.random.default_rng(4)
    keep = np.concatenate([np.flatnonzero(y == c)[: [5, 37, 60, 11][c]] for c in range(k)])
    keep = rng.permutation(keep)
    hs, ys = h[keep], y[keep]
    ref = direct_numpy(hs, ys)
    stats = stats_of(hs, ys, k)
    assert stats.counts.tolist() == ref["counts"] == [5, 37, 60, 11]
    np.testing.assert_allclose(stats.within_class_cov("pooled"), ref["sw_pooled"], rtol=1e-12)
    np.testing.assert_allclose(
        stats.within_class_cov("class_averaged"), ref["sw_class"], rtol=1e-12
    )
    assert variance_ratio(hs, ys, k) == pytest.approx(ref["ratio"], rel=1e-12)
    for kind, sigma_w in (("pooled", "pooled"), ("class", "class_averaged")):
        for mu in ("class_means", "samples"):
            value = nc1(stats, sigma_w=sigma_w, global_mean=mu)
            assert value == pytest.approx(ref[f"nc1_{kind}_{mu}"], rel=1e-10)
    assert cdnv(stats) == pytest.approx(ref["cdnv"], rel=1e-12)
    # the conventions do change the number on unbalanced data
    assert nc1(stats, sigma_w="class_averaged") != pytest.approx(nc1(stats), rel=1e-3)


def test_absent_class_raises_unless_restricted_to_present_classes():
    k = 4
    h, y, means = clusters(k=k, d=5, n=[30, 0, 25, 40], sigma=1.0, seed=8)
    with pytest.raises(ValueError, match=r"classes \[1\] have no samples"):
        variance_ratio(h, y, k)
    stats = stats_of(h, y, k)
    for metric in (nc1, cdnv):
        with pytest.raises(ValueError, match="no samples"):
            metric(stats)
    # restricted to the present classes: the direct computation on K' = 3 classes
    ref = direct_numpy(h, y)
    present = stats.present_only()
    assert present.classes.tolist() == [0, 2, 3]
    assert variance_ratio(h, y, k, only_present=True) == pytest.approx(ref["ratio"], rel=1e-12)
    assert nc1(present) == pytest.approx(ref["nc1_pooled_class_means"], rel=1e-10)
    assert cdnv(present) == pytest.approx(ref["cdnv"], rel=1e-12)
    # external centres (e.g. the final checkpoint's means) need no sample of class 1
    value = variance_ratio(h, y, k, means, means_from="final_checkpoint")
    within = np.mean(np.sum((h - means[y]) ** 2, axis=1))
    between = np.mean(np.sum((means - means.mean(axis=0)) ** 2, axis=1))
    assert value == pytest.approx(within / between, rel=1e-12)


# --------------------------------------------------------------------------- streaming


def test_streamed_chunks_equal_one_shot_in_float32_with_large_offset():
    k, d = 3, 5
    rng = np.random.default_rng(5)
    y = rng.integers(0, k, 900)
    h = (rng.standard_normal((k, d))[y] + rng.standard_normal((900, d)) + 1e4).astype(np.float32)
    one = ClassStats.from_features(h, y, k, scatter="per_class")
    # chunks of uneven sizes, one of them empty and one holding a single class
    cuts = [0, 1, 2, 2, 150, 151, 400, 777, 900]
    merged = ClassStats.empty(k, d, scatter="per_class")
    updated = ClassStats.empty(k, d, scatter="per_class")
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        merged = merged.merge(ClassStats.from_features(h[lo:hi], y[lo:hi], k, scatter="per_class"))
        updated.update(h[lo:hi], y[lo:hi])
    # exact reference: the float32 values are exact in float64; two-pass in long double
    ref = []
    for c in range(k):
        block = h[y == c].astype(np.longdouble)
        ref.append(((block - block.mean(0)).T @ (block - block.mean(0))).astype(np.float64))
    ref = np.array(ref)
    scale = np.abs(ref).max()
    for stats in (one, merged, updated):
        np.testing.assert_array_equal(stats.counts, np.bincount(y, minlength=k))
        np.testing.assert_allclose(stats.means, one.means, rtol=1e-14)
        assert np.abs(stats.class_scatter - ref).max() < 1e-12 * scale
        assert np.abs(stats.pooled_scatter - ref.sum(0)).max() < 1e-12 * scale
        assert nc1(stats) == pytest.approx(nc1(one), rel=1e-10)
        assert nc1(stats, sigma_w="class_averaged") == pytest.approx(
            nc1(one, sigma_w="class_averaged"), rel=1e-10
        )
        assert cdnv(stats) == pytest.approx(cdnv(one), rel=1e-10)
        assert variance_ratio_from_stats(stats) == pytest.approx(variance_ratio(h, y, k), rel=1e-10)
    # why the centred update matters: one-pass float32 sums (Σhhᵀ − ΣhΣhᵀ/n) are garbage
    s = np.stack([h[y == c].sum(0, dtype=np.float32) for c in range(k)])
    q = np.stack([h[y == c].T @ h[y == c] for c in range(k)])
    naive = q - s[:, :, None] * s[:, None, :] / np.bincount(y)[:, None, None].astype(np.float32)
    assert np.abs(naive - ref).max() > 0.5 * scale
    with pytest.raises(ValueError, match="cannot merge"):
        one.merge(ClassStats.from_features(h, y, k))  # per_class with pooled


# --------------------------------------------------------------------------- NC1 pinv


def test_top_k_minus_1_pinv_convention_matters_and_nc1_is_never_negative():
    """K = 4 classes in d = 64 with a ReLU-like offset of 20, float32 features.

    Σ_B computed the public-code way (float32 means and products) has rank K−1 = 3 plus
    d−3 noise eigenvalues of size ≈ 2e-8·λ_max, about half of them negative, all above
    np.linalg.pinv's default cut-off (rcond = 1e-15·λ_max).  pinv inverts them: "NC1"
    comes out near ±1e8 instead of 0.055, with a sign set by the noise (each negative noise
    eigenvalue adds a negative term v'Σ_W v/λ; we saw −7e8 on a neighbouring seed).  The
    top-(K−1) eigenpairs of the same float32 Σ_B agree with our float64 NC1 to 1e-5.
    """
    k, d = 4, 64
    h, y, _ = clusters(k=k, d=d, n=50, sigma=0.5, seed=0, offset=20.0)
    h = h.astype(np.float32)
    stats = ClassStats.from_features(h, y, k)
    ours = nc1(stats)
    mu32 = np.stack([h[y == c].mean(0) for c in range(k)])
    m32 = mu32 - mu32.mean(0)
    sb32 = m32.T @ m32 / np.float32(k)
    assert sb32.dtype == np.float32
    sw = stats.within_class_cov()
    values, vectors = np.linalg.eigh(sb32.astype(np.float64))
    noise = np.argsort(values)[::-1][k - 1 :]
    inverted = noise[np.abs(values[noise]) > 1e-15 * values.max()]
    assert len(inverted) == d - (k - 1)  # pinv inverts every noise direction
    terms = np.sum(vectors * (sw @ vectors), axis=0)[inverted] / values[inverted]
    assert terms.min() < -1e3 * ours  # negative eigenvalues give large negative terms
    top = np.trace(sw @ top_eig_pinv(sb32, k - 1)) / k
    assert top == pytest.approx(ours, rel=1e-5)
    for pinv in (np.linalg.pinv(sb32), np.linalg.pinv(sb32.astype(np.float64))):
        assert abs(np.trace(sw @ pinv) / k) > 1e3 * ours  # noise directions dominate

    # NC1 ≥ 0 over noisy, tiny, float32 and d < K−1 cases
    for seed, (kk, dd, n, sigma, off) in enumerate(
        [(4, 5, 2, 5.0, 0.0), (10, 4, 6, 1.0, 0.0), (6, 50, 3, 0.1, 1e3), (3, 2, 40, 10.0, 5.0)]
    ):
        means = 3.0 * np.random.default_rng(seed).standard_normal((kk, dd)) + off
        hh, yy, _ = clusters(k=kk, d=dd, n=n, sigma=sigma, seed=seed, means=means)
        for dtype in (np.float32, np.float64):
            for sigma_w in ("pooled", "class_averaged"):
                value = nc1(stats_of(hh.astype(dtype), yy, kk), sigma_w=sigma_w)
                assert np.isfinite(value) and value >= 0
    # affinely dependent class means: Σ_B has rank < K−1 and NC1 is undefined (NaN)
    means = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])  # collinear: rank 1 < 2
    hh, yy, _ = clusters(k=3, d=3, n=10, sigma=0.1, means=means)
    hh -= np.stack([hh[yy == c].mean(0) for c in range(3)])[yy] - means[yy]  # exact means
    assert np.isnan(nc1(ClassStats.from_features(hh, yy, 3)))


# --------------------------------------------------------------------------- NC4


def test_nc4_hand_built_uses_the_network_bias():
    # class means (0,0) and (4,0): nearest-class-mean predicts class 1 iff x > 2.
    # network: W = [[−1,0],[1,0]], b = [1,−1] -> logits (1 − x, x − 1): class 1 iff x > 1.
    means = np.array([[0.0, 0.0], [4.0, 0.0]])
    h = np.array([[0.5, 0.3], [1.5, -0.2], [2.5, 0.1], [3.5, 0.0]])
    w, b = np.array([[-1.0, 0.0], [1.0, 0.0]]), np.array([1.0, -1.0])
    # NCM: 0, 0, 1, 1; network: 0, 1, 1, 1 -> one disagreement in four
    assert nc4(h, h @ w.T + b, means) == pytest.approx(0.25)
    # dropping the bias moves the network's boundary to x = 0: two disagreements
    assert nc4(h, h @ w.T, means) == pytest.approx(0.5)
    # classes= maps rows of `means` to class ids (after present_only)
    assert nc4(h, np.c_[np.zeros(4), h @ w.T + b], means, classes=[1, 2]) == pytest.approx(0.25)


def test_weak_test_variance_matches_strong_when_kmeans_recovers_the_classes():
    k = 5
    h, y, _ = clusters(k=k, d=6, n=[40, 10, 70, 25, 55], sigma=0.3, seed=9)
    strong = variance_ratio(h, y, k)
    weak = weak_test_variance(h[::-1], k, seed=3, n_init=4)  # order and labels are irrelevant
    assert weak == pytest.approx(strong, rel=1e-10)
    assert weak_test_variance.conventions(seed=3, n_init=4)["kmeans_n_init"] == 4


# --------------------------------------------------------------------------- compute_all


def test_compute_all_rows_values_and_conventions(tmp_path):
    k, d = 3, 4
    rng = np.random.default_rng(7)
    h, y, means = clusters(k=k, d=d, n=[20, 30, 25], sigma=0.6, seed=7)
    ht, yt, _ = clusters(k=k, d=d, n=[15, 10, 12], sigma=0.9, seed=17, means=means)
    w = means - means.mean(0)
    bias = rng.standard_normal(k)
    # the feature-file layout of ncrepro.features (classifier_weight/bias, extra keys)
    train = {
        "features": h.astype(np.float32),
        "labels": y,
        "logits": h @ w.T + bias,
        "classifier_weight": w,
        "classifier_bias": bias,
        "index": np.arange(len(y)),
    }
    test = SplitData(ht, yt, W=w, b=bias)  # logits computed as h Wᵀ + b
    rows = compute_all(train, test, k, seed=0, kmeans_n_init=2)

    names = {(r["split"], r["metric"]) for r in rows}
    train_names = {"train_variance", "nc1", "nc3", "nc4", "cdnv", "accuracy", "loss"}
    nc2_parts = ("equinorm", "equiangularity", "max_angle")
    train_names |= {f"nc2_{p}{m}" for p in ("", "w_") for m in nc2_parts}
    test_names = {"strong_test_variance", "weak_test_variance", "nc1", "cdnv", "accuracy", "loss"}
    assert names == {("train", m) for m in train_names} | {("test", m) for m in test_names}
    assert len({tuple(r) for r in rows}) == 1  # every row has the same keys
    row = {(r["split"], r["metric"]): r for r in rows}

    stats, stats_t = ClassStats.from_features(h, y, k), ClassStats.from_features(ht, yt, k)
    assert row["train", "train_variance"]["value"] == pytest.approx(variance_ratio(h, y, k))
    assert row["test", "strong_test_variance"]["value"] == pytest.approx(variance_ratio(ht, yt, k))
    assert row["test", "weak_test_variance"]["value"] == pytest.approx(
        weak_test_variance(ht, k, seed=0, n_init=2)
    )
    assert row["test", "nc1"]["value"] == pytest.approx(nc1(stats_t))
    assert row["train", "nc3"]["value"] == pytest.approx(nc3(w, stats.means, stats.global_mean()))
    assert row["train", "nc4"]["value"] == pytest.approx(nc4(h, h @ w.T + bias, stats.means))
    assert row["test", "accuracy"]["value"] == pytest.approx(accuracy(ht @ w.T + bias, yt))
    assert row["test", "loss"]["value"] == pytest.approx(cross_entropy(ht @ w.T + bias, yt))

    nc1_row = row["train", "nc1"]
    assert nc1_row["sigma_w"] == "pooled" and nc1_row["global_mean"] == "class_means"
    assert nc1_row["sb_pinv"] == "top_k_minus_1" and nc1_row["grouping"] == "true_labels"
    assert row["train", "train_variance"]["means_from"] == "same_checkpoint"
    assert row["test", "weak_test_variance"]["kmeans_seed"] == 0
    assert row["train", "nc2_equinorm"]["std_ddof"] == 0
    assert row["train", "accuracy"]["sigma_w"] is None  # conventions only where they apply

    frame = pd.DataFrame(rows)  # the rows form a Parquet table
    frame.to_parquet(tmp_path / "m.parquet", index=False)
    assert len(pd.read_parquet(tmp_path / "m.parquet")) == len(rows)

    # other conventions are recorded and change the numbers
    other = compute_all(
        train,
        test,
        k,
        seed=0,
        sigma_w="class_averaged",
        global_mean="samples",
        grouping="predicted_labels",
        centers={"train": means},
        means_from="final_checkpoint",
    )
    other_row = {(r["split"], r["metric"]): r for r in other}
    assert other_row["train", "nc1"]["sigma_w"] == "class_averaged"
    assert other_row["train", "nc1"]["grouping"] == "predicted_labels"
    assert other_row["train", "train_variance"]["means_from"] == "final_checkpoint"
    assert other_row["test", "strong_test_variance"]["means_from"] == "same_checkpoint"
    assert other_row["train", "nc1"]["value"] != pytest.approx(nc1_row["value"], rel=1e-6)

    # a test split missing a class: an error by default, dropped with only_present=True
    missing = SplitData(ht[yt != 2], yt[yt != 2], W=w, b=bias)
    with pytest.raises(ValueError, match="no samples"):
        compute_all(train, missing, k, seed=0)
    rows_present = compute_all(train, missing, k, seed=0, only_present=True)
    strong = next(r for r in rows_present if r["metric"] == "strong_test_variance")
    assert strong["only_present"] is True
    assert strong["value"] == pytest.approx(variance_ratio(ht[yt != 2], yt[yt != 2], 2))


def test_conventions_companions():
    assert nc1.conventions() == {
        "sigma_w": "pooled",
        "global_mean": "class_means",
        "sb_pinv": "top_k_minus_1",
    }
    assert nc1.conventions(sigma_w="class_averaged")["sigma_w"] == "class_averaged"
    assert variance_ratio.conventions()["means_from"] == "same_checkpoint"
    external = variance_ratio.conventions(centers=np.zeros((2, 2)), means_from="final_checkpoint")
    assert external["means_from"] == "final_checkpoint"
    assert nc2.conventions() == {"std_ddof": 0}
    with pytest.raises(ValueError, match="sigma_w"):
        nc1.conventions(sigma_w="per_sample")
    h, y, _ = clusters(k=3, d=4, n=5, sigma=1.0)
    with pytest.raises(ValueError, match="sigma_w"):
        nc1(stats_of(h, y, 3), sigma_w="per_sample")
    with pytest.raises(TypeError, match="seed"):
        weak_test_variance.conventions(n_init=3)  # seed has no default


# --------------------------------------------------------------------------- UFM-study measures


def test_etf_distance_closed_forms():
    k, d = 5, 9
    etf = simplex_etf(k, d, seed=3)
    # a rotated, scaled simplex ETF around any global mean: 0
    means = 2.5 * etf + np.arange(d)
    assert etf_distance(means, means.mean(axis=0)) == pytest.approx(0, abs=1e-14)
    # centred means forming an orthogonal frame (G = r²I): ‖I/√K − (I − J)/√(K−1)‖_F
    #   = √(1 + 1 − 2 tr(I − J)/√(K(K−1))) = √(2 − 2√((K−1)/K))
    frame = 3.0 * np.eye(k, d)
    expected = np.sqrt(2 - 2 * np.sqrt((k - 1) / k))
    assert etf_distance(frame, np.zeros(d)) == pytest.approx(expected, rel=1e-14)
    # ... while centring an orthogonal frame on the mean of its rows gives a simplex ETF
    assert etf_distance(frame, frame.mean(axis=0)) == pytest.approx(0, abs=1e-14)
    # all centred means along one direction: G ∝ 11ᵀ, G/‖G‖ = J ⟂ I − J: the maximum √2
    assert etf_distance(np.ones((k, d)), np.zeros(d)) == pytest.approx(np.sqrt(2), rel=1e-14)
    # K = 2 by hand: centred means (1, 0) and (0, 2): G = diag(1, 4), ‖G‖ = √17,
    # (I − J)/‖I − J‖ = [[1, −1], [−1, 1]]/2: ‖·‖² = (1/√17 − ½)² + (4/√17 − ½)² + 2·¼
    value = etf_distance(np.array([[1.0, 0], [0, 2]]), np.zeros(2))
    hand = (1 / np.sqrt(17) - 0.5) ** 2 + (4 / np.sqrt(17) - 0.5) ** 2 + 0.5
    assert value == pytest.approx(np.sqrt(hand), rel=1e-14)
    assert np.isnan(etf_distance(np.ones((3, 2)), np.ones(2)))  # every centred mean is 0
    assert etf_distance.conventions() == {"etf_distance": "frobenius_normalised_gram"}


def test_nc2_gram_cosines_equal_the_default_up_to_rounding():
    rng = np.random.default_rng(4)
    means = rng.standard_normal((6, 4))
    mu_g = means.mean(axis=0)
    default, gram = nc2(means, mu_g), nc2(means, mu_g, cosines="gram")
    assert gram == pytest.approx(default, rel=1e-12)
    assert min(gram.values()) > 1e-3
    for value in nc2(simplex_etf(4, 6), np.zeros(6), cosines="gram").values():
        assert value == pytest.approx(0, abs=1e-12)
    # the default rows keep their columns; the gram evaluation is recorded
    assert nc2.conventions() == {"std_ddof": 0}
    assert nc2.conventions(cosines="gram") == {"nc2_cosines": "gram", "std_ddof": 0}
    with pytest.raises(ValueError, match="cosines"):
        nc2(means, mu_g, cosines="pairs")
    with pytest.raises(ValueError, match="cosines"):
        nc2.conventions(cosines="pairs")


def test_uncentred_nc3_hand_computed():
    # means (1,1) and (5,3), W = I: uncentred M̄ = [[1,5],[1,3]], ‖M̄‖_F = 6, ‖I‖_F = √2:
    # ‖I/√2 − M̄/6‖² = 1 + 1 − 2 tr(M̄)/(6√2) = 2 − 2√2/3
    means = np.array([[1.0, 1.0], [5.0, 3.0]])
    assert nc3(np.eye(2), means, centred=False) == pytest.approx(2 - 2 * np.sqrt(2) / 3)
    # centred on μ_G = (3, 2) it is the value of the tiny hand case above
    assert nc3(np.eye(2), means, means.mean(axis=0)) == pytest.approx(2 + 1 / np.sqrt(5))
    # W = c·[μ_c] is self-dual uncentred but not centred
    assert nc3(0.7 * means, means, centred=False) == pytest.approx(0, abs=1e-28)
    assert nc3(0.7 * means, means, means.mean(axis=0)) > 0.1
    assert np.isnan(nc3(np.zeros((2, 2)), means, centred=False))
    assert nc3.conventions() == {"nc3_centred": True}
    assert nc3.conventions(centred=False) == {"nc3_centred": False}
    with pytest.raises(ValueError, match="global_mean"):
        nc3(np.eye(2), means, means.mean(axis=0), centred=False)
    with pytest.raises(ValueError, match="global_mean"):
        nc3(np.eye(2), means)


def test_nc3_prime_and_its_scale():
    rng = np.random.default_rng(5)
    k, d = 4, 7
    means = rng.standard_normal((k, d)) + 2.0
    rotation = np.linalg.qr(rng.standard_normal((k, k)))[0]
    # W = κ Q H̄ᵀ (rows: κ Q [μ_c]): WᵀW = κ² H̄H̄ᵀ, so NC3′ = 0 and the scale is κ
    weight = 1.7 * rotation @ means
    assert nc3_prime(weight, means) == pytest.approx(0, abs=1e-14)
    assert nc3_prime_scale(weight, means) == pytest.approx(1.7, rel=1e-12)
    assert nc3(weight, means, centred=False) > 1e-3  # the rotation breaks NC3 itself
    # by hand, K = d = 2: means I (H̄H̄ᵀ = I, ‖·‖ = √2), W = diag(1, 0) (WᵀW = diag(1, 0)):
    # ‖diag(1, 0) − I/√2‖² = (1 − 1/√2)² + ½ = 2 − √2;  κ² = ⟨diag(1,0), I⟩/‖I‖² = ½
    w = np.diag([1.0, 0.0])
    assert nc3_prime(w, np.eye(2)) == pytest.approx(np.sqrt(2 - np.sqrt(2)), rel=1e-14)
    assert nc3_prime_scale(w, np.eye(2)) == pytest.approx(np.sqrt(0.5), rel=1e-14)
    assert np.isnan(nc3_prime(np.zeros((k, d)), means))
    assert np.isnan(nc3_prime_scale(weight, np.zeros((k, d))))
    with pytest.raises(ValueError, match="class means"):
        nc3_prime(np.zeros((k, d + 1)), means)
    assert nc3_prime.conventions() == {"nc3_prime_means": "uncentred"}
    assert nc3_prime_scale.conventions()["kappa_fit"] == "least_squares"


def test_within_class_scatter_hand_computed():
    # the tiny case: squared deviations 2,2,4 per class (16 in all), Σ‖h_i‖² = 124, N = 6
    h = np.array([[0, 0], [2, 0], [1, 3], [4, 4], [6, 4], [5, 1]], np.float64)
    y = np.array([0, 0, 0, 1, 1, 1])
    means = ClassStats.from_features(h, y, 2).means
    assert within_class_scatter(h, y, means) == pytest.approx(np.sqrt(16 / 124))
    assert within_class_scatter(h, y, means, relative=False) == pytest.approx(16 / 6)
    # equals tr Σ_W of the statistics; a class without samples is not used
    assert within_class_scatter(h, y, means, relative=False) == pytest.approx(
        np.trace(stats_of(h, y, 2).within_class_cov())
    )
    padded = np.vstack([means, np.full((1, 2), np.nan)])
    assert within_class_scatter(h, y, padded) == pytest.approx(np.sqrt(16 / 124))
    h_collapsed, y_collapsed, true_means = clusters(k=3, d=4, n=5, sigma=0.0, offset=2.0)
    assert within_class_scatter(h_collapsed, y_collapsed, true_means) == 0.0
    assert np.isnan(within_class_scatter(np.zeros((3, 2)), [0, 1, 1], np.zeros((2, 2))))
    assert within_class_scatter.conventions(relative=False) == {"relative": False}


def test_nc1_relative_cutoff_pinv():
    # generic means: the same NC1 as the default convention, up to rounding
    h, y, _ = clusters(k=4, d=6, n=20, sigma=0.5, seed=3)
    stats = stats_of(h, y, 4)
    assert nc1(stats, sb_pinv="top_k_minus_1_rtol") == pytest.approx(nc1(stats), rel=1e-12)
    # collinear means (0,0), (2,0), (4,0): Σ_B = diag(8/3, 0) has rank 1 < K − 1 = 2.
    # Deviations ±(1,1) in every class: Σ_W = [[1,1],[1,1]].  The default is NaN; the
    # cut-off inverts only λ = 8/3 on e_1: NC1 = (1/3)·Σ_W[0,0]/(8/3) = 1/8
    means = np.array([[0.0, 0], [2, 0], [4, 0]])
    y = np.repeat(np.arange(3), 2)
    h = means[y] + np.tile([[1.0, 1.0], [-1.0, -1.0]], (3, 1))
    stats = stats_of(h, y, 3)
    np.testing.assert_allclose(stats.within_class_cov(), [[1, 1], [1, 1]])
    assert np.isnan(nc1(stats))
    assert nc1(stats, sb_pinv="top_k_minus_1_rtol") == pytest.approx(1 / 8, rel=1e-14)
    # no between-class spread at all: NaN under both conventions
    flat = stats_of(np.tile([[1.0, 1.0], [-1.0, -1.0]], (3, 1)), y, 3)
    assert np.isnan(nc1(flat)) and np.isnan(nc1(flat, sb_pinv="top_k_minus_1_rtol"))
    # top_eig_pinv: rtol drops the tiny eigenvalue that the exact-rank version inverts
    m = np.diag([2.0, 1e-13, 0.0])
    np.testing.assert_allclose(top_eig_pinv(m, 2, rtol=1e-12), np.diag([0.5, 0, 0]))
    assert top_eig_pinv(m, 2)[1, 1] == pytest.approx(1e13)
    with pytest.raises(ValueError):
        top_eig_pinv(np.zeros((2, 2)), 1, rtol=1e-12)
    assert nc1.conventions(sb_pinv="top_k_minus_1_rtol")["sb_pinv"] == "top_k_minus_1_rtol"
    with pytest.raises(ValueError, match="sb_pinv"):
        nc1(stats, sb_pinv="pinv")
    with pytest.raises(ValueError, match="sb_pinv"):
        nc1.conventions(sb_pinv="pinv")
