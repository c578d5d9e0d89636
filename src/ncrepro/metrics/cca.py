"""Canonical correlation analysis (CCA) between two representations of the same samples:
the linear identifiability measure of Roeder et al. (2020) and Raghu et al. (2017).

For X (N×p) and Y (N×q), the canonical correlations ρ_1 ≥ ρ_2 ≥ ... are the singular
values of Σ_xx^{-1/2} Σ_xy Σ_yy^{-1/2} (sample covariances of the centred data, divided
by N; the 1/N convention cancels). They are invariant under invertible linear maps of
either side, so two representations equal up to an invertible matrix have all ρ = 1.

Covariances of wide representations (2048-d ResNet-50 features, dead ReLU units, a
representation that collapses onto ~K directions) are singular or ill-conditioned. Two
conventions make the whitening well defined, both recorded by `cca_conventions`:

- `ridge` (default 0): Σ_xx + ridge · (tr Σ_xx / p) · I before whitening (likewise Σ_yy),
  a shrinkage relative to the mean variance, so it does not depend on the units;
- directions whose (regularized) variance is below `RANK_RTOL` × the largest are dropped
  (the whitening acts on the numerical column space): with ridge 0 a rank-deficient
  side gives min(rank X, rank Y) correlations instead of a division by ~0.
"""

from __future__ import annotations

import numpy as np

# Eigenvalues of a covariance below this fraction of its largest count as zero.
RANK_RTOL = 1e-10


def _centred(a, name: str) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be N×d, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has non-finite values")
    return a - a.mean(axis=0)


def regularized_cov(a_centred: np.ndarray, ridge: float) -> np.ndarray:
    """Σ = AᵀA / N of centred data, plus ridge · (tr Σ / d) · I."""
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    n, d = a_centred.shape
    cov = a_centred.T @ a_centred / n
    if ridge > 0:
        cov = cov + ridge * (np.trace(cov) / d) * np.eye(d)
    return cov


def inverse_sqrt(cov: np.ndarray, rtol: float = RANK_RTOL) -> np.ndarray:
    """W (d×r) with Wᵀ Σ W = I_r on the numerical column space of Σ (r = its rank)."""
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    top = values[-1] if values.size else 0.0
    if top <= 0:
        return np.zeros((cov.shape[0], 0))
    keep = values > rtol * top
    return vectors[:, keep] / np.sqrt(values[keep])


def canonical_correlations(x, y, *, ridge: float = 0.0) -> np.ndarray:
    """All canonical correlations of X (N×p) and Y (N×q), descending, in [0, 1]:
    min(rank X, rank Y) values (see the module docstring for `ridge` and the rank)."""
    xc, yc = _centred(x, "x"), _centred(y, "y")
    if len(xc) != len(yc):
        raise ValueError(f"x and y must have the same rows, got {len(xc)} and {len(yc)}")
    if len(xc) < 2:
        raise ValueError("CCA needs at least 2 samples")
    wx = inverse_sqrt(regularized_cov(xc, ridge))
    wy = inverse_sqrt(regularized_cov(yc, ridge))
    cross = wx.T @ (xc.T @ yc / len(xc)) @ wy
    rho = np.linalg.svd(cross, compute_uv=False)
    return np.clip(rho, 0.0, 1.0)


def leading_summary(rho, k: int) -> dict[str, float]:
    """Mean and (population, ddof 0) variance of the k leading canonical correlations
    (all of them if there are fewer), and how many were used."""
    rho = np.sort(np.asarray(rho, np.float64))[::-1]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    lead = rho[:k]
    if lead.size == 0:
        return {"mean": float("nan"), "var": float("nan"), "count": 0}
    return {"mean": float(lead.mean()), "var": float(lead.var()), "count": int(lead.size)}


def cca_conventions(ridge: float) -> dict:
    """The columns a CCA row records."""
    return {"cca_ridge": float(ridge)}
