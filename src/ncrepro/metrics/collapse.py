"""Neural-collapse metrics, float64, from per-class statistics.

Sources of the definitions:
  [P]  Papyan, Han & Donoho (2020), "Prevalence of neural collapse ...": NC1–NC4.
  [H]  Hui, Belkin & Nakkiran (2022), "Limitations of neural collapse ...", §3.1:
       TrainVariance, StrongTestVariance, WeakTestVariance.
  [G]  Galanti, György & Hutter (2022): class-distance normalized variance (CDNV).
  [M]  Massion, Makhlouf & Massart, "The role of class encoding in neural collapse"
       (unconstrained-features model with bias): uncentred NC3 (eq. (3)), NC3′ (eq. (12))
       and its scale κ (Theorem IV.4); ETF distance and within-class scatter of its code.

Every function returns a plain float (NC2: a dict of floats); the conventions that change
the number are keyword arguments, and ``fn.conventions(**kwargs)`` returns them as a dict.
A ratio whose denominator is exactly zero is NaN (0/0) or inf.
"""

from __future__ import annotations

import numpy as np

from .conventions import declare_conventions
from .stats import ClassStats, MeanSpan

_EPS = np.finfo(np.float64).eps


def _ratio(num: float, den: float) -> float:
    if den == 0:
        return float("nan") if num == 0 else float("inf")
    return float(num / den)


