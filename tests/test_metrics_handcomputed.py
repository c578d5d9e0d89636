"""NC2, NC3, NC4 and WeakTestVariance of ncrepro.metrics against configurations worked out
on paper: K = 3, class means that are not a simplex ETF, unbalanced classes, small
integer coordinates, so that every expected number below is exact (each comment is the
hand computation). tests/test_metrics.py covers K = 2 by hand (where NC2 is trivially 0)
and closed forms on simplex ETFs; these cases make a wrong convention (ddof, the global
mean, centring, the square in NC3, the bias in NC4) change the number."""

import numpy as np
import pytest

from ncrepro.metrics import (
    ClassStats,
    compute_all,
    nc2,
    nc2_weights,
    nc3,
    nc4,
    variance_ratio,
    weak_test_variance,
)

# Centred class means m̃_0 = (3, 0), m̃_1 = (0, 4), m̃_2 = (−3, −4) (they sum to 0), shifted
# by μ_G = (1, 2) and lifted to d = 3 with a constant third coordinate 5:
#   μ_0 = (4, 2, 5), μ_1 = (1, 6, 5), μ_2 = (−2, −2, 5).
# Unbalanced classes (1, 2, 3 samples) whose deviations from the class mean cancel:
FEATURES = np.array(
    [
        [4, 2, 5],  # class 0: μ_0 itself
        [2, 6, 5],  # class 1: μ_1 ± (1, 0, 0)
        [0, 6, 5],
        [-1, -1, 5],  # class 2: μ_2 + (1, 1, 0), (−1, 0, 0), (0, −1, 0)
        [-3, -2, 5],
        [-2, -3, 5],
    ],
    np.float64,
)
LABELS = np.array([0, 1, 1, 2, 2, 2])
MEANS = np.array([[4.0, 2, 5], [1, 6, 5], [-2, -2, 5]])
MU_G = np.array([1.0, 2, 5])

# NC2 of the centred means (norms 3, 4, 5):
#   equinorm: mean 4, population variance ((3−4)² + 0 + (5−4)²)/3 = 2/3 → √(2/3)/4 = √6/12
#             (ddof = 1 would give variance 1 → 1/4)
#   cosines:  cos(m̃_0, m̃_1) = 0, cos(m̃_0, m̃_2) = −9/15 = −3/5, cos(m̃_1, m̃_2) = −16/20 = −4/5;
#             mean −7/15, mean of squares (0 + 9/25 + 16/25)/3 = 1/3,
#             population variance 1/3 − 49/225 = 26/225 → equiangularity √26/15
#             (ddof = 1: 13/75)
#   max-angle: |cos + 1/(K−1)| = |0 + ½|, |−3/5 + ½|, |−4/5 + ½| = ½, 1/10, 3/10 → mean 3/10
#             (the same over ordered pairs c ≠ c′: each pair counted twice)
NC2_HAND = {"equinorm": np.sqrt(6) / 12, "equiangularity": np.sqrt(26) / 15, "max_angle": 0.3}


def test_class_statistics_of_the_configuration():
    stats = ClassStats.from_features(FEATURES, LABELS, 3)
    np.testing.assert_array_equal(stats.counts, [1, 2, 3])
    np.testing.assert_allclose(stats.means, MEANS, rtol=0, atol=1e-15)
    np.testing.assert_allclose(stats.global_mean(), MU_G, rtol=0, atol=1e-15)
    # the sample mean: x (4 + 2 + 0 − 1 − 3 − 2)/6 = 0, y (2 + 6 + 6 − 1 − 2 − 3)/6 = 4/3
    np.testing.assert_allclose(stats.global_mean("samples"), [0, 4 / 3, 5], rtol=1e-15)


def test_nc2_hand_computed_non_etf_means():
    stats = ClassStats.from_features(FEATURES, LABELS, 3)
    values = nc2(stats.means, stats.global_mean())
    assert values == pytest.approx(NC2_HAND, rel=1e-14)
    assert values["equinorm"] != pytest.approx(0.25, rel=1e-3)  # not ddof = 1
    assert values["equiangularity"] != pytest.approx(np.sqrt(13 / 75), rel=1e-3)
    # NC2 is a function of the centred means only: shifting and rotating the features in
    # R^3 does not change it
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    moved = ClassStats.from_features(FEATURES @ rotation.T + 7.0, LABELS, 3)
    assert nc2(moved.means, moved.global_mean()) == pytest.approx(NC2_HAND, rel=1e-12)
    # centred on the sample mean (0, 4/3, 5) instead, the numbers differ: the global mean
    # is a convention that matters on unbalanced classes
    other = nc2(stats.means, stats.global_mean("samples"))
    for key, value in NC2_HAND.items():
        assert other[key] != pytest.approx(value, rel=1e-3)


