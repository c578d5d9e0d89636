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

        Loops over classes only (one gather and one matrix product per class); each class
        block is converted to float64 and centred on its own mean with the corrected
        two-pass algorithm, so memory stays at one class block beyond the input.
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
        for c in np.flatnonzero(counts):
            block = np.asarray(features[order[ends[c] - counts[c] : ends[c]]], np.float64)
            mean = block.mean(axis=0)
            centred = block - mean
            correction = centred.mean(axis=0)  # corrected two-pass (Björck 1996)
            mean += correction
            centred -= correction
            stats.means[c] = mean
            stats.class_traces[c] = np.einsum("ij,ij->", centred, centred)
            if scatter != "none":
                block_scatter = centred.T @ centred
                stats.pooled_scatter += block_scatter
                if scatter == "per_class":
                    stats.class_scatter[c] = block_scatter
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

    def class_variances(self) -> np.ndarray:
        """Var_c = E_{i in c} ‖h_i − μ_c‖² = tr S_c / n_c (K,)."""
        self.require_all_present("the per-class variances")
        return self.class_traces / self.counts
