"""Neural-collapse metrics for UFM solutions (features H: d x N, classifier W: K x d).

Thin adapters over the shared implementation in ``ncrepro.metrics`` (features N x d,
class statistics ``ClassStats``): every NC quantity is computed there; this module only
turns the d x N matrices of the UFM papers into the shared library's arguments (rows of
H^T, columns of Hbar as rows) and maps "undefined" to NaN.

Centring convention: "centred class means" are Mc = Hbar (I - 11^T/K), i.e. the class means
minus the *unweighted* average of the class means (Corollary IV.2 / Proposition III.2): the
shared library's ``global_mean="class_means"``.  For balanced classes this equals the usual
global feature mean of Papyan et al.

Every metric is NaN where it is undefined (e.g. at the zero solution W = H = 0, with fewer
than two classes, or with a class that has no samples).
"""

from __future__ import annotations

import numpy as np

from ncrepro.metrics import collapse
from ncrepro.metrics.stats import ClassStats

__all__ = [
    "assignment_matrix",
    "class_means",
    "centered_means",
    "within_class_scatter",
    "nc1",
    "nc2",
    "nc3",
    "nc3_prime",
    "fitted_kappa",
]

_NAN = float("nan")
_NC2_KEYS = ("equinorm", "equiangularity", "max_angle", "etf_distance")


def assignment_matrix(labels: np.ndarray, K: int | None = None) -> np.ndarray:
    """Class assignment matrix C (K x N) with C[k, i] = 1 iff labels[i] == k (paper eq. (1))."""
    labels = np.asarray(labels, dtype=int)
    K = int(labels.max()) + 1 if K is None else K
    C = np.zeros((K, labels.size))
    C[labels, np.arange(labels.size)] = 1.0
    return C


def class_means(H: np.ndarray, labels: np.ndarray, K: int | None = None) -> np.ndarray:
    """Class means Hbar (d x K): Hbar = H C^T diag(n_k)^{-1} (empty classes give NaN).

    The paper's matrix form (eq. (1)); it is what the adapters below hand to the shared
    library as the class means (``ClassStats.means`` = Hbar^T).
    """
    C = assignment_matrix(labels, K)
    counts = C.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (H @ C.T) / counts


def _means_only(Hbar: np.ndarray) -> ClassStats:
    """``ClassStats`` carrying only the class means (rows = columns of Hbar).

    Enough for the centring (``global_mean("class_means")``, ``centred_means``), which does
    not use the counts; the unit counts and zero traces are placeholders, never read.
    """
    K = Hbar.shape[1]
    return ClassStats(np.ones(K, np.int64), Hbar.T, np.zeros(K))


def _global_mean(Hbar: np.ndarray) -> np.ndarray:
    """mu_G = Hbar 1/K, the shared library's global_mean="class_means"."""
    return _means_only(Hbar).global_mean("class_means")


def centered_means(Hbar: np.ndarray) -> np.ndarray:
    """Mc = Hbar (I - 11^T/K): class means minus their unweighted average."""
    return _means_only(Hbar).centred_means("class_means").T


def within_class_scatter(H: np.ndarray, labels: np.ndarray, relative: bool = True) -> float:
    """||H - Hbar C||_F, divided by ||H||_F when ``relative`` (Theorem IV.1: exactly 0).

    With ``relative=False`` returns tr(Sigma_W) = ||H - Hbar C||_F^2 / N (raw scatter).
    (``ncrepro.metrics.within_class_scatter`` about the class means Hbar.)
    """
    means = class_means(H, labels).T
    return collapse.within_class_scatter(H.T, labels, means, relative=relative)


def _class_stats(H: np.ndarray, labels: np.ndarray, K: int | None) -> ClassStats:
    """``ClassStats`` of the columns of H: counts n_k, means Hbar^T and pooled scatter
    (H - Hbar C)(H - Hbar C)^T, in the paper's matrix form (d x N)."""
    labels = np.asarray(labels, dtype=int)
    Hbar = class_means(H, labels, K)
    counts = np.bincount(labels, minlength=Hbar.shape[1])
    dev = H - Hbar[:, labels]
    traces = np.bincount(labels, weights=np.sum(dev * dev, axis=0), minlength=len(counts))
    return ClassStats(counts, Hbar.T, traces, pooled_scatter=dev @ dev.T)