def test_nc2_of_classifier_rows_is_uncentred():
    # rows w = (3, 0), (0, 4), (−3, 4) (they do not sum to 0; nothing is subtracted):
    #   norms 3, 4, 5 → equinorm √6/12 as above
    #   cosines 0, −9/15 = −3/5, +16/20 = 4/5: mean 1/15, mean of squares 1/3,
    #   variance 1/3 − 1/225 = 74/225 → equiangularity √74/15
    #   |cos + ½| = ½, 1/10, 13/10 → max-angle (5 + 1 + 13)/30 = 19/30
    weight = np.array([[3.0, 0], [0, 4], [-3, 4]])
    assert nc2_weights(weight) == pytest.approx(
        {"equinorm": np.sqrt(6) / 12, "equiangularity": np.sqrt(74) / 15, "max_angle": 19 / 30},
        rel=1e-14,
    )


def test_nc3_hand_computed():
    # NC3 = ‖Wᵀ/‖W‖_F − M̄/‖M̄‖_F‖_F² = 2 − 2⟨W, M̄ᵀ⟩/(‖W‖_F ‖M̄‖_F), M̄ᵀ the centred means
    # (rows (3, 0, 0), (0, 4, 0), (−3, −4, 0)): ‖M̄‖_F² = 9 + 16 + 25 = 50.
    stats = ClassStats.from_features(FEATURES, LABELS, 3)
    mu_g = stats.global_mean()
    # W rows e_1, e_2, 0: ‖W‖_F = √2, ⟨W, M̄ᵀ⟩ = 3 + 4 = 7 → 2 − 14/(√2·5√2) = 2 − 7/5 = 3/5
    w = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 0]])
    assert nc3(w, stats.means, mu_g) == pytest.approx(3 / 5, rel=1e-14)
    # (3/5, not √(3/5): NC3 is the squared distance; and not that of the uncentred means
    #  [μ_c]: ⟨W, [μ_c]⟩ = 4 + 6 = 10, ‖[μ_c]‖_F² = 45 + 62 + 33 = 140
    #  → 2 − 20/(√2 √140) ≈ 1.1548)
    assert nc3(w, stats.means, centred=False) == pytest.approx(2 - 20 / np.sqrt(280), rel=1e-14)
    # W rows (1, 0, 0), (0, 1, 0), (−1, −1, 0): ‖W‖_F = 2, ⟨W, M̄ᵀ⟩ = 3 + 4 + 7 = 14
    #   → 2 − 28/(2·5√2) = 2 − 7√2/5 ≈ 0.0201 (almost self-dual, not quite)
    w_centred = np.array([[1.0, 0, 0], [0, 1, 0], [-1, -1, 0]])
    assert nc3(w_centred, stats.means, mu_g) == pytest.approx(2 - 7 * np.sqrt(2) / 5, rel=1e-12)
    # a scale of W or of the means does not matter; W = M̄ᵀ itself gives 0
    assert nc3(10.0 * w, stats.means, mu_g) == pytest.approx(3 / 5, rel=1e-14)
    assert nc3(stats.means - mu_g, stats.means, mu_g) == pytest.approx(0, abs=1e-28)


def test_per_checkpoint_rows_carry_the_hand_computed_nc2_and_nc3():
    # the metrics stage's path (feature-file mapping -> rows): NC2 of the centred class
    # means and of the classifier rows, NC3, all as computed by hand above
    weight = np.array([[3.0, 0, 1], [0, 4, 0], [-3, 4, 0]])  # NC2 of W: third column
    data = {"features": FEATURES, "labels": LABELS, "classifier_weight": weight}
    data["classifier_bias"] = np.zeros(3)
    rows = {(r["split"], r["metric"]): r for r in compute_all(data, data, 3, seed=0)}
    for key, value in NC2_HAND.items():
        assert rows["train", f"nc2_{key}"]["value"] == pytest.approx(value, rel=1e-14)
        assert rows["train", f"nc2_{key}"]["std_ddof"] == 0
    # W rows (3, 0, 1), (0, 4, 0), (−3, 4, 0): ‖W‖_F² = 10 + 16 + 25 = 51, ⟨W, M̄ᵀ⟩ =
    # 9 + 16 + (9 − 16) = 18 → NC3 = 2 − 2·18/(√51·5√2) = 2 − 36/(5√102)
    expected = 2 - 36 / (5 * np.sqrt(102))
    assert rows["train", "nc3"]["value"] == pytest.approx(expected, rel=1e-14)
    # NC2 of the rows of W (uncentred): norms √10, 4, 5, mean m = (9 + √10)/3, mean of
    # squares (10 + 16 + 25)/3 = 17 → equinorm √(17 − m²)/m
    m = (9 + np.sqrt(10)) / 3
    equinorm = np.sqrt(17 - m**2) / m
    assert rows["train", "nc2_w_equinorm"]["value"] == pytest.approx(equinorm, rel=1e-14)


