"""Differential entropy of a feature distribution by the Kozachenko-Leonenko k-nearest-
neighbour estimator (Kozachenko & Leonenko 1987; Kraskov, Stögbauer & Grassberger 2004,
eq. (20)), as the LPC paper (Sbailò & Ghiringhelli, Table 1) uses it:

    H = ψ(N) − ψ(k) + log V_d + (d / N) Σ_i log ε_i      (nats)

with ε_i the Euclidean distance from z_i to its k-th nearest neighbour among the other
N − 1 points and V_d = π^{d/2} / Γ(d/2 + 1) the volume of the unit d-ball.

The LPC code (luigisbailo/lpc `get_entropy`) standardizes every dimension first
(StandardScaler: zero mean, unit variance; constant dimensions left unscaled), uses
k = 20, adds 1e-10 to every ε_i (so duplicate points give a finite value) and divides
by d; these are the defaults here and each is a recorded convention.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma, gammaln

from .conventions import declare_conventions


def log_unit_ball_volume(d: int) -> float:
    """log V_d, V_d = π^{d/2} / Γ(d/2 + 1)."""
    return 0.5 * d * math.log(math.pi) - float(gammaln(0.5 * d + 1.0))


def standardize_columns(features) -> np.ndarray:
    """Every column to zero mean and unit (population) variance; constant columns are
    only centred (as scikit-learn's StandardScaler)."""
    z = np.asarray(features, np.float64)
    std = z.std(0)
    return (z - z.mean(0)) / np.where(std > 0, std, 1.0)


def kth_neighbour_distances(points, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour among the others."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k).fit(points)
    distances, _ = nn.kneighbors()  # without X: each point's neighbours exclude itself
    return distances[:, -1]


@declare_conventions(
    ("k", "standardize", "per_dimension", "epsilon"),
    rename={
        "k": "entropy_k",
        "standardize": "entropy_standardize",
        "per_dimension": "entropy_per_dimension",
        "epsilon": "entropy_epsilon",
    },
)
def kozachenko_leonenko(
    features,
    *,
    k: int = 20,
    standardize: bool = True,
    per_dimension: bool = True,
    epsilon: float = 1e-10,
) -> float:
    """Kozachenko-Leonenko entropy estimate of the rows of `features` (N×d), in nats;
    divided by d with `per_dimension`. `epsilon` is added to every k-th neighbour
    distance (the LPC code's guard against log 0 for duplicate points)."""
    z = np.asarray(features, np.float64)
    if z.ndim != 2:
        raise ValueError(f"features must be N×d, got {z.shape}")
    n, d = z.shape
    if not 1 <= k < n:
        raise ValueError(f"k must be in 1..N-1 = {n - 1}, got {k}")
    if standardize:
        z = standardize_columns(z)
    eps = kth_neighbour_distances(z, k) + epsilon
    entropy = digamma(n) - digamma(k) + log_unit_ball_volume(d) + d * np.mean(np.log(eps))
    return float(entropy / d if per_dimension else entropy)