def _check_value(name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")


def _need_two_classes(k: int) -> None:
    if k < 2:
        raise ValueError(f"needs at least 2 classes, got {k}")


# `_nearest` works on row blocks of about _BLOCK_BYTES of float64, at least _BLOCK_ROWS
# rows: bounded memory, and few BLAS calls (a threaded BLAS synchronises its threads at
# every call, which costs much on a busy machine; one thread is as fast on 1 MiB).
_BLOCK_BYTES = 4 << 20
_BLOCK_ROWS = 256
_U32 = 2.0**-24  # unit roundoff of float32


def _block_rows(*widths: int) -> int:
    return max(_BLOCK_ROWS, _BLOCK_BYTES // (8 * max(*widths, 1)))


def _nearest(points, centres, *, distances: bool = True):
    """Index of the nearest centre and (if ``distances``) the exact squared distance to
    it, per point (points: N×d array, centres: K×d).

    Assignment from ‖c‖² − 2⟨h, c⟩ after shifting both sets by the mean centre (no ‖h‖²
    cancellation in the argmin); the distance itself is recomputed as ‖h − c‖² exactly.
    float32 points without distances take `_nearest_float32` (same assignment).
    """
    centres = np.asarray(centres, np.float64)
    if points.dtype == np.float32 and not distances and len(centres) > 1:
        return _nearest_float32(points, centres), None
    shift = centres.mean(axis=0)
    c = centres - shift
    c_norm2 = np.sum(c**2, axis=1)
    n, dim = points.shape
    index = np.empty(n, np.int64)
    dist2 = np.empty(n) if distances else None
    step = _block_rows(dim, len(c))
    block = np.empty((min(n, step), dim))
    for start in range(0, n, step):
        rows = slice(start, start + step)
        p = block[: len(points[rows])]
        np.copyto(p, points[rows])  # (a cast and a same-dtype subtraction beat a mixed one)
        p -= shift
        scores = p @ c.T
        scores *= -2.0
        scores += c_norm2
        nearest = np.argmin(scores, axis=1)
        index[rows] = nearest
        if distances:
            p -= c[nearest]
            dist2[rows] = np.einsum("ij,ij->i", p, p)
    return index, dist2


def _nearest_float32(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """`_nearest`'s assignment for float32 points from a float32 product (half the work
    of float64): a row keeps the float32 argmin where its best score leads the second by
    more than twice the rounding bound of the scores, and is recomputed in float64
    otherwise, so the result is float64's (bar float64 near-ties, rounding-level).

    Scores offset_c − 2⟨h, c⟩, c = μ_c − t, offset_c = ‖c‖² + 2⟨c, t⟩ (t the mean centre:
    ‖h − μ_c‖² − ‖h − t‖²).  Bounds (Higham 2002, §3.1): the float32 ⟨h, c⟩ errs by at most
    e‖h‖‖c‖, e = u + γ_d (1 + u) (γ_d = du/(1 − du); u for rounding c to float32); forming
    the score in float32 adds 2u(|offset| + 2|⟨h, c⟩|); the float64 inputs add O(dε)
    (c, offset: relative to ‖c‖(‖c‖ + 4‖t‖ + 2‖h‖)).
    """
    n, dim = points.shape
    shift = centres.mean(axis=0)
    c = centres - shift
    offset = np.sum(c**2, axis=1) + 2.0 * (c @ shift)
    c32, offset32 = c.T.astype(np.float32), offset.astype(np.float32)
    cmax, omax = np.sqrt(np.max(np.sum(c**2, axis=1))), np.abs(offset).max()
    gamma = dim * _U32 / (1 - dim * _U32)
    e = _U32 + gamma * (1 + _U32)
    eps64 = 8 * (dim + 2) * _EPS
    # a score errs by at most per_norm·‖h‖ + fixed; ‖h‖ ≤ √(float32 ‖h‖²/(1 − γ_d)) + 1 %
    # (the float32 norm's own rounding); decided iff the gap exceeds both scores' errors
    dots = cmax * (1 + e) * 1.01 / np.sqrt(1 - gamma)  # per unit float32 ‖h‖
    per_norm = 2 * (2 * e * dots + 4 * _U32 * dots + 2 * eps64 * dots)
    fixed = 2 * (2 * _U32 * omax + eps64 * cmax * (cmax + 4 * np.linalg.norm(shift)))
    index = np.empty(n, np.int64)
    undecided = [np.empty(0, np.int64)]
    step = _block_rows(dim, len(c))
    rows = np.arange(min(n, step))
    for start in range(0, n, step):
        h = points[start : start + step]
        scores = h @ c32
        scores *= -2.0
        scores += offset32
        best = np.argmin(scores, axis=1)
        here = rows[: len(h)]
        lead = scores[here, best]
        scores[here, best] = np.inf
        gap = scores.min(axis=1).astype(np.float64) - lead
        bound = np.sqrt(np.einsum("ij,ij->i", h, h)) * per_norm + fixed
        index[start : start + step] = best
        undecided.append(start + np.flatnonzero(~(gap > bound)))  # NaN: undecided
    undecided = np.concatenate(undecided)
    if len(undecided):
        redo = points[undecided].astype(np.float64)
        index[undecided] = _nearest(redo, centres, distances=False)[0]
    return index


# --------------------------------------------------------------------------- [H] §3.1


def _resolve_means_from(centers, means_from: str | None) -> str:
    if centers is None:
        if means_from not in (None, "same_checkpoint"):
            raise ValueError(f"means_from={means_from!r} needs the external centers= as well")
        return "same_checkpoint"
    return means_from or "external"


def _means_from_convention(kwargs: dict) -> dict:
    return {"means_from": _resolve_means_from(kwargs.get("centers"), kwargs.get("means_from"))}


@declare_conventions(
    ("only_present",), fixed={"global_mean": "class_means"}, derive=_means_from_convention
)
def variance_ratio_from_stats(
    stats: ClassStats, centers=None, *, means_from: str | None = None, only_present: bool = False
) -> float:
    """E_i ‖h_i − μ_{y_i}‖² / E_c ‖μ_c − μ̄‖², μ̄ = (1/K) Σ_c μ_c  ([H] §3.1).

    Computed from the statistics: Σ_c [tr S_c + n_c ‖μ̂_c − μ_c‖²] / N over the
    denominator, where μ̂_c are the data's own class means and μ_c the centres used.

    centers: None (default; means_from="same_checkpoint"): the centres are the class
        means of the same features (the usual reading: numerator and means at the same
        checkpoint t).  Or a K×d array indexed by class id, e.g. the final checkpoint's
        class means (the paper's literal μ̂_i at time T); name its origin in
        ``means_from`` (default label "external").  With external centres, classes absent
        from the data only drop out of the numerator.
    only_present: restrict to the classes present in the data (default False: a class
        without samples raises ValueError when its mean is needed).
    """
    if only_present:
        stats = stats.present_only()
    _resolve_means_from(centers, means_from)
    _need_two_classes(stats.num_classes)
    if stats.total == 0:
        raise ValueError("no samples")
    if centers is None:
        stats.require_all_present("the variance ratio with same-checkpoint means")
        centres = stats.means
        within = stats.class_traces.sum() / stats.total
    else:
        centres = np.asarray(centers, np.float64)[stats.classes]
        if centres.shape != stats.means.shape:
            raise ValueError(f"centers must be K×d with d={stats.dim}, got {centres.shape}")
        shift = np.sum((stats.means - centres) ** 2, axis=1)
        within = np.sum(stats.class_traces + stats.counts * shift) / stats.total
    between = np.mean(np.sum((centres - centres.mean(axis=0)) ** 2, axis=1))
    return _ratio(within, between)


@declare_conventions(
    ("only_present",), fixed={"global_mean": "class_means"}, derive=_means_from_convention
)
def variance_ratio(
    features,
    labels,
    num_classes: int,
    centers=None,
    *,
    means_from: str | None = None,
    only_present: bool = False,
) -> float:
    """TrainVariance (train features) / StrongTestVariance (test features) of [H] §3.1:

        E_{(x,y)} ‖h(x) − μ_y‖² / E_i ‖μ_i − μ̄‖²,   μ̄ = Σ_i μ_i / K.

    See `variance_ratio_from_stats` for ``centers``, ``means_from`` and ``only_present``.
    """
    stats = ClassStats.from_features(features, labels, num_classes, scatter="none")
    return variance_ratio_from_stats(
        stats, centers, means_from=means_from, only_present=only_present
    )


@declare_conventions(
    ("seed", "n_init"),
    rename={"seed": "kmeans_seed", "n_init": "kmeans_n_init"},
    fixed={"kmeans": "sklearn_lloyd_kmeans++", "global_mean": "class_means"},
)
def weak_test_variance(features, num_classes: int, *, seed: int, n_init: int) -> float:
    """WeakTestVariance of [H] §3.1.

    {μ̃_i} are the K centroids of k-means (scikit-learn KMeans, k-means++ init, Lloyd,
    ``random_state=seed``, best of ``n_init`` runs) on the features; μ̃ = Σ_i μ̃_i / K.

        E_x min_i ‖h(x) − μ̃_i‖² / E_i ‖μ̃_i − μ̃‖²

    (the paper's formula writes argmin; the squared distance to the nearest centroid is
    meant).  Labels are not used.
    """
    from sklearn.cluster import KMeans

    h = np.asarray(features, np.float64)  # KMeans keeps float32 input in float32
    _need_two_classes(num_classes)
    km = KMeans(
        n_clusters=num_classes,
        init="k-means++",
        n_init=n_init,
        random_state=seed,
        algorithm="lloyd",
    ).fit(h)
    centres = km.cluster_centers_
    _, dist2 = _nearest(h, centres)
    between = np.mean(np.sum((centres - centres.mean(axis=0)) ** 2, axis=1))
    return _ratio(dist2.mean(), between)


# --------------------------------------------------------------------------- [P] NC1


def top_eigenpairs(matrix, rank: int):
    """The ``rank`` largest eigenpairs of the symmetrized matrix (float64, np.linalg.eigh),
    eigenvalues in descending order."""
    m = np.asarray(matrix, np.float64)
    values, vectors = np.linalg.eigh((m + m.T) / 2)
    return values[::-1][:rank], vectors[:, ::-1][:, :rank]


def top_eig_pinv(matrix, rank: int, *, rtol: float | None = None) -> np.ndarray:
    """Pseudo-inverse built from exactly the top ``rank`` eigenpairs: V Λ⁻¹ Vᵀ.

    For Σ_B (rank ≤ K−1) with rank = K−1 this inverts only the between-class subspace;
    a default-tolerance ``pinv`` also inverts the d−K+1 noise eigenvalues of a Σ_B
    computed in float32, which can make Tr(Σ_W Σ_B⁺) huge or negative.

    rtol: None (default) uses all ``rank`` eigenpairs and raises if λ_rank ≤ 0.  A number
    keeps, among the top ``rank``, only the eigenpairs with λ > rtol·λ_1 (a truncated
    pseudo-inverse, defined for a matrix of lower rank); raises only if λ_1 ≤ 0.
    """
    values, vectors = top_eigenpairs(matrix, rank)
    if rtol is not None:
        if values.size == 0 or values[0] <= 0:
            raise ValueError("the largest eigenvalue is <= 0: nothing to invert")
        keep = values > rtol * values[0]
        return (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    if values[-1] <= 0:
        raise ValueError(f"eigenvalue {rank} is {values[-1]:.3g} <= 0: matrix rank < {rank}")
    return (vectors / values) @ vectors.T


# Σ_B⁺ conventions of NC1 (the first is the default).
SB_PINV = ("top_k_minus_1", "top_k_minus_1_rtol")
# Relative eigenvalue cut-off of sb_pinv="top_k_minus_1_rtol".
SB_PINV_RTOL = 1e-12


def _sb_pinv_convention(kwargs: dict) -> dict:
    _check_value("sb_pinv", kwargs.get("sb_pinv", SB_PINV[0]), SB_PINV)
    return {}


@declare_conventions(("sigma_w", "global_mean", "sb_pinv"), derive=_sb_pinv_convention)
def nc1(
    stats: ClassStats,
    *,
    sigma_w: str = "pooled",
    global_mean: str = "class_means",
    sb_pinv: str = "top_k_minus_1",
    span: MeanSpan | None = None,
) -> float:
    """NC1 = (1/K) Tr(Σ_W Σ_B⁺)  ([P] Fig. 6).

    sb_pinv="top_k_minus_1" (default): Σ_B⁺ from exactly the top K−1 eigenpairs
    (min(K−1, d) if d < K−1) of the float64 Σ_B, taken from the K×K Gram matrix of the
    centred means, or their thin SVD when ill-conditioned
    (`ClassStats.between_class_eigenpairs`: the eigenpairs of the d×d eigendecomposition
    at O(K²d)): Tr(Σ_W Σ_B⁺) = Σ_k v_kᵀ Σ_W v_k / λ_k, each term ≥ 0, so NC1 ≥ 0.
    (Rounding can make v_kᵀ Σ_W v_k = −O(ε‖Σ_W‖); such terms are clipped to 0.)
    NaN if the class means are (numerically) affinely dependent: λ_{K−1} ≤ max(K, d)·ε·λ_1.

    sb_pinv="top_k_minus_1_rtol" (the UFM code, ``ncrepro.ufm.nc1``): of the same top
    K−1 eigenpairs keep those with λ > 1e-12·λ_1 (`SB_PINV_RTOL`), so class means of
    affine rank < K−1 give a finite NC1 on their own span; NaN only if Σ_B = 0.
    The sum over the kept pairs is unclipped (−O(ε) possible at exact collapse).  Equal
    to the default up to rounding when λ_{K−1} is well above the cut-off.

    sigma_w: "pooled" (default, [P]) or "class_averaged"; global_mean: μ_G for Σ_B,
    "class_means" (default) or "samples" (μ_s = Σ_c n_c μ_c / N); either way Σ_B has
    rank ≤ K−1 (Σ_c n_c (μ_c − μ_s) = 0), and its top K−1 eigenvectors span the
    differences of the class means.

    span: the samples' `MeanSpan` (pooled Σ_W only): v_kᵀ Σ_W v_k from the within-class
    scatter on the span of the centred means, so ``stats`` needs no d×d scatter; equal
    to the pooled computation up to rounding.
    """
    _check_value("sb_pinv", sb_pinv, SB_PINV)
    k = stats.num_classes
    _need_two_classes(k)
    stats.require_all_present("NC1")
    values, vectors = stats.between_class_eigenpairs(min(k - 1, stats.dim), global_mean)
    # Tr(Σ_W Σ_B⁺) = Σ_k v_kᵀ Σ_W v_k / λ_k: d×K work, never a d×d product
    if span is not None and sigma_w == "pooled":
        quad = span.quadratic(vectors) / stats.total
    else:
        quad = np.sum(vectors * (stats.within_class_cov(sigma_w) @ vectors), axis=0)
    if sb_pinv == "top_k_minus_1_rtol":
        if values.size == 0 or values[0] <= 0:  # Σ_B = 0: no between-class spread
            return float("nan")
        keep = values > SB_PINV_RTOL * values[0]
        return float(np.sum(quad[keep] / values[keep]) / k)
    if values[0] <= 0 or values[-1] <= max(k, stats.dim) * _EPS * values[0]:
        return float("nan")
    return float(np.sum(np.maximum(quad, 0.0) / values) / k)


# --------------------------------------------------------------------------- [P] NC2, NC3


# How NC2 evaluates the pairwise cosines (the first is the default); see `nc2`.
NC2_COSINES = ("unit_rows", "gram")


def _nc2_of_rows(vectors: np.ndarray, cosines: str = "unit_rows") -> dict[str, float]:
    _check_value("cosines", cosines, NC2_COSINES)
    vectors = np.asarray(vectors, np.float64)
    k = len(vectors)
    _need_two_classes(k)
    norms = np.linalg.norm(vectors, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if cosines == "unit_rows":
            unit = vectors / norms[:, None]
            cos = (unit @ unit.T)[np.triu_indices(k, k=1)]
        else:
            cos = ((vectors @ vectors.T) / np.outer(norms, norms))[~np.eye(k, dtype=bool)]
        equinorm = norms.std() / norms.mean()
    return {
        "equinorm": float(equinorm),
        "equiangularity": float(cos.std()),
        "max_angle": float(np.mean(np.abs(cos + 1.0 / (k - 1)))),
    }


def _nc2_cosines_convention(kwargs: dict) -> dict:
    cosines = kwargs.get("cosines", NC2_COSINES[0])
    _check_value("cosines", cosines, NC2_COSINES)
    return {} if cosines == NC2_COSINES[0] else {"nc2_cosines": cosines}


@declare_conventions(fixed={"std_ddof": 0}, derive=_nc2_cosines_convention)
def nc2(means, global_mean, *, cosines: str = "unit_rows") -> dict[str, float]:
    """NC2 of the centred class means μ̃_c = μ_c − μ_G ([P] Figs. 2–5):

    equinorm       = std_c ‖μ̃_c‖ / mean_c ‖μ̃_c‖            (population std, ddof=0)
    equiangularity = std over pairs c < c′ of cos(μ̃_c, μ̃_c′)  (population std, ddof=0)
    max_angle      = mean over c ≠ c′ of |cos(μ̃_c, μ̃_c′) + 1/(K−1)|

    means: K×d; global_mean: the d-vector μ_G (e.g. ``stats.global_mean("class_means")``).
    All three are 0 for a simplex equiangular tight frame; see `etf_distance` for a
    distance of the whole Gram matrix to the simplex ETF.

    cosines: how the cosines are evaluated — "unit_rows" (default: products of the
    normalised rows, pairs c < c′) or "gram" (M̄ᵀM̄ / (‖μ̃_c‖ ‖μ̃_c′‖) over all ordered
    pairs c ≠ c′, each pair twice; the UFM code, ``ncrepro.ufm.nc2``).  The two give the
    same numbers up to rounding; "gram" is recorded as ``nc2_cosines`` (the default is not
    recorded, so the default rows keep their columns).
    """
    means = np.asarray(means, np.float64)
    return _nc2_of_rows(means - np.asarray(global_mean, np.float64), cosines)


@declare_conventions(fixed={"etf_distance": "frobenius_normalised_gram"})
def etf_distance(means, global_mean) -> float:
    """Distance of the centred class means' Gram matrix to the simplex ETF's:

        ‖ G/‖G‖_F − (I − J)/‖I − J‖_F ‖_F,   G = M̄ᵀM̄ (K×K), J = 11ᵀ/K,

    with M̄ = [μ_c − μ_G] (d×K).  Invariant to rotations and scale of the means; 0 iff the
    centred means form a simplex ETF (equal norms, cosines −1/(K−1)); in [0, √2] (both
    normalised matrices are positive semi-definite).  Centred means forming an orthogonal
    frame of equal norms (G = r²I) give √(2 − 2√((K−1)/K)).
    NaN if every centred mean is 0.  means: K×d; global_mean: d-vector.
    """
    centred = np.asarray(means, np.float64) - np.asarray(global_mean, np.float64)
    k = len(centred)
    _need_two_classes(k)
    gram = centred @ centred.T
    norm = np.linalg.norm(gram)
    if norm == 0:
        return float("nan")
    etf = np.eye(k) - np.full((k, k), 1.0 / k)
    return float(np.linalg.norm(gram / norm - etf / np.linalg.norm(etf)))


@declare_conventions(fixed={"std_ddof": 0})
def nc2_weights(weight) -> dict[str, float]:
    """NC2 of the classifier rows w_c (K×d), uncentred, as in [P]; see `nc2`."""
    return _nc2_of_rows(weight)


@declare_conventions(("centred",), rename={"centred": "nc3_centred"})
def nc3(weight, means, global_mean=None, *, centred: bool = True) -> float:
    """NC3 (self-duality, [P] Fig. 7) = ‖Wᵀ/‖W‖_F − M̄/‖M̄‖_F‖_F², M̄ = [μ_c − μ_G] (d×K).

    weight: the classifier W (K×d); means: K×d; global_mean: d-vector.  In [0, 4];
    0 iff W = c·M̄ᵀ with c > 0.  NaN if W = 0 or M̄ = 0.

    centred=False: the uncentred NC3 with M̄ = [μ_c] (no global_mean; [M] eq. (3):
    Wᵀ = κ H̄ at the UFM optimum).  Recorded as ``nc3_centred``.
    """
    w = np.asarray(weight, np.float64)
    if centred == (global_mean is None):
        raise ValueError("pass global_mean for the centred NC3 and none with centred=False")
    m = np.asarray(means, np.float64)
    if centred:
        m = m - np.asarray(global_mean, np.float64)  # M̄ᵀ, K×d
    if w.shape != m.shape:
        raise ValueError(f"W is {w.shape} but the class means are {m.shape}")
    nw, nm = np.linalg.norm(w), np.linalg.norm(m)
    if nw == 0 or nm == 0:
        return float("nan")
    # summed in the d×K orientation of the definition (Wᵀ, M̄)
    return float(np.sum((w.T / nw - m.T / nm) ** 2))


@declare_conventions(fixed={"nc3_prime_means": "uncentred"})
def nc3_prime(weight, means) -> float:
    """NC3′ ([M] eq. (12)) = ‖ WᵀW/‖WᵀW‖_F − H̄H̄ᵀ/‖H̄H̄ᵀ‖_F ‖_F, H̄ = [μ_c] (d×K, uncentred).

    0 iff Wᵀ = κ H̄ Qᵀ for some κ > 0 and orthogonal Q (K×K), i.e. self-duality up to a
    rotation of the classes; [M] Theorem IV.4: 0 at the UFM optimum for balanced classes
    whatever the label encoding.  In [0, √2].  NaN if W = 0 or all means are 0.
    weight: W (K×d); means: K×d.
    """
    w, m = np.asarray(weight, np.float64), np.asarray(means, np.float64)
    if w.shape != m.shape:
        raise ValueError(f"W is {w.shape} but the class means are {m.shape}")
    a, b = w.T @ w, m.T @ m
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.linalg.norm(a / na - b / nb))


@declare_conventions(fixed={"nc3_prime_means": "uncentred", "kappa_fit": "least_squares"})
def nc3_prime_scale(weight, means) -> float:
    """κ of NC3′: the least-squares κ ≥ 0 in WᵀW = κ² H̄H̄ᵀ (H̄ = [μ_c], d×K, uncentred),

        κ² = ⟨WᵀW, H̄H̄ᵀ⟩_F / ‖H̄H̄ᵀ‖_F²

    ([M] Theorem IV.4: κ = √(λ_H n / λ_W) for balanced classes).  NaN if the means are all
    0 or the fitted κ² < 0.  weight: W (K×d); means: K×d.
    """
    w, m = np.asarray(weight, np.float64), np.asarray(means, np.float64)
    if w.shape != m.shape:
        raise ValueError(f"W is {w.shape} but the class means are {m.shape}")
    a, b = w.T @ w, m.T @ m
    nb2 = float(np.sum(b * b))
    if nb2 == 0:
        return float("nan")
    k2 = float(np.sum(a * b)) / nb2
    return float(np.sqrt(k2)) if k2 >= 0 else float("nan")


# --------------------------------------------------------------------------- within-class


@declare_conventions(("relative",))
def within_class_scatter(features, labels, means, *, relative: bool = True) -> float:
    """Within-class scatter about given class means ([M] Theorem IV.1: exactly 0).

    relative=True (default): ‖H − H̄C‖_F / ‖H‖_F = √(Σ_i ‖h_i − μ_{y_i}‖² / Σ_i ‖h_i‖²),
    the deviations relative to the features' size about the origin (NaN if all h_i = 0).
    relative=False: tr Σ_W = (1/N) Σ_i ‖h_i − μ_{y_i}‖² (pooled, as in `nc1`).

    features: N×d; labels: (N,) class ids indexing the rows of means (K×d, e.g.
    ``stats.means``).  Classes without samples are not used.
    """
    h = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    # the deviations as the C-ordered d×N matrix H − H̄C of the definition (fixes the
    # order of the sums below whatever the memory layout of the inputs)
    dev = np.subtract(h.T, np.asarray(means, np.float64).T[:, labels], order="C")
    if not relative:
        return float(np.sum(dev * dev) / h.shape[0])
    norm = np.linalg.norm(h)
    return float(np.linalg.norm(dev) / norm) if norm > 0 else float("nan")


# --------------------------------------------------------------------------- [P] NC4


@declare_conventions(fixed={"nc4_network": "argmax_logits"})
def nc4(features, logits, means, *, classes=None, nearest=None) -> float:
    """NC4 ([P] Fig. 8): fraction of samples where the network's prediction
    argmax_c logits (bias included: pass the network's own logits) differs from the
    nearest-class-mean prediction argmin_c ‖h − μ_c‖².

    means: K×d class means; classes: the class ids of their rows (default 0..K−1; pass
    ``stats.classes`` after `ClassStats.present_only`).  Labels are not needed.
    nearest: the nearest mean's row per sample if already known (`MeanSpan.nearest`);
    the features are then not read.
    """
    logits = np.asarray(logits)
    means = np.asarray(means, np.float64)
    classes = np.arange(len(means)) if classes is None else np.asarray(classes)
    if len(logits) != len(features):
        raise ValueError(f"{len(features)} features but {len(logits)} logits")
    if len(logits) == 0:
        raise ValueError("no samples")
    if nearest is None:
        nearest, _ = _nearest(np.asarray(features), means, distances=False)
    return float(np.mean(np.argmax(logits, axis=1) != classes[nearest]))


# --------------------------------------------------------------------------- [G] CDNV


@declare_conventions(fixed={"cdnv_distance": "squared", "cdnv_pairs": "mean_i<j"})
def cdnv(stats: ClassStats) -> float:
    """Class-distance normalized variance [G], averaged over unordered pairs i < j:

        V(i, j) = (Var_i + Var_j) / (2 ‖μ_i − μ_j‖²),   Var_c = E_{h in c} ‖h − μ_c‖².

    (Squared distance in the denominator, not the fourth power.)
    """
    k = stats.num_classes
    _need_two_classes(k)
    var = stats.class_variances()
    i, j = np.triu_indices(k, k=1)
    # row by row (the order of triu_indices): no K²/2 × d temporary
    means = stats.means
    dist2 = np.concatenate([np.sum((means[a + 1 :] - means[a]) ** 2, axis=1) for a in range(k - 1)])
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean((var[i] + var[j]) / (2.0 * dist2)))