def nc1(H: np.ndarray, labels: np.ndarray, K: int | None = None) -> float:
    """Papyan's NC1 = tr(Sigma_W Sigma_B^+) / K (Theorem IV.1 predicts 0).

    Sigma_W = (1/N) sum_i (h_i - hbar_{y_i})(.)^T, Sigma_B = (1/K) Mc Mc^T, and Sigma_B^+ is
    the pseudo-inverse restricted to the top K-1 eigenpairs, dropping eigenvalues
    <= 1e-12 * lambda_max (NaN if Sigma_B = 0): ``ncrepro.metrics.nc1`` with
    sigma_w="pooled", global_mean="class_means", sb_pinv="top_k_minus_1_rtol".
    """
    stats = _class_stats(H, labels, K)
    if stats.num_classes < 2 or not stats.present.all():
        return _NAN
    return collapse.nc1(
        stats, sigma_w="pooled", global_mean="class_means", sb_pinv="top_k_minus_1_rtol"
    )


def nc2(Hbar: np.ndarray) -> dict[str, float]:
    """NC2 measures of the centred class means Mc (Corollary IV.2: 0 for SSETF means).

    ``equinorm``: std/mean of the column norms of Mc;
    ``equiangularity``: std of the off-diagonal cosines (Papyan et al.);
    ``max_angle``: mean |cos + 1/(K-1)| over off-diagonal pairs (distance to the simplex angle);
    ``etf_distance``: || G/||G||_F - (I - J)/||I - J||_F ||_F with G = Mc^T Mc.
    All NaN if K < 2 or a centred mean is 0.  (``ncrepro.metrics.nc2`` with
    cosines="gram" and ``ncrepro.metrics.etf_distance``.)
    """
    if Hbar.shape[1] < 2:
        return dict.fromkeys(_NC2_KEYS, _NAN)
    means, mu = Hbar.T, _global_mean(Hbar)
    out = collapse.nc2(means, mu, cosines="gram")
    if np.isnan(out["equiangularity"]):  # a cosine is undefined: a centred mean is 0
        return dict.fromkeys(_NC2_KEYS, _NAN)
    return {**out, "etf_distance": collapse.etf_distance(means, mu)}


def nc3(W: np.ndarray, Hbar: np.ndarray, centered: bool = True) -> float:
    """NC3 = || W^T/||W||_F - M/||M||_F ||_F^2 with M = Mc (centred means, Papyan's
    definition) or M = Hbar (``centered=False``; Theorem III.1 gives W^T = kappa Hbar, i.e. 0).
    (``ncrepro.metrics.nc3``; NaN if W = 0 or M = 0.)
    """
    if centered:
        return collapse.nc3(W, Hbar.T, _global_mean(Hbar))
    return collapse.nc3(W, Hbar.T, centred=False)


def nc3_prime(W: np.ndarray, Hbar: np.ndarray) -> float:
    """NC3' = || W^T W/||W^T W||_F - Hbar Hbar^T/||Hbar Hbar^T||_F ||_F (uncentred Hbar).

    Zero iff W^T = kappa Hbar Q^T for an orthogonal Q (eq. (12)); Theorem IV.4: always 0 at
    the optimum for balanced classes, whatever the encoding.  (``ncrepro.metrics.nc3_prime``.)
    """
    return collapse.nc3_prime(W, Hbar.T)


def fitted_kappa(W: np.ndarray, Hbar: np.ndarray) -> float:
    """Least-squares kappa in W^T W = kappa^2 Hbar Hbar^T (Theorem IV.4: sqrt(lh n / lw)).
    (``ncrepro.metrics.nc3_prime_scale``.)"""
    return collapse.nc3_prime_scale(W, Hbar.T)
