"""Binarity of penultimate features (Sbailò & Ghiringhelli, "Latent Point Collapse ...",
Appendix D, Table 4, Fig. 4): does every dimension take (about) one of two values?

Per dimension j, the values z_{·j} are standardized (zero mean, unit variance) and a
two-component Gaussian mixture is fitted (scikit-learn, full EM from a k-means start, as
the authors' code `get_binarity_metrics`); then

- score_j: the mean log-likelihood per sample of the fit (eq. (11)); a unimodal Gaussian
  dimension gives −½ log(2πe) ≈ −1.419, two well-separated narrow peaks give more;
- peak_distance_j = |m₁ − m₂| / ((σ₁ + σ₂) / 2), the distance of the two means in units
  of the mean component std (eq. (13));
- std_j = (σ₁ + σ₂) / 2 (eq. (12)).

`binarity` returns these per dimension and their mean, min and population std over the
dimensions. `abs_cv` is Table 4's last column: std / mean of |z| over all entries (low
when every coordinate sits at ± one magnitude).
"""

from __future__ import annotations

import warnings

import numpy as np

from .conventions import declare_conventions


def _standardized_column(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return ((values - values.mean()) / (std if std > 0 else 1.0)).reshape(-1, 1)


def gmm_two_peaks(values, *, seed: int = 0) -> tuple[float, float, float]:
    """(score, peak distance, mean component std) of a 2-component GMM on the
    standardized 1-D `values`."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    x = _standardized_column(np.asarray(values, np.float64).ravel())
    gmm = GaussianMixture(n_components=2, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(x)
    means = gmm.means_.ravel()
    stds = np.sqrt(gmm.covariances_.ravel())
    mean_std = float(stds.mean())
    distance = float(abs(means[0] - means[1]) / mean_std) if mean_std > 0 else 0.0
    return float(gmm.score(x)), distance, mean_std


@declare_conventions(
    fixed={
        "binarity_standardize": "per_dimension",
        "gmm": "sklearn_full_kmeans_init",
        "binarity_std_ddof": 0,
    },
    rename={"seed": "gmm_seed"},
    record=("seed",),
)
def binarity(features, *, seed: int = 0) -> dict[str, object]:
    """Per-dimension GMM scores of N×d `features` and their summaries.

    Returns {"score", "peak_distance", "std"} (arrays of length d) and, for each of
    them, "<name>_mean", "<name>_min", "<name>_std" over the d dimensions. `seed` is
    the mixture's random_state (the LPC code leaves it unseeded)."""
    z = np.asarray(features, np.float64)
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"features must be N×d with N >= 2, got {z.shape}")
    per_dim = np.array([gmm_two_peaks(z[:, j], seed=seed) for j in range(z.shape[1])])
    out: dict[str, object] = {}
    for i, name in enumerate(("score", "peak_distance", "std")):
        values = per_dim[:, i]
        out[name] = values
        out[f"{name}_mean"] = float(values.mean())
        out[f"{name}_min"] = float(values.min())
        out[f"{name}_std"] = float(values.std())
    return out


@declare_conventions(fixed={"std_ddof": 0})
def abs_cv(features) -> float:
    """std / mean of |z| over all N·d entries (population std); NaN if all are 0."""
    a = np.abs(np.asarray(features, np.float64))
    mean = a.mean()
    return float(a.std() / mean) if mean > 0 else float("nan")
