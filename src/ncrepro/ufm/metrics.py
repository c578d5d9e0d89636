"""Neural-collapse metrics for UFM solutions (features H: d x N, classifier W: K x d).

Centring convention: "centred class means" are Mc = Hbar (I - 11^T/K), i.e. the class means
minus the *unweighted* average of the class means (Corollary IV.2 / Proposition III.2).  For
balanced classes this equals the usual global feature mean of Papyan et al.

Every metric is NaN where it is undefined (e.g. at the zero solution W = H = 0).
"""

from __future__ import annotations

import numpy as np

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


def assignment_matrix(labels: np.ndarray, K: int | None = None) -> np.ndarray:
    """Class assignment matrix C (K x N) with C[k, i] = 1 iff labels[i] == k (paper eq. (1))."""
    labels = np.asarray(labels, dtype=int)
    K = int(labels.max()) + 1 if K is None else K
    C = np.zeros((K, labels.size))
    C[labels, np.arange(labels.size)] = 1.0
    return C


def class_means(H: np.ndarray, labels: np.ndarray, K: int | None = None) -> np.ndarray:
    """Class means Hbar (d x K): Hbar = H C^T diag(n_k)^{-1} (empty classes give NaN)."""
    C = assignment_matrix(labels, K)
    counts = C.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (H @ C.T) / counts


def centered_means(Hbar: np.ndarray) -> np.ndarray:
    """Mc = Hbar (I - 11^T/K): class means minus their unweighted average."""
    return Hbar - Hbar.mean(axis=1, keepdims=True)


def within_class_scatter(H: np.ndarray, labels: np.ndarray, relative: bool = True) -> float:
    """||H - Hbar C||_F, divided by ||H||_F when ``relative`` (Theorem IV.1: exactly 0).

    With ``relative=False`` returns tr(Sigma_W) = ||H - Hbar C||_F^2 / N (raw scatter).
    """
    C = assignment_matrix(labels)
    dev = H - class_means(H, labels, C.shape[0]) @ C
    if not relative:
        return float(np.sum(dev * dev) / H.shape[1])
    norm = np.linalg.norm(H)
    return float(np.linalg.norm(dev) / norm) if norm > 0 else _NAN


def nc1(H: np.ndarray, labels: np.ndarray, K: int | None = None) -> float:
    """Papyan's NC1 = tr(Sigma_W Sigma_B^+) / K (Theorem IV.1 predicts 0).

    Sigma_W = (1/N) sum_i (h_i - hbar_{y_i})(.)^T, Sigma_B = (1/K) Mc Mc^T, and Sigma_B^+ is
    the pseudo-inverse restricted to the top K-1 eigenpairs (NaN if Sigma_B = 0).
    """
    C = assignment_matrix(labels, K)
    K = C.shape[0]
    Hbar = class_means(H, labels, K)
    dev = H - Hbar @ C
    sigma_w = dev @ dev.T / H.shape[1]
    Mc = centered_means(Hbar)
    sigma_b = Mc @ Mc.T / K
    evals, evecs = np.linalg.eigh(sigma_b)
    top = evals[::-1][: K - 1]
    vecs = evecs[:, ::-1][:, : K - 1]
    if top.size == 0 or top[0] <= 0:
        return _NAN
    keep = top > 1e-12 * top[0]
    pinv = (vecs[:, keep] / top[keep]) @ vecs[:, keep].T
    return float(np.trace(sigma_w @ pinv) / K)


def nc2(Hbar: np.ndarray) -> dict[str, float]:
    """NC2 measures of the centred class means Mc (Corollary IV.2: 0 for SSETF means).

    ``equinorm``: std/mean of the column norms of Mc;
    ``equiangularity``: std of the off-diagonal cosines (Papyan et al.);
    ``max_angle``: mean |cos + 1/(K-1)| over off-diagonal pairs (distance to the simplex angle);
    ``etf_distance``: || G/||G||_F - (I - J)/||I - J||_F ||_F with G = Mc^T Mc.
    """
    Mc = centered_means(Hbar)
    K = Mc.shape[1]
    norms = np.linalg.norm(Mc, axis=0)
    if np.any(norms == 0) or K < 2:
        return {"equinorm": _NAN, "equiangularity": _NAN, "max_angle": _NAN, "etf_distance": _NAN}
    cos = (Mc.T @ Mc) / np.outer(norms, norms)
    off = cos[~np.eye(K, dtype=bool)]
    G = Mc.T @ Mc
    etf = np.eye(K) - np.full((K, K), 1.0 / K)
    return {
        "equinorm": float(norms.std() / norms.mean()),
        "equiangularity": float(off.std()),
        "max_angle": float(np.mean(np.abs(off + 1.0 / (K - 1)))),
        "etf_distance": float(np.linalg.norm(G / np.linalg.norm(G) - etf / np.linalg.norm(etf))),
    }


def nc3(W: np.ndarray, Hbar: np.ndarray, centered: bool = True) -> float:
    """NC3 = || W^T/||W||_F - M/||M||_F ||_F^2 with M = Mc (centred means, Papyan's
    definition) or M = Hbar (``centered=False``; Theorem III.1 gives W^T = kappa Hbar, i.e. 0).
    """
    M = centered_means(Hbar) if centered else Hbar
    nw, nm = np.linalg.norm(W), np.linalg.norm(M)
    if nw == 0 or nm == 0:
        return _NAN
    return float(np.sum((W.T / nw - M / nm) ** 2))


def nc3_prime(W: np.ndarray, Hbar: np.ndarray) -> float:
    """NC3' = || W^T W/||W^T W||_F - Hbar Hbar^T/||Hbar Hbar^T||_F ||_F (uncentred Hbar).

    Zero iff W^T = kappa Hbar Q^T for an orthogonal Q (eq. (12)); Theorem IV.4: always 0 at
    the optimum for balanced classes, whatever the encoding.
    """
    A, B = W.T @ W, Hbar @ Hbar.T
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    if na == 0 or nb == 0:
        return _NAN
    return float(np.linalg.norm(A / na - B / nb))


def fitted_kappa(W: np.ndarray, Hbar: np.ndarray) -> float:
    """Least-squares kappa in W^T W = kappa^2 Hbar Hbar^T (Theorem IV.4: sqrt(lh n / lw))."""
    A, B = W.T @ W, Hbar @ Hbar.T
    nb2 = float(np.sum(B * B))
    if nb2 == 0:
        return _NAN
    k2 = float(np.sum(A * B)) / nb2
    return float(np.sqrt(k2)) if k2 >= 0 else _NAN
