"""The fast paths of the NC metric suite against straightforward references, to 1e-12:
`ClassStats.from_features` (one blocked pass, shifted data, syrk accumulation) against a
per-class two-pass computation; Σ_B's eigenpairs from the K×K Gram matrix (and from the
SVD when ill-conditioned) against the d×d eigendecomposition and a 40-digit reference;
NC4's float32 screening against float64 distances; `MeanSpan` (NC1's scatter on the
span of the class means, NC4's nearest means) against the d×d scatter and direct
distances, and a hand-computed NC1 it must not change; the blocked cross-entropy; and a
smoke run of bench/bench_metrics.py --quick."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncrepro.metrics import ClassStats, accuracy, collapse, cross_entropy, nc1, nc4
from ncrepro.metrics.compute import SplitData, split_rows
from ncrepro.metrics.stats import MeanSpan

ROOT = Path(__file__).resolve().parents[1]


def two_pass(h, y, k):
    """Per class: the mean in long double, then the centred scatter (float64 product)."""
    means, scatters, traces = np.zeros((k, h.shape[1])), [], np.zeros(k)
    for c in range(k):
        block = np.asarray(h[y == c], np.longdouble)
        if len(block) == 0:
            scatters.append(np.zeros((h.shape[1],) * 2))
            continue
        mean = block.mean(axis=0)
        centred = block - mean
        means[c], traces[c] = mean, np.sum(centred**2)
        scatters.append(centred.astype(np.float64).T @ centred.astype(np.float64))
    return means, np.array(scatters), traces


def assert_scatter_close(got, ref, rtol=1e-12):
    """|ΔS_ij| ≤ rtol·√(S_ii S_jj): relative to the entries' own scale."""
    diag = np.sqrt(np.maximum(np.diagonal(ref, axis1=-2, axis2=-1), 1e-300))
    scale = diag[..., :, None] * diag[..., None, :]
    assert np.all(np.abs(got - ref) <= rtol * scale + 1e-300)


CASES = [
    "float32_offset_multi_block",
    "float64_k100_unbalanced_absent",
    "collapsed_with_outlier_first",
    "float16_fortran_strided",
    "ill_conditioned_columns",
]


