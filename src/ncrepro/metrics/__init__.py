"""Neural-collapse metrics, in float64, from per-class statistics.

Definitions follow Papyan, Han & Donoho (2020) and, for the variance ratios,
Hui, Belkin & Nakkiran (2022, section 3.1). Every convention that changes a number
is a keyword argument; `compute_all` records the conventions beside each value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClassStats:
    """Per-class counts, means and centred scatter (streamable, mergeable).

    scatter[c] = Σ_{i in c} (h_i − μ_c)(h_i − μ_c)ᵀ, accumulated with the parallel
    (Chan et al.) update so chunks with a large common offset lose no precision.
    """

    counts: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    scatter: np.ndarray  # (K, d, d)

    @classmethod
    def empty(cls, num_classes: int, dim: int) -> ClassStats:
        return cls(
            np.zeros(num_classes, np.int64),
            np.zeros((num_classes, dim)),
            np.zeros((num_classes, dim, dim)),
        )

    @classmethod
    def from_features(cls, features, labels, num_classes: int) -> ClassStats:
        features = np.asarray(features, dtype=np.float64)
        labels = np.asarray(labels)
        stats = cls.empty(num_classes, features.shape[1])
        counts = np.bincount(labels, minlength=num_classes)
        sums = np.zeros((num_classes, features.shape[1]))
        np.add.at(sums, labels, features)
        present = counts > 0
        stats.counts = counts.astype(np.int64)
        stats.means[present] = sums[present] / counts[present, None]
        centred = features - stats.means[labels]
        for c in np.flatnonzero(present):  # K matrix products, not a per-sample loop
            block = centred[labels == c]
            stats.scatter[c] = block.T @ block
        return stats

    def merge(self, other: ClassStats) -> ClassStats:
        n_a, n_b = self.counts[:, None], other.counts[:, None]
        n = n_a + n_b
        safe = np.where(n > 0, n, 1)
        delta = other.means - self.means
        means = self.means + delta * (n_b / safe)
        weight = (n_a * n_b / safe)[:, :, None]
        scatter = self.scatter + other.scatter + weight * delta[:, :, None] * delta[:, None, :]
        return ClassStats(self.counts + other.counts, means, scatter)

    @property
    def num_classes(self) -> int:
        return len(self.counts)

    def require_all_present(self) -> None:
        missing = np.flatnonzero(self.counts == 0)
        if len(missing):
            raise ValueError(f"classes {missing.tolist()} have no samples in this split")

    def global_mean(self, kind: str = "class_means") -> np.ndarray:
        """μ_G: mean of class means ("class_means") or of all samples ("samples")."""
        if kind == "class_means":
            return self.means.mean(axis=0)
        if kind == "samples":
            return (self.counts[:, None] * self.means).sum(0) / self.counts.sum()
        raise ValueError(f"unknown global mean convention {kind!r}")

    def within_class_cov(self, kind: str = "pooled") -> np.ndarray:
        """Σ_W: pooled (1/N)Σ_i(h_i−μ_y)(h_i−μ_y)ᵀ, or the mean of per-class covariances."""
        if kind == "pooled":
            return self.scatter.sum(0) / self.counts.sum()
        if kind == "class_averaged":
            return (self.scatter / self.counts[:, None, None]).mean(0)
        raise ValueError(f"unknown Σ_W convention {kind!r}")

    def between_class_cov(self, global_mean: str = "class_means") -> np.ndarray:
        """Σ_B = (1/K) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ."""
        centred = self.means - self.global_mean(global_mean)
        return centred.T @ centred / self.num_classes

    def class_variances(self) -> np.ndarray:
        """Var_c = E_{i in c} ‖h_i − μ_c‖² (trace of the per-class covariance)."""
        return np.trace(self.scatter, axis1=1, axis2=2) / self.counts


def variance_ratio(features, labels, num_classes: int, *, means=None) -> float:
    """E_i ‖h_i − μ_{y_i}‖² / E_c ‖μ_c − μ̄‖², μ̄ = mean of class means (Hui et al. §3.1).

    TrainVariance on train features, StrongTestVariance on test features. By default
    the class means come from the same features (same checkpoint); pass `means`
    (K×d) to use others, e.g. the final checkpoint's, the paper's literal reading.
    """
    stats = ClassStats.from_features(features, labels, num_classes)
    stats.require_all_present()
    if means is None:
        within = np.trace(stats.scatter.sum(0)) / stats.counts.sum()
        means = stats.means
    else:
        h = np.asarray(features, np.float64)
        means = np.asarray(means, np.float64)
        within = np.mean(np.sum((h - means[np.asarray(labels)]) ** 2, axis=1))
    between = np.mean(np.sum((means - means.mean(0)) ** 2, axis=1))
    return float(within / between)


def weak_test_variance(features, num_classes: int, *, seed: int = 0, n_init: int = 4) -> float:
    """Numerator: mean squared distance to the nearest of K k-means centroids; denominator:
    mean squared distance of the centroids to their mean (Hui et al. §3.1)."""
    from sklearn.cluster import KMeans

    h = np.asarray(features, np.float64)
    km = KMeans(n_clusters=num_classes, n_init=n_init, random_state=seed).fit(h)
    centres = km.cluster_centers_
    nearest = km.transform(h).min(1) ** 2  # squared distance to the nearest centroid
    between = np.mean(np.sum((centres - centres.mean(0)) ** 2, axis=1))
    return float(nearest.mean() / between)


def top_eig_pinv(matrix: np.ndarray, rank: int) -> np.ndarray:
    """Pseudo-inverse from exactly the top `rank` eigenpairs of the symmetrized matrix."""
    sym = (matrix + matrix.T) / 2
    values, vectors = np.linalg.eigh(sym)
    values, vectors = values[::-1][:rank], vectors[:, ::-1][:, :rank]
    return (vectors / values) @ vectors.T


def nc1(stats: ClassStats, *, sigma_w: str = "pooled", global_mean: str = "class_means") -> float:
    """NC1 = (1/K) Tr(Σ_W Σ_B⁺), Σ_B⁺ from the top K−1 eigenpairs (float64)."""
    stats.require_all_present()
    sb_pinv = top_eig_pinv(stats.between_class_cov(global_mean), stats.num_classes - 1)
    return float(np.trace(stats.within_class_cov(sigma_w) @ sb_pinv) / stats.num_classes)


def _cosines(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return (unit @ unit.T)[np.triu_indices(len(vectors), k=1)]


def nc2(vectors: np.ndarray) -> dict[str, float]:
    """NC2 of K vectors (rows; centred class means or classifier rows).

    equinorm = std/mean of the norms (population std, ddof=0); equiangularity = std of
    the pairwise cosines (c < c'); max_angle = mean |cos + 1/(K−1)| over pairs.
    """
    vectors = np.asarray(vectors, np.float64)
    k = len(vectors)
    norms = np.linalg.norm(vectors, axis=1)
    cos = _cosines(vectors)
    return {
        "equinorm": float(norms.std() / norms.mean()),
        "equiangularity": float(cos.std()),
        "max_angle": float(np.abs(cos + 1.0 / (k - 1)).mean()),
    }


def nc3(weight: np.ndarray, stats: ClassStats, *, global_mean: str = "class_means") -> float:
    """NC3 = ‖Wᵀ/‖W‖_F − M̄/‖M̄‖_F‖_F², M̄ = [μ_c − μ_G] (d×K), W is K×d."""
    m = (stats.means - stats.global_mean(global_mean)).T
    w = np.asarray(weight, np.float64).T
    return float(np.sum((w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2))


def nc4(features, logits, stats: ClassStats) -> float:
    """Fraction of samples whose network argmax (bias included) differs from the
    nearest-class-mean prediction."""
    h = np.asarray(features, np.float64)
    d2 = (h**2).sum(1)[:, None] - 2 * h @ stats.means.T + (stats.means**2).sum(1)[None]
    return float(np.mean(np.argmax(logits, 1) != np.argmin(d2, 1)))


def cdnv(stats: ClassStats) -> float:
    """Mean over pairs i<j of (Var_i + Var_j) / (2‖μ_i − μ_j‖²) (Galanti et al. 2022)."""
    stats.require_all_present()
    var = stats.class_variances()
    i, j = np.triu_indices(stats.num_classes, k=1)
    dist2 = np.sum((stats.means[i] - stats.means[j]) ** 2, axis=1)
    return float(np.mean((var[i] + var[j]) / (2 * dist2)))


def accuracy(logits, labels) -> float:
    return float(np.mean(np.argmax(logits, 1) == np.asarray(labels)))


def cross_entropy(logits, labels) -> float:
    z = np.asarray(logits, np.float64)
    z = z - z.max(1, keepdims=True)
    log_prob = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-np.mean(log_prob[np.arange(len(z)), np.asarray(labels)]))


DEFAULT_CONVENTIONS = {
    "means_at": "same_checkpoint",
    "global_mean": "class_means",
    "sigma_w": "pooled",
    "grouping": "true_labels",
    "nc1_pinv": "top_k_minus_1",
    "std_ddof": 0,
}


def compute_all(
    train: dict,
    test: dict,
    num_classes: int,
    *,
    kmeans_n_init: int = 4,
    seed: int = 0,
    sigma_w: str = "pooled",
    global_mean: str = "class_means",
):
    """Rows {split, metric, value, **conventions} for one checkpoint.

    `train`/`test`: dicts with features, labels, logits and optionally W (K×d), b.
    """
    conventions = {
        **DEFAULT_CONVENTIONS,
        "sigma_w": sigma_w,
        "global_mean": global_mean,
        "kmeans_n_init": kmeans_n_init,
    }
    rows = []

    def add(split, metric, value):
        rows.append({"split": split, "metric": metric, "value": float(value), **conventions})

    for split, data in (("train", train), ("test", test)):
        h, y = data["features"], data["labels"]
        stats = ClassStats.from_features(h, y, num_classes)
        ratio = variance_ratio(h, y, num_classes)
        add(split, "train_variance" if split == "train" else "strong_test_variance", ratio)
        if split == "test":
            add(
                split,
                "weak_test_variance",
                weak_test_variance(h, num_classes, seed=seed, n_init=kmeans_n_init),
            )
        add(split, "nc1", nc1(stats, sigma_w=sigma_w, global_mean=global_mean))
        centred = stats.means - stats.global_mean(global_mean)
        for name, value in nc2(centred).items():
            add(split, f"nc2_{name}", value)
        add(split, "cdnv", cdnv(stats))
        if "W" in data:
            add(split, "nc3", nc3(data["W"], stats, global_mean=global_mean))
            if split == "train":
                for name, value in nc2(data["W"]).items():
                    add(split, f"nc2_w_{name}", value)
        if "logits" in data:
            add(split, "nc4", nc4(h, data["logits"], stats))
            add(split, "accuracy", accuracy(data["logits"], y))
            add(split, "loss", cross_entropy(data["logits"], y))
    return rows
