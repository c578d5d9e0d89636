"""Simplex-ETF signatures of class means in any representation (Papyan, Han & Donoho
2020, Fig. 2-4; Wang & Palmer Fig. 3), and a metric set built on them.

With class means μ_k (k = 1..K) and their mean μ_G = (1/K) Σ_k μ_k, centred means
μ̃_k = μ_k − μ_G:

    norm_cv        std_k ‖μ̃_k‖ / mean_k ‖μ̃_k‖          (equal norms: 0)
    angle_std_deg  std over pairs k < k' of ∠(μ̃_k, μ̃_k') in degrees  (equal angles: 0)
    mean_cosine    mean over pairs k < k' of cos(μ̃_k, μ̃_k')  (simplex ETF: −1/(K−1))

Standard deviations are population ones (ddof 0), as in `ncrepro.metrics.collapse.nc2`;
`norm_cv` is nc2's "equinorm". All three are invariant to rotations, translations and a
common scale of the features, so they compare a 2048-d space with a K-dim projection.
"""

from __future__ import annotations

import numpy as np

from ncrepro.metrics.collapse import nc1
from ncrepro.metrics.stats import ClassStats

SIGNATURES = ("etf_norm_cv", "etf_angle_std_deg", "etf_mean_cosine")


def class_means(features, labels, num_classes: int) -> np.ndarray:
    """K×d float64 class means (every class must be present)."""
    stats = ClassStats.from_features(features, labels, num_classes, scatter="none")
    stats.require_all_present("class means")
    return stats.means


def etf_signatures(means) -> dict[str, float]:
    """norm_cv, angle_std_deg and mean_cosine of the K class means (module doc), and the
    simplex-ETF cosine −1/(K−1) they are compared with."""
    means = np.asarray(means, np.float64)
    k = len(means)
    if means.ndim != 2 or k < 2:
        raise ValueError(f"need K >= 2 class means as a K×d array, got shape {means.shape}")
    centred = means - means.mean(axis=0)
    norms = np.linalg.norm(centred, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = centred / norms[:, None]
        cos = np.clip((unit @ unit.T)[np.triu_indices(k, k=1)], -1.0, 1.0)
        norm_cv = norms.std() / norms.mean()
    angles = np.degrees(np.arccos(cos))
    return {
        "etf_norm_cv": float(norm_cv),
        "etf_angle_std_deg": float(angles.std()),
        "etf_mean_cosine": float(cos.mean()),
        "etf_cosine_target": -1.0 / (k - 1),
    }


def etf_metrics(train, test, num_classes: int, *, seed: int, representation: str = "features"):
    """A metric set (`ncrepro.studies.MetricSet`): NC1 (pooled Σ_W, Σ_B of the class
    means, `ncrepro.metrics.collapse.nc1`) and the ETF signatures of each split's
    features (feature-file mappings: `features`, `labels`). `seed` is unused (no
    randomness); `representation` names the features in the rows."""
    rows = []
    for split, data in (("train", train), ("test", test)):
        features, labels = np.asarray(data["features"]), np.asarray(data["labels"])
        stats = ClassStats.from_features(features, labels, num_classes, scatter="pooled")
        base = {"split": split, "representation": representation}
        rows.append({**base, "metric": "nc1", "value": float(nc1(stats))})
        signatures = etf_signatures(stats.means) if stats.counts.min() > 0 else {}
        for name in SIGNATURES:
            rows.append({**base, "metric": name, "value": signatures.get(name, float("nan"))})
    return rows