def test_nc4_hand_computed_with_and_without_the_bias():
    # class means (0, 0), (4, 0), (0, 4); the network has W = the means and no bias, so it
    # predicts argmax (0, 4x, 4y); the nearest-class-mean (NCM) rule is argmin ‖h − μ_c‖².
    means = np.array([[0.0, 0], [4, 0], [0, 4]])
    h = np.array([[1, 0.5], [3, 1], [-1, -1], [1, 3], [0.5, 1.5], [2.5, 2]])
    # point        ‖h − μ_c‖² (c = 0, 1, 2)    NCM   logits (0, 4x, 4y)  network
    # (1, 0.5)     1.25,  9.25, 13.25          0     (0, 4, 2)           1   differs
    # (3, 1)       10,    2,    18             1     (0, 12, 4)          1
    # (−1, −1)     2,     26,   26             0     (0, −4, −4)         0
    # (1, 3)       10,    18,   2              2     (0, 4, 12)          2
    # (0.5, 1.5)   2.5,   14.5, 6.5            0     (0, 2, 6)           2   differs
    # (2.5, 2)     10.25, 6.25, 10.25          1     (0, 10, 8)          1
    assert nc4(h, h @ means.T, means) == pytest.approx(2 / 6, rel=1e-15)
    # with the bias b_c = −‖μ_c‖²/2 = (0, −8, −8) the network *is* the NCM rule
    # (argmin ‖h − μ_c‖² = argmax ⟨h, μ_c⟩ − ‖μ_c‖²/2): NC4 = 0
    bias = -0.5 * np.sum(means**2, axis=1)
    assert nc4(h, h @ means.T + bias, means) == 0.0
    # through compute_all (the network's logits from W and b of a feature file): the six
    # points labelled by their NCM class plus one anchor per class that puts the class
    # means exactly at `means`: class 0 {(1, ½), (−1, −1), (½, 3/2)} sums to (½, 1), anchor
    # (−½, −1); class 1 {(3, 1), (5/2, 2)} + (13/2, −3) sums to (12, 0); class 2 {(1, 3)}
    # + (−1, 5) sums to (0, 8). The anchors agree (NCM 0, 1, 2; logits (0, −2, −4),
    # (0, 26, −12), (0, −4, 20)), so NC4 = 2/9.
    anchors = np.array([[-0.5, -1], [6.5, -3], [-1, 5]])
    features = np.vstack([h, anchors])
    labels = np.array([0, 1, 0, 2, 0, 1, 0, 1, 2])
    for b, expected in ((np.zeros(3), 2 / 9), (bias, 0.0)):
        data = {"features": features, "labels": labels, "classifier_weight": means}
        data["classifier_bias"] = b
        rows = compute_all(data, data, 3, seed=0, kmeans_n_init=1)
        [value] = [r["value"] for r in rows if r["metric"] == "nc4"]
        assert value == pytest.approx(expected, abs=1e-15)


def test_weak_test_variance_below_strong_on_overlapping_1d_clusters():
    # 1-D, K = 2: class 0 = {0, 1, 2, 5}, class 1 = {3, 6, 7, 8} (5 and 3 cross over).
    # Strong: class means 2 and 6; squared deviations 4, 1, 0, 9 and 9, 0, 1, 4 → 28/8 = 7/2;
    #   μ̄ = 4, E_i (μ_i − μ̄)² = 4 → 7/8.
    # Weak: k-means splits the sorted points {0, 1, 2, 3} | {5, 6, 7, 8}: centroids 1.5 and
    #   6.5, SSE 2·(2.25 + 0.25 + 0.25 + 2.25) = 10 → 10/8 = 5/4; μ̃ = 4, spread 6.25 → 1/5.
    #   That split is Lloyd's only fixed point: cutting after the k smallest points instead,
    #   k = 1, 2, 3, 5, 6, 7, puts the centroids' midpoint at 2.29, 2.83, 3.4, 4.6, 5.17, 5.71,
    #   on the wrong side of a point next to the cut; so every seed reaches it.
    x = np.array([0.0, 1, 2, 5, 3, 6, 7, 8])[:, None]
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert variance_ratio(x, y, 2) == pytest.approx(7 / 8, rel=1e-15)
    for seed in range(5):
        assert weak_test_variance(x, 2, seed=seed, n_init=1) == pytest.approx(1 / 5, rel=1e-14)


def test_weak_test_variance_on_overlapping_2d_clusters_is_below_strong_and_seeded():
    # three overlapping Gaussian clusters (centres 2 apart, σ = 1): k-means' partition has a
    # smaller within-cluster scatter and more spread centroids than the true classes
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0], [2, 0], [1, 1.7]])
    y = np.repeat(np.arange(3), 40)
    h = centres[y] + rng.standard_normal((120, 2))
    strong = variance_ratio(h, y, 3)
    values = [weak_test_variance(h, 3, seed=seed, n_init=1) for seed in range(10)]
    assert max(values) < 0.5 * strong  # ≈ 0.65–0.73 against ≈ 1.85
    # the same seed gives the identical number (KMeans random_state fixes k-means++)
    assert [weak_test_variance(h, 3, seed=seed, n_init=1) for seed in range(10)] == values
    # different seeds may land in different local optima of k-means (as here), so the
    # value depends on the seed: that is why kmeans_seed and kmeans_n_init are recorded
    assert len(set(values)) > 1
