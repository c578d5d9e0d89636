"""Class separation and norm spread of penultimate features (Sbailò & Ghiringhelli, "Latent
Point Collapse ...", Sec. III.1 and Table 1; the definitions of the authors' code,
luigisbailo/lpc `lpc/metrics.py`).

- `class_separation_ratio`: per sample, the distance to the nearest other class mean
  over the distance to its own class mean, averaged over samples (paper eq. (8)).
- `norm_cv`: coefficient of variation (std / mean) of the feature norms ‖z‖ — over the
  samples (the code's `coeff_var_norm`, what Table 1 reports as the spread of the
  collapse points' distances from the origin) or over the class means ‖μ_c‖.

All in float64; distances are taken as ‖z − μ‖ of the differences (never from
‖z‖² − 2⟨z, μ⟩ + ‖μ‖², which cancels catastrophically exactly where the features
collapse onto their means). Each function has ``fn.conventions(**kwargs)`` (see
`ncrepro.metrics.conventions`).
"""

from __future__ import annotations

import numpy as np

from .conventions import declare_conventions

NORM_CV_OVER = ("samples", "class_means")


def _features_and_labels(features, labels) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(features, np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or y.shape != (len(z),):
        raise ValueError(f"features must be N×d and labels (N,), got {z.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    return z, y.astype(np.int64)


def class_means(features, labels) -> tuple[np.ndarray, np.ndarray]:
    """(classes present, sorted; their means K×d) in float64."""
    z, y = _features_and_labels(features, labels)
    classes = np.unique(y)
    return classes, np.stack([z[y == c].mean(0) for c in classes])


@declare_conventions(fixed={"separation_means": "same_split", "zero_own_distance": "inf"})
def class_separation_ratio(features, labels, *, chunk: int = 8192) -> float:
    """Mean over samples of r_i = min_{c ≠ y_i} ‖z_i − μ_c‖ / ‖z_i − μ_{y_i}‖.

    μ_c are the class means of these features grouped by `labels` (the classes present;
    pass true or predicted labels — the grouping is the caller's convention). Larger is
    better separated: r ≈ 1 for overlapping classes, r → ∞ as each class collapses
    onto its mean. A sample exactly at its class mean has r = inf (the LPC code writes 0
    there); NaN with fewer than two classes.
    """
    z, y = _features_and_labels(features, labels)
    classes, means = class_means(z, y)
    if len(classes) < 2:
        return float("nan")
    row = np.searchsorted(classes, y)
    ratios = np.empty(len(z))
    for start in range(0, len(z), chunk):
        part, own = z[start : start + chunk], row[start : start + chunk]
        dist = np.stack([np.linalg.norm(part - m, axis=1) for m in means], axis=1)
        idx = np.arange(len(part))
        d_own = dist[idx, own]
        dist[idx, own] = np.inf
        with np.errstate(divide="ignore"):
            ratios[start : start + chunk] = dist.min(1) / d_own
    return float(ratios.mean())


@declare_conventions(("over",), fixed={"std_ddof": 0})
def norm_cv(features, labels=None, *, over: str = "samples") -> float:
    """Coefficient of variation std / mean of the norms ‖z‖ (population std).

    over: "samples" (every ‖z_i‖: the LPC code's `coeff_var_norm`) or "class_means"
    (‖μ_c‖ of the class means, uncentred: the collapse points' distances from the
    origin; needs `labels`). 0 for points at equal distance from the origin.
    """
    if over not in NORM_CV_OVER:
        raise ValueError(f"over={over!r} is not one of {NORM_CV_OVER}")
    if over == "samples":
        z = np.asarray(features, np.float64)
        if z.ndim != 2:
            raise ValueError(f"features must be N×d, got {z.shape}")
    else:
        if labels is None:
            raise ValueError('norm_cv(over="class_means") needs the labels')
        z = class_means(features, labels)[1]
    norms = np.linalg.norm(z, axis=1)
    mean = norms.mean()
    return float(norms.std() / mean) if mean > 0 else float("nan")
