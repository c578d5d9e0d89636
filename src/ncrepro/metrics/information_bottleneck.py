"""The Gaussian information bottleneck (Chechik, Globerson, Tishby, Weiss 2005) and the
rank (Gaussian-copula) transform that makes a representation's margins Gaussian (the
meta-Gaussian IB of Rey & Roth 2012), as Wang & Palmer use them between two independently
trained models' representations.

Rank transform, per coordinate j of a representation: u = rank / (N + 1), z = Φ⁻¹(u),
ranks of the data the transform is fitted on (ties get their average rank). New data
(a test split) goes through the fitted empirical CDF: a value with c_< fitted values
below it and c_≤ at or below it gets u = ((c_< + c_≤)/2 + 1/2) / (N + 1), which is
rank/(N + 1) on the fitted data itself and stays inside (0, 1). z is invariant under any
strictly increasing map of a coordinate (applied to fitted and new data alike).

Gaussian IB of x (d-dim) about y: min I(X;T) − β I(T;Y), T = A x + ξ, ξ ~ N(0, I). With
Σ_x|y = Σ_x − Σ_xy Σ_y⁻¹ Σ_yx, the v_i are the left eigenvectors of Σ_x|y Σ_x⁻¹, i.e.
Σ_x|y v = λ Σ_x v, with eigenvalues 0 ≤ λ_1 ≤ λ_2 ≤ ... ≤ 1 (ascending); the critical
trade-offs are β_i^c = 1/(1 − λ_i) and at β the optimal A has rows α_i v_iᵀ for the
β_i^c < β, α_i = sqrt((β(1 − λ_i) − 1) / (λ_i r_i)), r_i = v_iᵀ Σ_x v_i (other rows 0).
The λ_i are 1 − ρ_i² for the canonical correlations ρ_i of x and y (`ncrepro.metrics.cca`).

Conventions (recorded by `ib_conventions`): the v_i are scaled to r_i = v_iᵀ Σ_x v_i = 1,
so α_i is the gain on a unit-variance direction (α_i v_i does not depend on the scale);
covariances get the ridge of `ncrepro.metrics.cca.regularized_cov` (relative to the mean
variance); the "K-dim IB" keeps the K leading directions with their α_i in the β → ∞
limit, α_i ∝ sqrt((1 − λ_i) / (λ_i r_i)) (the common factor sqrt(β) dropped), so the
scalings compare the directions' λ_i alone: equal λ_i, equal α_i. (At a finite β, e.g. the
last one with exactly K dimensions, β_{K+1}^c, α_K shrinks to 0 as λ_K approaches λ_{K+1},
whatever the spread of λ_1..λ_K: tied eigenvalues would zero the projection.) Every
quantity computed from T here (standardized linear probes, angles, norm ratios) is
invariant to a common positive factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from ncrepro.metrics.cca import inverse_sqrt, regularized_cov

# λ is clipped to [LAMBDA_FLOOR, 1]: λ = 0 (a perfectly shared direction) has α = ∞.
LAMBDA_FLOOR = 1e-12
# λ within this of 1 is 1: a direction that carries no information about y (β^c = ∞)
# rather than one with a critical β of ~1e16 from rounding.
LAMBDA_CEILING_GAP = 1e-10


@dataclass
class RankTransform:
    """The per-coordinate Gaussian-copula transform fitted on `fit(data)` (module doc)."""

    sorted_columns: np.ndarray  # N×d, each column sorted

    @classmethod
    def fit(cls, data) -> RankTransform:
        data = np.asarray(data, np.float64)
        if data.ndim != 2 or len(data) < 1:
            raise ValueError(f"rank transform needs an N×d array with N >= 1, got {data.shape}")
        if not np.isfinite(data).all():
            raise ValueError("rank transform: the data have non-finite values")
        return cls(np.sort(data, axis=0))

    def uniform(self, x) -> np.ndarray:
        """u in (0, 1): mid-ranks among the fitted values over N + 1."""
        x = np.asarray(x, np.float64)
        n, d = self.sorted_columns.shape
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"rank transform fitted on {d} columns, got shape {x.shape}")
        u = np.empty(x.shape)
        for j in range(d):
            column = self.sorted_columns[:, j]
            below = np.searchsorted(column, x[:, j], side="left")
            at_or_below = np.searchsorted(column, x[:, j], side="right")
            u[:, j] = ((below + at_or_below) / 2 + 0.5) / (n + 1)
        return u

    def transform(self, x) -> np.ndarray:
        """z = Φ⁻¹(u)."""
        return ndtri(self.uniform(x))


def rank_transform(fit_on, *others) -> list[np.ndarray]:
    """z of `fit_on` and of each of `others` through the transform fitted on `fit_on`."""
    transform = RankTransform.fit(fit_on)
    return [transform.transform(fit_on), *(transform.transform(o) for o in others)]


@dataclass
class GaussianIB:
    """The Gaussian IB solution of x about y (module doc); fitted by `gaussian_ib`."""

    eigenvalues: np.ndarray  # λ_i ascending, in [LAMBDA_FLOOR, 1]
    vectors: np.ndarray  # d×m (m = rank Σ_x), column i = v_i with v_iᵀ Σ_x v_i = 1
    cov_x: np.ndarray  # the (regularized) Σ_x the v_i are normalized with
    ridge: float

    @property
    def r(self) -> np.ndarray:
        """r_i = v_iᵀ Σ_x v_i (1 by construction, up to rounding)."""
        return np.einsum("ij,ik,kj->j", self.vectors, self.cov_x, self.vectors)

    @property
    def critical_betas(self) -> np.ndarray:
        """β_i^c = 1 / (1 − λ_i) (inf where λ_i = 1)."""
        with np.errstate(divide="ignore"):
            return 1.0 / (1.0 - self.eigenvalues)

    def next_critical_beta(self, dims: int) -> float:
        """β_{dims+1}^c: the largest β whose optimal T has `dims` dimensions (inf if
        there is no (dims+1)-th direction or it carries no information about y)."""
        if dims < len(self.eigenvalues):
            return float(self.critical_betas[dims])
        return float("inf")

    def alphas(self, beta: float, dims: int | None = None) -> np.ndarray:
        """α_i = sqrt((β(1 − λ_i) − 1) / (λ_i r_i)) for i ≤ dims (0 below β_i^c).
        β = inf gives the β → ∞ shape sqrt((1 − λ_i) / (λ_i r_i)) (α / sqrt(β))."""
        dims = len(self.eigenvalues) if dims is None else int(dims)
        lam, r = self.eigenvalues[:dims], self.r[:dims]
        if np.isinf(beta):
            return np.sqrt((1.0 - lam) / (lam * r))
        return np.sqrt(np.maximum(beta * (1.0 - lam) - 1.0, 0.0) / (lam * r))

    def projection(self, dims: int, beta: float | None = None) -> np.ndarray:
        """A (dims×d): rows α_i v_iᵀ at `beta` (default ∞: the limit shape of the α_i)."""
        if not 1 <= dims <= len(self.eigenvalues):
            raise ValueError(f"dims must be in 1..{len(self.eigenvalues)}, got {dims}")
        beta = float("inf") if beta is None else beta
        return self.alphas(beta, dims)[:, None] * self.vectors[:, :dims].T

    def transform(self, x, dims: int, beta: float | None = None) -> np.ndarray:
        """T = A x (no noise) for the rows of x (N×d): N×dims."""
        return np.asarray(x, np.float64) @ self.projection(dims, beta).T


def gaussian_ib(x, y, *, ridge: float = 0.0) -> GaussianIB:
    """Fit the Gaussian IB of x (N×d) about y (N×q) from their sample covariances."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x and y must be N×d and N×q, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("gaussian_ib: non-finite values")
    xc, yc = x - x.mean(0), y - y.mean(0)
    cov_x = regularized_cov(xc, ridge)
    cov_y = regularized_cov(yc, ridge)
    cross = xc.T @ yc / len(xc)
    # Σ_x|y = Σ_x − Σ_xy Σ_y⁻¹ Σ_yx; lstsq: Σ_y may be singular without a ridge
    cond = cov_x - cross @ np.linalg.lstsq(cov_y, cross.T, rcond=None)[0]
    cond = (cond + cond.T) / 2
    # Σ_x|y v = λ Σ_x v with vᵀ Σ_x v = 1, on the column space of Σ_x (whitened by W,
    # WᵀΣ_xW = I): the symmetric eigenproblem of Wᵀ Σ_x|y W, v = W u
    whiten = inverse_sqrt(cov_x)
    values, rotation = np.linalg.eigh(whiten.T @ cond @ whiten)  # ascending
    values = np.clip(values, LAMBDA_FLOOR, 1.0)
    values[values > 1.0 - LAMBDA_CEILING_GAP] = 1.0  # rounding: no information about y
    return GaussianIB(values, whiten @ rotation, cov_x, float(ridge))


def relative(values) -> np.ndarray:
    """values / mean(values) (the scalings of Wang & Palmer's Fig. 4B/C)."""
    values = np.asarray(values, np.float64)
    return values / values.mean()


def ib_conventions(ridge: float, beta: str = "infinity (alpha shape)") -> dict:
    """The columns an IB row records."""
    return {"ib_ridge": float(ridge), "ib_beta": beta, "ib_vector_scale": "v'Sigma_x v=1"}
