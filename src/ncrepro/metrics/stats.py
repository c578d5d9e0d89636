"""Per-class sufficient statistics of penultimate features, streamable and mergeable.

All NC metrics here (Papyan, Han & Donoho 2020; Hui, Belkin & Nakkiran 2022 §3.1;
Galanti et al. 2022) depend on the features only through the per-class counts n_c,
means μ_c and centred scatters S_c = Σ_{i: y_i = c} (h_i − μ_c)(h_i − μ_c)ᵀ.
`ClassStats` holds these in float64.  Scatters are accumulated *centred*: each chunk is
centred on its own per-class mean (corrected two-pass), and chunks are combined with the
parallel-variance update of Chan, Golub & LeVeque (1979):

    n = n_a + n_b,  δ = μ_b − μ_a,  μ = μ_a + δ n_b / n,
    S = S_a + S_b + (n_a n_b / n) δ δᵀ,

so float32 features with a large common offset (ReLU features) lose no precision, and
streaming in chunks gives the one-shot result up to float64 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .conventions import check_choice

# `ClassStats.from_features` works on sub-blocks of _SUB_BYTES of float64 (they stay in
# the core's cache through cast, shift, sums and squares), at least _SHIFT_ROWS rows (the
# rows that fix a class's shift), gathered into blocks of at least _BLOCK_ROWS rows for
# syrk (each call reads and writes the d×d accumulator, so blocks must be tall).
_SUB_BYTES = 1 << 20
_SHIFT_ROWS = 64
_BLOCK_ROWS = 2048
# Smallest λ_rank/λ_1 for which `ClassStats.between_class_eigenpairs` trusts the Gram
# matrix's eigenvalues: their relative error is of order ε·λ_1/λ_rank (≤ 1e-12 then).
_GRAM_MIN_RATIO = 1e-3


def _add_gram(block: np.ndarray, acc: np.ndarray | None) -> None:
    """acc += blockᵀ block on the upper triangle of the Fortran-ordered d×d ``acc``, in
    place (BLAS syrk, which numpy cannot accumulate); nothing for acc None or no rows."""
    if acc is None or len(block) == 0:
        return
    from scipy.linalg import blas

    out = blas.dsyrk(1.0, block.T, beta=1.0, c=acc, overwrite_c=1)
    if not np.shares_memory(out, acc):
        acc[...] = out


def _symmetric(acc: np.ndarray) -> np.ndarray:
    """The symmetric (C-ordered) matrix whose upper triangle is that of the
    Fortran-ordered ``acc``; transposed tile by tile, so that each tile stays in cache."""
    lower = acc.T  # C-ordered view: the filled triangle is its lower one
    full = np.tril(lower)
    tile = 256
    for i in range(0, len(full), tile):
        rows = slice(i, i + tile)
        full[rows, rows] += np.tril(lower[rows, rows], -1).T
        for j in range(i + tile, len(full), tile):
            full[rows, j : j + tile] = lower[j : j + tile, rows].T
    return full


def _as_labels(labels, n: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if n and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    return labels


def _as_features(features) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be N×d, got shape {features.shape}")
    return features


@dataclass
class ClassStats:
    """Counts, means and centred within-class scatter per class, in float64.

    Attributes
    ----------
    counts : (K,) int64            n_c, counted from the data (absent classes have 0).
    means : (K, d) float64          μ_c (rows of absent classes are 0 and never used).
    class_traces : (K,) float64     tr S_c = Σ_{i in c} ‖h_i − μ_c‖².
    pooled_scatter : (d, d) | None  Σ_c S_c (kept unless scatter="none").
    class_scatter : (K, d, d) | None  S_c per class (kept only with scatter="per_class";
                                    needed for the class-averaged Σ_W; K·d²·8 bytes).
    classes : (K,) int64            original class ids of the rows (differs from
                                    arange(K) only after `present_only`).
    """

    counts: np.ndarray
    means: np.ndarray
    class_traces: np.ndarray
    pooled_scatter: np.ndarray | None = None
    class_scatter: np.ndarray | None = None
    classes: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        self.counts = np.asarray(self.counts, np.int64)
        if self.classes is None:
            self.classes = np.arange(len(self.counts))
        self.classes = np.asarray(self.classes, np.int64)

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, num_classes: int, dim: int, *, scatter: str = "pooled") -> ClassStats:
        """Statistics of zero samples (the neutral element of `merge`)."""
        check_choice("scatter", scatter)
        return cls(
            counts=np.zeros(num_classes, np.int64),
            means=np.zeros((num_classes, dim)),
            class_traces=np.zeros(num_classes),
            pooled_scatter=None if scatter == "none" else np.zeros((dim, dim)),
            class_scatter=np.zeros((num_classes, dim, dim)) if scatter == "per_class" else None,
        )

    @classmethod
    def from_features(
        cls, features, labels, num_classes: int, *, scatter: str = "pooled"
    ) -> ClassStats:
        """Statistics of one batch of features (N×d, any float dtype) with integer labels.

        One pass over the rows in label order, in cache-sized float64 blocks (no N×d
        float64 copy).  Each class is shifted by the mean a_c of its first B rows
        (B = min(n_c, max(64, 2¹⁷/d))), so a_c lies within √(S_c,jj / B) of μ_c in every
        coordinate, and with r_c the mean of h_i − a_c (the shifted-data algorithm)

            μ_c = a_c + r_c,   S_c = Σ_i (h_i − a_c)(h_i − a_c)ᵀ − n_c r_c r_cᵀ,

        which loses at most a factor 1 + n_c/B of precision to the subtraction, however
        large the common offset of the features.  The shifted rows go into Σ_c S_c with
        BLAS syrk on blocks of ≥ 2048 rows: the product a float64 XᵀX needs.
        scatter: "pooled" (default; Σ_W pooled), "per_class" (also class-averaged Σ_W),
        or "none" (traces only: variance ratios and CDNV).
        """
        features = _as_features(features)
        n, dim = features.shape
        labels = _as_labels(labels, n, num_classes)
        stats = cls.empty(num_classes, dim, scatter=scatter)
        if n == 0:
            return stats
        counts = np.bincount(labels, minlength=num_classes)
        order = np.argsort(labels, kind="stable")
        ends = np.cumsum(counts)
        sub = max(_SHIFT_ROWS, _SUB_BYTES // (8 * max(dim, 1)))
        buffer = np.empty((min(n, max(sub, _BLOCK_ROWS)), dim))
        gathered = np.empty((sub, dim), features.dtype)  # rows before the cast
        pooled = np.zeros((dim, dim), order="F") if scatter == "pooled" else None
        shifts = np.zeros((num_classes, dim))
        offsets = np.zeros((num_classes, dim))  # Σ_i (h_i − a_c)
        squares = np.zeros(num_classes)  # Σ_i ‖h_i − a_c‖²
        fill = 0
        for c in np.flatnonzero(counts):
            lo, hi = int(ends[c] - counts[c]), int(ends[c])
            for pos in range(lo, hi, sub):
                take = min(hi - pos, sub)
                if fill + take > len(buffer):
                    _add_gram(buffer[:fill], pooled)
                    fill = 0
                block = buffer[fill : fill + take]
                index = order[pos : pos + take]
                if features.dtype == np.float64:
                    np.take(features, index, axis=0, out=block, mode="clip")
                else:  # (take's out= must have the input's dtype)
                    np.copyto(block, np.take(features, index, 0, gathered[:take], "clip"))
                if pos == lo:
                    shifts[c] = block.mean(axis=0)
                block -= shifts[c]
                offsets[c] += block.sum(axis=0)
                squares[c] += np.einsum("ij,ij->", block, block)
                if scatter == "per_class":
                    _add_gram(block, stats.class_scatter[c].T)
                fill += take
        _add_gram(buffer[:fill], pooled)
        residual = offsets / np.maximum(counts, 1)[:, None]
        stats.means = shifts + residual
        stats.class_traces = np.maximum(squares - counts * np.sum(residual**2, axis=1), 0.0)
        if pooled is not None:
            stats.pooled_scatter = _symmetric(pooled) - (residual * counts[:, None]).T @ residual
        if scatter == "per_class":
            for c in np.flatnonzero(counts):
                upper = stats.class_scatter[c].T
                stats.class_scatter[c] = _symmetric(upper) - counts[c] * np.outer(
                    residual[c], residual[c]
                )
            stats.pooled_scatter = stats.class_scatter.sum(axis=0)
        stats.counts = counts.astype(np.int64)
        return stats

    @property
    def scatter_level(self) -> str:
        if self.class_scatter is not None:
            return "per_class"
        return "none" if self.pooled_scatter is None else "pooled"

    def merge(self, other: ClassStats) -> ClassStats:
        """Statistics of the union of two disjoint sets of samples (Chan et al. update)."""
        if self.means.shape != other.means.shape or not np.array_equal(self.classes, other.classes):
            raise ValueError("cannot merge ClassStats over different classes or dimensions")
        if self.scatter_level != other.scatter_level:
            raise ValueError(
                f"cannot merge scatter={self.scatter_level!r} with scatter={other.scatter_level!r}"
            )
        n_a = self.counts.astype(np.float64)
        n_b = other.counts.astype(np.float64)
        n = n_a + n_b
        safe = np.where(n > 0, n, 1.0)
        delta = other.means - self.means
        means = self.means + delta * (n_b / safe)[:, None]
        weight = n_a * n_b / safe  # 0 where either side has no samples of the class
        traces = self.class_traces + other.class_traces + weight * np.sum(delta**2, axis=1)
        pooled = class_scatter = None
        if self.pooled_scatter is not None:
            pooled = (
                self.pooled_scatter + other.pooled_scatter + (delta * weight[:, None]).T @ delta
            )
        if self.class_scatter is not None:
            outer = weight[:, None, None] * delta[:, :, None] * delta[:, None, :]
            class_scatter = self.class_scatter + other.class_scatter + outer
        return ClassStats(
            self.counts + other.counts, means, traces, pooled, class_scatter, self.classes.copy()
        )

    def update(self, features, labels) -> ClassStats:
        """Add a chunk of samples in place (labels are original class ids); returns self."""
        if not np.array_equal(self.classes, np.arange(self.num_classes)):
            raise ValueError("update a ClassStats before restricting it with present_only()")
        chunk = ClassStats.from_features(
            features, labels, self.num_classes, scatter=self.scatter_level
        )
        merged = self.merge(chunk)
        self.counts, self.means, self.class_traces = (
            merged.counts,
            merged.means,
            merged.class_traces,
        )
        self.pooled_scatter, self.class_scatter = merged.pooled_scatter, merged.class_scatter
        return self

    # ------------------------------------------------------------------ shape / presence
    @property
    def num_classes(self) -> int:
        return len(self.counts)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def sums(self) -> np.ndarray:
        """Per-class sums Σ_{i in c} h_i (K×d)."""
        return self.means * self.counts[:, None]

    @property
    def present(self) -> np.ndarray:
        """Boolean mask of the classes with at least one sample."""
        return self.counts > 0

    def require_all_present(self, what: str = "this metric") -> None:
        """Raise a ValueError naming the classes without samples, if any."""
        missing = self.classes[~self.present]
        if len(missing):
            raise ValueError(
                f"classes {missing.tolist()} have no samples in this split, but {what} needs "
                "every class; restrict to the present classes with ClassStats.present_only() "
                "(or only_present=True) if that is what you mean"
            )

    def present_only(self) -> ClassStats:
        """Statistics restricted to the classes with samples (K' = number present).

        `classes` keeps the original ids; metrics then use K' (e.g. NC1's K'−1 eigenpairs).
        """
        keep = self.present
        return ClassStats(
            self.counts[keep],
            self.means[keep],
            self.class_traces[keep],
            None if self.pooled_scatter is None else self.pooled_scatter.copy(),
            None if self.class_scatter is None else self.class_scatter[keep],
            self.classes[keep],
        )

    # ------------------------------------------------------------------ moments
    def global_mean(self, kind: str = "class_means") -> np.ndarray:
        """μ_G: "class_means" = (1/K) Σ_c μ_c (needs every class), or "samples" = (1/N) Σ_i h_i."""
        check_choice("global_mean", kind)
        if kind == "class_means":
            self.require_all_present("the mean of class means")
            return self.means.mean(axis=0)
        if self.total == 0:
            raise ValueError("no samples")
        return self.sums.sum(axis=0) / self.total

    def centred_means(self, global_mean: str = "class_means") -> np.ndarray:
        """Rows μ_c − μ_G (K×d), i.e. M̄ᵀ."""
        self.require_all_present("the centred class means")
        return self.means - self.global_mean(global_mean)

    def within_class_cov(self, kind: str = "pooled") -> np.ndarray:
        """Σ_W (d×d).

        "pooled" (Papyan et al. 2020): (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ = Σ_c S_c / N.
        "class_averaged": (1/K) Σ_c S_c / n_c, the mean of per-class covariances (needs
        scatter="per_class" and every class present).
        """
        check_choice("sigma_w", kind)
        if kind == "pooled":
            if self.pooled_scatter is None:
                raise ValueError('pooled Σ_W needs ClassStats built with scatter="pooled"')
            if self.total == 0:
                raise ValueError("no samples")
            return self.pooled_scatter / self.total
        if self.class_scatter is None:
            raise ValueError('class-averaged Σ_W needs ClassStats built with scatter="per_class"')
        self.require_all_present("the class-averaged Σ_W")
        return (self.class_scatter / self.counts[:, None, None]).mean(axis=0)

    def between_class_cov(self, global_mean: str = "class_means") -> np.ndarray:
        """Σ_B = (1/K) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ (d×d)."""
        centred = self.centred_means(global_mean)
        return centred.T @ centred / self.num_classes

    def between_class_eigenpairs(self, rank: int, global_mean: str = "class_means"):
        """The ``rank`` largest eigenpairs of Σ_B (eigenvalues descending, eigenvectors as
        the columns of a d×rank matrix) without the d×d matrix.

        Σ_B = M̄M̄ᵀ/K (M̄ = [μ_c − μ_G], d×K) has rank ≤ K, and the K×K Gram matrix
        G = M̄ᵀM̄/K has the same nonzero eigenvalues: G u = λu gives Σ_B v = λv with
        v = M̄u/√(Kλ).  O(K²d) instead of the O(d³) eigendecomposition.  The Gram's small
        eigenvalues carry an absolute error of order ε·λ_1, so when λ_rank < 1e-3·λ_1
        (`_GRAM_MIN_RATIO`) they come from the thin SVD of M̄ᵀ instead (λ = s²/K, relative
        error of order ε·s_1/s_k), also O(K²d).
        """
        centred = self.centred_means(global_mean)  # M̄ᵀ, K×d
        k = self.num_classes
        values, vectors = np.linalg.eigh(centred @ centred.T / k)
        values, vectors = values[::-1][:rank], vectors[:, ::-1][:, :rank]
        if rank and values[-1] > _GRAM_MIN_RATIO * values[0]:
            return values, centred.T @ (vectors / np.sqrt(k * values))
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        return singular[:rank] ** 2 / k, vt[:rank].T

    def class_variances(self) -> np.ndarray:
        """Var_c = E_{i in c} ‖h_i − μ_c‖² = tr S_c / n_c (K,)."""
        self.require_all_present("the per-class variances")
        return self.class_traces / self.counts


@dataclass
class MeanSpan:
    """A second pass over the samples of a `ClassStats`: their deviations from their
    class means in an orthonormal basis V (d×r) of the span of the centred class means.

    scatter = Vᵀ (Σ_c S_c) V (r×r) is all of the pooled within-class scatter that NC1
    reads (Tr(Σ_W Σ_B⁺) sees Σ_W only on the span of the centred means), at O(N·d·r)
    instead of the O(N·d²) of the d×d scatter; r = min(K − 1, d).
    nearest: each sample's nearest class mean (row of ``stats.means``: the NCC prediction
    of NC4), from the same coordinates.  With t the mean of the class means and
    m_k = μ_k − t (which lie in the span),

        ‖h − μ_k‖² − ‖h − t‖² = ‖m_k‖² − 2 (μ_y − t)·m_k − 2 (Vᵀ(h − μ_y))·(Vᵀ m_k),

    so the argmin over k needs the r coordinates only (ties: the first k, as np.argmin).
    """

    basis: np.ndarray
    scatter: np.ndarray
    nearest: np.ndarray

    @staticmethod
    def pays_off(num_classes: int, dim: int) -> bool:
        """Whether the O(N·d·r) pass beats the d×d scatter's O(N·d²/2) with a margin
        (r < d/4: the pass also forms the NCC scores, O(N·r·K))."""
        return 4 * (num_classes - 1) < dim

    @classmethod
    def from_features(cls, stats: ClassStats, features, labels) -> MeanSpan:
        """The pass over ``features`` (N×d) and ``labels`` (original class ids), the
        samples ``stats`` was built from (possibly restricted with `present_only`); every
        class of ``stats`` must have samples."""
        features = _as_features(features)
        n, dim = features.shape
        if dim != stats.dim or n != stats.total:
            raise ValueError(
                f"{features.shape} features, but the statistics are of "
                f"{stats.total} samples of dimension {stats.dim}"
            )
        stats.require_all_present("the span of the centred class means")
        row_of = np.full(int(stats.classes.max()) + 1, -1, np.int64)
        row_of[stats.classes] = np.arange(stats.num_classes)
        labels = _as_labels(labels, n, len(row_of))
        rows_of_labels = row_of[labels]
        counts = np.bincount(rows_of_labels[rows_of_labels >= 0], minlength=stats.num_classes)
        if (rows_of_labels < 0).any() or not np.array_equal(counts, stats.counts):
            raise ValueError("labels do not match the statistics' class counts")
        rank = min(stats.num_classes - 1, dim)
        basis = stats.between_class_eigenpairs(rank)[1]
        centred = stats.means - stats.means.mean(axis=0)  # m_k, K×d
        coords = basis.T @ centred.T  # Vᵀ m_k, r×K
        offsets = np.sum(centred**2, axis=1) - 2.0 * (centred @ centred.T)  # row c: y = c
        scatter = np.zeros((rank, rank))
        nearest = np.empty(n, np.int64)
        order = np.argsort(rows_of_labels, kind="stable")
        ends = np.cumsum(counts)
        sub = max(_SHIFT_ROWS, _SUB_BYTES // (8 * max(dim, 1)))
        block = np.empty((min(n, sub), dim))
        gathered = np.empty((min(n, sub), dim), features.dtype)
        for c in range(stats.num_classes):
            for pos in range(int(ends[c] - counts[c]), int(ends[c]), sub):
                index = order[pos : min(pos + sub, int(ends[c]))]
                rows = block[: len(index)]
                np.take(features, index, 0, gathered[: len(index)], "clip")
                np.subtract(gathered[: len(index)], stats.means[c], out=rows)
                y = rows @ basis
                scatter += y.T @ y
                scores = y @ coords
                scores *= -2.0
                scores += offsets[c]
                nearest[index] = np.argmin(scores, axis=1)
        return cls(basis, scatter, nearest)

    def quadratic(self, vectors) -> np.ndarray:
        """vᵀ (Σ_c S_c) v for each column v of ``vectors`` (d×m, vectors in the span)."""
        coords = self.basis.T @ np.asarray(vectors, np.float64)
        return np.sum(coords * (self.scatter @ coords), axis=0)