def features_case(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    if name == "float32_offset_multi_block":  # classes of ~2300 rows: several blocks each
        k, d, n = 3, 40, 7000
        y = rng.integers(0, k, n)
        h = (1e4 + rng.standard_normal((k, d))[y] + rng.standard_normal((n, d))).astype(np.float32)
    elif name == "float64_k100_unbalanced_absent":  # classes of 1 and 2 rows, class 7 absent
        k, d, n = 100, 300, 5000
        y = rng.choice(k, n, p=rng.dirichlet(np.full(k, 0.5)))
        y[y == 7] = 8
        y[np.isin(y, [11, 12])] = 13
        y[:3] = [11, 12, 12]
        h = 50 + 3 * rng.standard_normal((k, d))[y] + rng.standard_normal((n, d))
    elif name == "collapsed_with_outlier_first":  # shift from rows led by a far outlier
        k, d, n = 2, 8, 5000
        y = np.repeat([0, 1], n // 2)
        h = 30 + np.repeat(rng.standard_normal((2, d)), n // 2, axis=0)
        h += 1e-3 * rng.standard_normal((n, d))
        h[0] += 10
    elif name == "float16_fortran_strided":
        k, d, n = 5, 24, 1200
        y = rng.integers(0, k, n)
        h = np.asfortranarray((2 + rng.standard_normal((n, d))).astype(np.float16))[::2]
        y = y[::2]
    else:  # ill-conditioned columns: scales 1e-4 … 1e4
        k, d, n = 12, 60, 4000
        y = rng.integers(0, k, n)
        h = (rng.standard_normal((k, d))[y] + rng.standard_normal((n, d))) * np.geomspace(
            1e-4, 1e4, d
        )
    return h, y, k


@pytest.mark.parametrize("name", CASES)
def test_class_stats_one_pass_matches_per_class_two_pass(name):
    h, y, k = features_case(name)
    means, scatters, traces = two_pass(h, y, k)
    counts = np.bincount(y, minlength=k)
    spread = np.abs(means[counts > 0] - means[counts > 0].mean(axis=0)).max()
    spread = max(spread, np.sqrt(traces.max() / counts.max()))
    for scatter in ("pooled", "per_class", "none"):
        stats = ClassStats.from_features(h, y, k, scatter=scatter)
        np.testing.assert_array_equal(stats.counts, counts)
        assert np.abs(stats.means - means).max() <= 1e-12 * spread
        np.testing.assert_allclose(stats.class_traces, traces, rtol=1e-12, atol=1e-300)
        if scatter != "none":
            assert_scatter_close(stats.pooled_scatter, scatters.sum(axis=0))
        if scatter == "per_class":
            assert_scatter_close(stats.class_scatter, scatters)


def full_eigh_nc1(stats, global_mean="class_means", rtol=False):
    """NC1 the straightforward way: the d×d eigendecomposition of Σ_B."""
    k = stats.num_classes
    sw, sb = stats.within_class_cov(), stats.between_class_cov(global_mean)
    values, vectors = np.linalg.eigh((sb + sb.T) / 2)
    values, vectors = values[::-1][: min(k - 1, stats.dim)], vectors[:, ::-1][:, : k - 1]
    if rtol:
        keep = values > collapse.SB_PINV_RTOL * values[0]
        return np.trace(sw @ (vectors[:, keep] / values[keep]) @ vectors[:, keep].T) / k
    return np.sum(np.maximum(np.sum(vectors * (sw @ vectors), axis=0), 0) / values) / k


@pytest.mark.parametrize("k,d", [(2, 30), (10, 5), (10, 64), (100, 300), (40, 120)])
def test_between_class_eigenpairs_from_the_gram_match_the_full_eigendecomposition(k, d):
    rng = np.random.default_rng(k * d)
    y = rng.choice(k, 40 * k, p=rng.dirichlet(np.full(k, 3.0)))
    h = (
        7
        + rng.standard_normal((k, d))[y] * rng.uniform(0.5, 2, d)
        + rng.standard_normal((len(y), d))
    )
    stats = ClassStats.from_features(h, y, k)
    rank = min(k - 1, d)
    for global_mean in ("class_means", "samples"):
        values, vectors = stats.between_class_eigenpairs(rank, global_mean)
        sb = stats.between_class_cov(global_mean)
        ref_values, ref_vectors = np.linalg.eigh(sb)
        ref_values, ref_vectors = ref_values[::-1][:rank], ref_vectors[:, ::-1][:, :rank]
        np.testing.assert_allclose(values, ref_values, rtol=1e-12)
        # each eigenvector up to sign, and Σ_B v = λ v
        np.testing.assert_allclose(np.abs(np.sum(vectors * ref_vectors, axis=0)), 1, atol=1e-12)
        np.testing.assert_allclose(sb @ vectors, vectors * values, atol=1e-12 * values[0])
        assert nc1(stats, global_mean=global_mean) == pytest.approx(
            full_eigh_nc1(stats, global_mean), rel=1e-12
        )
        assert nc1(stats, global_mean=global_mean, sb_pinv="top_k_minus_1_rtol") == (
            pytest.approx(full_eigh_nc1(stats, global_mean, rtol=True), rel=1e-12)
        )


def test_nc1_of_nearly_dependent_class_means_matches_a_40_digit_reference():
    """λ_{K−1}/λ_1 ≈ 3e-7: below the Gram's cut-off, so the eigenpairs come from the SVD
    of the centred means; NC1 agrees with an mpmath computation on the same statistics
    to 1e-12 (the d×d eigendecomposition was 3e-11 off on such a case)."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    rng = np.random.default_rng(4)
    k, d = 8, 40
    u, _, vt = np.linalg.svd(rng.standard_normal((k, d)), full_matrices=False)
    means = 5 + (u * np.geomspace(1, 1e-5, k)) @ vt * 50
    y = rng.integers(0, k, 4000)
    stats = ClassStats.from_features(means[y] + 0.1 * rng.standard_normal((4000, d)), y, k)
    m = mp.matrix(stats.means.tolist())
    centre = [mp.fsum(m[i, j] for i in range(k)) / k for j in range(d)]
    centred = mp.matrix([[m[i, j] - centre[j] for j in range(d)] for i in range(k)])
    _, s, v = mp.svd_r(centred)
    sw = mp.matrix(stats.within_class_cov().tolist())
    ref = mp.fsum((v[r, :] * sw * v[r, :].T)[0] * k / s[r] ** 2 for r in range(k - 1)) / k
    values, _ = stats.between_class_eigenpairs(k - 1)
    assert values[-1] < 1e-6 * values[0]  # the SVD path
    assert nc1(stats) == pytest.approx(float(ref), rel=1e-12)


def test_nc4_float32_screening_equals_float64_nearest_means(monkeypatch):
    rng = np.random.default_rng(5)
    k, d, n = 10, 64, 3000
    centres = 1e3 + 3 * rng.standard_normal((k, d))
    y = rng.integers(0, k, n)
    h = (centres[y] + 4 * rng.standard_normal((n, d))).astype(np.float32)
    means = ClassStats.from_features(h, y, k).means
    # 100 points within 1e-2 of the bisector of means 0 and 1: ties for float32, not 64
    h[:100] = (means[0] + means[1]) / 2 + 1e-2 * rng.standard_normal((100, d))
    h64 = h.astype(np.float64)
    direct = np.argmin(np.sum((h64[:, None, :] - means[None]) ** 2, axis=2), axis=1)
    redone = []
    float64_path = collapse._nearest

    def counting(points, centres, *, distances=True):
        if points.dtype == np.float64:
            redone.append(len(points))
        return float64_path(points, centres, distances=distances)

    monkeypatch.setattr(collapse, "_nearest", counting)
    index, _ = float64_path(h, means, distances=False)
    np.testing.assert_array_equal(index, direct)
    assert 50 <= sum(redone) < 200  # the near-ties, and little else, went to float64
    logits = rng.standard_normal((n, k)).astype(np.float32)
    assert nc4(h, logits, means) == np.mean(np.argmax(logits, axis=1) != direct)


@pytest.mark.parametrize("name", CASES)
def test_mean_span_gives_the_d_by_d_nc1_and_the_direct_nearest_means(name):
    h, y, k = features_case(name)
    stats = ClassStats.from_features(h, y, k).present_only()
    span = MeanSpan.from_features(stats, h, y)
    r = min(stats.num_classes - 1, stats.dim)
    assert span.basis.shape == (stats.dim, r) and span.scatter.shape == (r, r)
    np.testing.assert_allclose(span.basis.T @ span.basis, np.eye(r), atol=1e-12)
    # vᵀ S_W v for vectors of the span: the d×d scatter's, to its own scale
    rng = np.random.default_rng(0)
    vectors = span.basis @ rng.standard_normal((r, 5))
    ref = np.sum(vectors * (stats.pooled_scatter @ vectors), axis=0)
    scale = np.linalg.norm(stats.pooled_scatter, 2) * np.sum(vectors**2, axis=0)
    assert np.all(np.abs(span.quadratic(vectors) - ref) <= 1e-12 * scale)
    for kw in ({}, {"global_mean": "samples"}, {"sb_pinv": "top_k_minus_1_rtol"}):
        assert nc1(stats, **kw, span=span) == pytest.approx(nc1(stats, **kw), rel=1e-12)
    h64 = np.asarray(h, np.float64)
    direct = np.argmin(((h64[:, None, :] - stats.means[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(span.nearest, direct)
    logits = rng.standard_normal((len(y), k))
    assert nc4(h, logits, stats.means, classes=stats.classes, nearest=span.nearest) == (
        nc4(h, logits, stats.means, classes=stats.classes)
    )


def test_mean_span_rejects_samples_other_than_the_statistics():
    h, y, k = features_case("float32_offset_multi_block")
    stats = ClassStats.from_features(h, y, k, scatter="none")
    with pytest.raises(ValueError, match="statistics"):
        MeanSpan.from_features(stats, h[:-1], y[:-1])
    relabelled = y.copy()
    relabelled[0] = (y[0] + 1) % k
    with pytest.raises(ValueError, match="class counts"):
        MeanSpan.from_features(stats, h, relabelled)
    absent = ClassStats.from_features(h[y != 2], y[y != 2], k, scatter="none")
    with pytest.raises(ValueError, match=r"classes \[2\]"):
        MeanSpan.from_features(absent, h[y != 2], y[y != 2])


def test_nc1_ignores_within_class_spread_off_the_span_of_the_means():
    """K = 3 means (3,0), (0,4), (−3,−4) (their mean is 0) embedded in d = 16; each class
    has the samples μ_c ± e with e = (1, 0, …, 0, 100 in coordinate 9).  Σ_W = eeᵀ and
    Σ_B = [[18, 12], [12, 32]]/3 on the plane, so NC1 = (1/3)·eᵀΣ_B⁻¹e = (1/3)·(3·32/432)
    = 2/27: the 100 off the plane must not count.  One network prediction in six is
    another class, so NC4 = 1/6 (the nearest mean of μ_c ± e is μ_c)."""
    means = np.zeros((3, 16))
    means[:, :2] = [[3, 0], [0, 4], [-3, -4]]
    e = np.zeros(16)
    e[0], e[9] = 1.0, 100.0
    h = np.concatenate([means + e, means - e])
    y = np.tile([0, 1, 2], 2)
    logits = np.eye(3)[[0, 1, 2, 0, 1, 0]]  # the last sample (class 2) predicted 0
    data = SplitData(h, y, logits)
    assert MeanSpan.pays_off(3, 16)
    for use_span in (True, False):
        stats = ClassStats.from_features(h, y, 3)
        span = MeanSpan.from_features(stats, h, y) if use_span else None
        assert nc1(stats, span=span) == pytest.approx(2 / 27, rel=1e-14)
        rows = {r["metric"]: r["value"] for r in split_rows("train", data, 3)}
        assert rows["nc1"] == pytest.approx(2 / 27, rel=1e-14)
        assert rows["nc4"] == pytest.approx(1 / 6)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"global_mean": "samples"},
        {"grouping": "predicted_labels"},
        {"only_present": True},
        {"sigma_w": "class_averaged"},
    ],
)
def test_split_rows_are_the_same_with_and_without_the_mean_span_pass(kw, monkeypatch):
    rng = np.random.default_rng(8)
    k, d, n = 6, 64, 3000
    centres = 20 + 3 * rng.standard_normal((k, d))
    y = rng.choice(k, n, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    if kw.get("only_present"):
        y[y == 4] = 5  # class 4 absent
    h = (centres[y] + 2 * rng.standard_normal((n, d))).astype(np.float32)
    w = (centres + 0.5 * rng.standard_normal((k, d))).astype(np.float32)
    b = (-0.5 * np.sum(w.astype(np.float64) ** 2, axis=1)).astype(np.float32)
    data = SplitData(h, y, None, w, b)  # a near-nearest-centre classifier: all predicted
    rows = {}
    for use_span in (True, False):
        monkeypatch.setattr(MeanSpan, "pays_off", staticmethod(lambda k, d, u=use_span: u))
        rows[use_span] = split_rows("train", data, k, **kw)
    assert [r["metric"] for r in rows[True]] == [r["metric"] for r in rows[False]]
    for a, b in zip(rows[True], rows[False], strict=True):
        assert a == {**b, "value": pytest.approx(b["value"], rel=1e-12)}


def test_blocked_cross_entropy_and_float32_accuracy_match_the_formula():
    from scipy.special import logsumexp

    rng = np.random.default_rng(6)
    z = (rng.standard_normal((10000, 7)) * 300).astype(np.float32)  # 3 blocks, exp overflows
    y = rng.integers(0, 7, 10000)
    z64 = z.astype(np.float64)
    expected = np.mean(logsumexp(z64, axis=1) - z64[np.arange(len(z)), y])
    assert cross_entropy(z, y) == pytest.approx(expected, rel=1e-12)
    assert accuracy(z, y) == np.mean(np.argmax(z64, axis=1) == y)


def test_bench_metrics_quick_prints_ratios_parts_and_growth():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_metrics.py"), "--quick", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert re.search(r"BLAS .*: 1 threads", out)
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s+\d+\s+\d+\s", line)]
    assert len(rows) == 4 + 3 + 3  # main configurations, growth in N, growth in d
    for row in rows:
        assert len(row) == 3 + 4 + 7 + 1  # N d K, floor suite ratio cpu, 7 parts, value err
        floor, suite, ratio = map(float, row[3:6])
        assert floor >= 0 and suite > 0 and np.isfinite(ratio) and ratio > 0
        assert float(row[-1]) <= 1e-12  # NC1 and NC4 equal the d×d computation's
    for title in ("main", "growth in N", "growth in d"):
        assert title in out
