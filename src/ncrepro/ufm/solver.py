"""Global solver and plain gradient descent for the MSE unconstrained features model (UFM).

The problem (Massion, Makhlouf & Massart, "The role of class encoding in neural collapse",
eq. (2)) is

    f(W, H, b) = (1/2N) ||W H + b 1^T - Y||_F^2 + (lw/2) ||W||_F^2 + (lh/2) ||H||_F^2
                 + (lb/2) ||b||^2,

with W in R^{K x d}, H in R^{d x N}, b in R^K and an arbitrary label matrix Y in R^{K x N}.

Global solution (``solve``)
---------------------------
For a fixed product Z = W H (with d >= rank Z),

    min_{W H = Z} (lw/2)||W||^2 + (lh/2)||H||^2 = mu ||Z||_*,   mu = sqrt(lw * lh),

attained by the balanced factors of the SVD of Z.  When d >= K the rank constraint
rank(Z) <= d is void, so the non-convex UFM has the same optimal value as the convex problem

    g(Z, b) = (1/2N) ||Z + b 1^T - Y||^2 + mu ||Z||_* + (lb/2) ||b||^2.            (*)

For fixed b the minimiser is singular-value soft-thresholding
Z(b) = SVT(Y - b 1^T, N mu).  Eliminating Z leaves the smooth, convex, K-dimensional problem

    phi(b) = (1/N) sum_i huber_{N mu}(sigma_i(Y - b 1^T)) + (lb/2) ||b||^2,

whose gradient step with step 1/L (L = 1 + lb) is exactly the block-coordinate update
b <- gamma (Y - Z(b)) 1 / N with gamma = 1/(1 + lb) (Lemma III.3, eq. (8)).  That map is
firmly non-expansive but can be arbitrarily slow (rate ~ 1 - c for small regularisation, and
no contraction at all where phi is locally linear).  We therefore minimise phi with a
regularised semismooth Newton method: the generalised Hessian comes from the closed-form
derivative of the spectral projection X -> U min(Sigma, N mu) V^T, with a Levenberg-Marquardt
shift proportional to ||grad phi|| and an Armijo line search; the plain block-coordinate
step is the fallback.  It reaches ||grad phi|| ~ 1e-13 relative in a handful of iterations
(a few hundred in extreme cases such as lambda ~ 1e-6, lambda_b ~ 1e-10).

All work is done in the (at most K+1)-dimensional row space S = span(rows of Y, 1^T): the
optimal Z has its rows in S (projecting Z onto S lowers ||Z||_* and does not increase the
quadratic term because 1 is in S), so an N x m orthonormal basis B of S (m <= K+1) turns
every SVD into a K x m one.  This reduction is also the mechanism behind Theorem IV.1 (NC1):
for Y = Ybar C the rows of Y are constant within classes, hence so are the columns of H.

Global optimality certificate: (W, H, b) is a global minimiser iff it is a first-order
stationary point of f *and* ||R||_2 <= N mu where R = W H + b 1^T - Y (R/N is then a valid
subgradient certificate for (*)).  ``kkt_diagnostics`` reports both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "UFMSolution",
    "objective",
    "gradients",
    "kkt_diagnostics",
    "balanced_factors",
    "solve",
    "gradient_descent",
]


@dataclass
class UFMSolution:
    """A (candidate) minimiser of the UFM objective with diagnostics.

    Attributes
    ----------
    W, H, b:
        Classifier weights (K x d), features (d x N) and bias (K,).
    objective:
        Value of f(W, H, b), recomputed from the factors.
    iterations:
        Solver iterations (Newton iterations for ``solve``, steps for GD).
    residual:
        Final optimality residual of the method: ||grad phi(b)|| / (||Y||_F/sqrt(N)) for
        ``solve`` (phi = objective with Z eliminated); ``kkt_residual`` for GD.
    converged:
        Whether ``residual <= tol`` (``solve``) / always True for GD (fixed step budget).
    method:
        ``"nuclear-norm"`` or ``"gradient-descent"``.
    rank:
        Rank of W H (number of singular values kept).
    diagnostics:
        Extra scalars, see ``kkt_diagnostics`` (stationarity of W, H, b; spectral ratio).
    """

    W: np.ndarray
    H: np.ndarray
    b: np.ndarray
    objective: float
    iterations: int
    residual: float
    converged: bool
    method: str
    rank: int
    diagnostics: dict[str, float] = field(default_factory=dict)

    @property
    def Z(self) -> np.ndarray:
        """The product W H (K x N)."""
        return self.W @ self.H

    @property
    def outputs(self) -> np.ndarray:
        """The network outputs W H + b 1^T (K x N)."""
        return self.W @ self.H + self.b[:, None]


def _check_lambdas(lambda_w: float, lambda_h: float, lambda_b: float) -> None:
    if not (lambda_w > 0 and lambda_h > 0):
        raise ValueError(f"lambda_w and lambda_h must be > 0, got {lambda_w}, {lambda_h}")
    if not lambda_b >= 0:
        raise ValueError(f"lambda_b must be >= 0 (np.inf means no bias), got {lambda_b}")


def _gamma(lambda_b: float) -> float:
    """gamma = 1/(1 + lambda_b) of Lemma III.3 (0 for lambda_b = inf, i.e. no bias)."""
    return 0.0 if np.isinf(lambda_b) else 1.0 / (1.0 + lambda_b)


def objective(
    W: np.ndarray,
    H: np.ndarray,
    b: np.ndarray,
    Y: np.ndarray,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
) -> float:
    """UFM objective f(W, H, b) of eq. (2) (``lambda_b = inf`` requires ``b = 0``)."""
    N = Y.shape[1]
    R = W @ H + b[:, None] - Y
    bias_term = 0.0 if np.isinf(lambda_b) else 0.5 * lambda_b * float(b @ b)
    return float(
        0.5 / N * np.sum(R * R)
        + 0.5 * lambda_w * np.sum(W * W)
        + 0.5 * lambda_h * np.sum(H * H)
        + bias_term
    )


def gradients(
    W: np.ndarray,
    H: np.ndarray,
    b: np.ndarray,
    Y: np.ndarray,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dW, dH, db) of f; db is zero when ``lambda_b = inf`` (bias frozen at 0)."""
    N = Y.shape[1]
    R = W @ H + b[:, None] - Y
    dW = R @ H.T / N + lambda_w * W
    dH = W.T @ R / N + lambda_h * H
    db = np.zeros_like(b) if np.isinf(lambda_b) else R.sum(axis=1) / N + lambda_b * b
    return dW, dH, db


def kkt_diagnostics(
    W: np.ndarray,
    H: np.ndarray,
    b: np.ndarray,
    Y: np.ndarray,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
) -> dict[str, float]:
    """First-order (Lemma III.3) and global-optimality diagnostics at (W, H, b).

    Returns
    -------
    dict with
      ``grad_W``, ``grad_H``, ``grad_b``: Frobenius norms of the gradients, each divided by
          ``scale = ||Y||_F / sqrt(N)`` (root-mean-square label norm) so they are unit-free;
      ``kkt_residual``: the largest of the three;
      ``spectral_ratio``: ||R||_2 / (N sqrt(lw lh)) with R = W H + b 1^T - Y.  A stationary
          point is a *global* minimiser iff ``spectral_ratio <= 1``; at a rank-deficient
          optimum the ratio equals 1 exactly (active singular directions), at Z = 0 it is < 1
          or = 1;
      ``balance``: |lw ||W||^2 - lh ||H||^2| / (lw ||W||^2 + lh ||H||^2) (0 at optimum,
          NaN when W = H = 0).
    """
    N = Y.shape[1]
    scale = max(np.linalg.norm(Y) / np.sqrt(N), np.finfo(float).tiny)
    dW, dH, db = gradients(W, H, b, Y, lambda_w, lambda_h, lambda_b)
    g = {
        "grad_W": float(np.linalg.norm(dW) / scale),
        "grad_H": float(np.linalg.norm(dH) / scale),
        "grad_b": float(np.linalg.norm(db) / scale),
    }
    g["kkt_residual"] = max(g.values())
    R = W @ H + b[:, None] - Y
    g["spectral_ratio"] = float(np.linalg.norm(R, 2) / (N * np.sqrt(lambda_w * lambda_h)))
    ew, eh = lambda_w * np.sum(W * W), lambda_h * np.sum(H * H)
    g["balance"] = float(abs(ew - eh) / (ew + eh)) if ew + eh > 0 else float("nan")
    return g


def balanced_factors(
    U: np.ndarray,
    s: np.ndarray,
    Vt: np.ndarray,
    d: int,
    lambda_w: float,
    lambda_h: float,
    embedding: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced factorisation of Z = U diag(s) Vt (rank r = len(s) <= d).

    W = (lh/lw)^{1/4} U diag(s)^{1/2} R^T,  H = (lw/lh)^{1/4} R diag(s)^{1/2} Vt, with R the
    first r columns of ``embedding`` (a d x d orthogonal matrix; identity by default).
    Then W H = Z and lw ||W||^2 = lh ||H||^2 = sqrt(lw lh) ||Z||_*, which is the minimum of
    (lw/2)||W||^2 + (lh/2)||H||^2 over all factorisations of Z.
    """
    r = len(s)
    if r > d:
        raise ValueError(f"rank {r} exceeds feature dimension d={d}")
    R = np.eye(d)[:, :r] if embedding is None else np.asarray(embedding, float)[:, :r]
    root = np.sqrt(s)
    ratio = (lambda_h / lambda_w) ** 0.25
    W = ratio * (U * root) @ R.T
    H = (1.0 / ratio) * R @ (root[:, None] * Vt)
    return W, H


def _row_space_basis(Y: np.ndarray) -> np.ndarray:
    """Orthonormal N x m basis B of span(1, rows of Y), m = min(N, K+1), with Y = (Y B) B^T."""
    K, N = Y.shape
    A = np.concatenate([np.ones((N, 1)), Y.T], axis=1)
    B, _ = np.linalg.qr(A, mode="reduced")
    return B


def _svt(X: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Singular value soft-thresholding; returns (Z, U, s_thresholded, Vt) (full thin SVD)."""
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    st = np.maximum(s - tau, 0.0)
    return (U * st) @ Vt, U, st, Vt


def _spectral_projection_jacobian(X: np.ndarray, tau: float, E: np.ndarray) -> np.ndarray:
    """Directional derivatives DP_X[E_p] of P(X) = U min(Sigma, tau) V^T for a batch E (p,K,m).

    P is the projection onto the spectral-norm ball of radius tau (the gradient of the
    Huber-of-singular-values function).  Formula for spectral operators of rectangular
    matrices (Ding, Sun & Toh): with X = U [diag(s) 0] V^T (K <= m), E^ = U^T E V = [E1 E2],

        DP[E] = U [ O1 o sym(E1) + O2 o skew(E1),  O3 o E2 ] V^T,

    O1_ij = (g_i - g_j)/(s_i - s_j) (g'(s_i) on ties), O2_ij = (g_i + g_j)/(s_i + s_j),
    O3_i = g_i / s_i, with g = min(s, tau); at s = tau the element g' = 0 of the Clarke
    Jacobian is used (any choice gives a valid semismooth-Newton step).
    """
    K, m = X.shape
    if K > m:
        return _spectral_projection_jacobian(X.T, tau, E.transpose(0, 2, 1)).transpose(0, 2, 1)
    U, s, Vt = np.linalg.svd(X, full_matrices=True)
    g = np.minimum(s, tau)
    gp = (s < tau).astype(float)
    Eh = U.T @ E @ Vt.T
    E1, E2 = Eh[:, :, :K], Eh[:, :, K:]
    ds = s[:, None] - s[None, :]
    tie = ds == 0.0
    O1 = np.where(
        tie, 0.5 * (gp[:, None] + gp[None, :]), (g[:, None] - g[None, :]) / np.where(tie, 1.0, ds)
    )
    ss = s[:, None] + s[None, :]
    zero = ss == 0.0
    O2 = np.where(zero, gp[:, None], (g[:, None] + g[None, :]) / np.where(zero, 1.0, ss))
    O3 = np.where(s > 0, g / np.where(s > 0, s, 1.0), gp)[:, None]
    E1t = E1.transpose(0, 2, 1)
    out = np.concatenate([O1 * 0.5 * (E1 + E1t) + O2 * 0.5 * (E1 - E1t), O3 * E2], axis=2)
    return U @ out @ Vt


def _huber_sum(s: np.ndarray, tau: float) -> float:
    """sum_i h(s_i) with h(s) = s^2/2 (s <= tau), tau s - tau^2/2 (s > tau): the Moreau
    envelope of tau ||.||_* evaluated through the singular values."""
    return float(np.sum(np.where(s <= tau, 0.5 * s * s, tau * s - 0.5 * tau * tau)))


def _newton_bias(Yr, v, tau, lambda_b, b0, tol, max_iter, scale):
    """Semismooth Newton with Armijo line search on the convex bias problem

        phi(b) = (1/N) sum_i huber_tau(sigma_i(Yr - b v^T)) + (lambda_b/2) ||b||^2,

    grad phi(b) = -(1/N) P(X) v + lambda_b b with P(X) = X - SVT(X, tau).  A plain gradient
    step with step 1/(1 + lambda_b) (= the block-coordinate update of Lemma III.3, eq. (8))
    is the fallback whenever the Newton direction is unusable.

    Returns (b, iterations, ||grad phi(b)|| / scale).
    """
    K = Yr.shape[0]
    N = float(v @ v)
    step = 1.0 / (1.0 + lambda_b)

    def phi_grad(b):
        X = Yr - np.outer(b, v)
        U, s, Vt = np.linalg.svd(X, full_matrices=False)
        P = (U * np.minimum(s, tau)) @ Vt
        phi = _huber_sum(s, tau) / N + 0.5 * lambda_b * float(b @ b)
        return phi, -(P @ v) / N + lambda_b * b, X

    b = b0.copy()
    phi, grad, X = phi_grad(b)
    basis = np.einsum("kq,j->kqj", np.eye(K), v)  # E_k = e_k v^T
    it = 0
    while np.linalg.norm(grad) > tol * scale and it < max_iter:
        it += 1
        hess = np.einsum("kqj,j->qk", _spectral_projection_jacobian(X, tau, basis), v) / N
        # Levenberg-Marquardt regularisation rho ~ ||grad||: the generalised Hessian is
        # singular where phi is locally linear (all singular values above tau along a
        # direction), and rho -> 0 keeps the local convergence superlinear.
        rho = (1.0 + lambda_b) * min(1.0, np.linalg.norm(grad) / scale)
        hess = 0.5 * (hess + hess.T) + (lambda_b + rho) * np.eye(K)
        direction = -np.linalg.solve(hess, grad)
        slope = float(grad @ direction)
        accepted = False
        if np.all(np.isfinite(direction)) and slope < 0:
            t = 1.0
            for _ in range(40):
                phi_t, grad_t, X_t = phi_grad(b + t * direction)
                armijo = phi_t <= phi + 1e-4 * t * slope
                # near the optimum phi changes at rounding level: accept a full step that
                # shrinks the gradient instead
                if armijo or (t == 1.0 and np.linalg.norm(grad_t) < 0.5 * np.linalg.norm(grad)):
                    b, phi, grad, X = b + t * direction, phi_t, grad_t, X_t
                    accepted = True
                    break
                t *= 0.5
        if not accepted:
            b = b - step * grad
            phi, grad, X = phi_grad(b)
    return b, it, float(np.linalg.norm(grad) / scale)


def solve(
    Y: np.ndarray,
    d: int,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
    *,
    tol: float = 1e-12,
    max_iter: int = 2000,
    b0: np.ndarray | None = None,
    embedding: np.ndarray | None = None,
    rank_tol: float = 1e-12,
) -> UFMSolution:
    """Global minimiser of the UFM objective (eq. (2)) for any label matrix Y (K x N).

    See the module docstring for the method (nuclear-norm reformulation, Z eliminated by
    singular value soft-thresholding, the remaining K-dimensional convex problem in b solved
    by semismooth Newton, balanced re-factorisation).  Works for any encoding, any class sizes, any
    lambda_w, lambda_h > 0 and lambda_b in [0, inf] (``np.inf`` = bias-free UFM, b = 0).

    Parameters
    ----------
    Y: label matrix K x N (float64).
    d: feature dimension; must satisfy d >= K (for d < K the rank constraint rank(WH) <= d
        makes the problem non-convex and the nuclear-norm relaxation may not be tight).
    tol: tolerance on ||grad phi(b)|| / (||Y||_F/sqrt(N)) (unit-free; equals the relative
        bias stationarity ``grad_b`` of ``kkt_diagnostics`` at the returned point).
    max_iter: maximum number of Newton iterations.
    b0: starting bias (default 0).
    embedding: optional d x d orthogonal matrix choosing the rotation R of the features
        (the minimiser is unique only up to W -> W R^T, H -> R H).
    rank_tol: singular values of Z below ``rank_tol * sigma_max(Y)`` are dropped (this
        removes the round-off-level direction at exactly critical lambda_b).

    Returns
    -------
    UFMSolution with ``diagnostics`` from ``kkt_diagnostics``.
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2:
        raise ValueError("Y must be a K x N matrix")
    K, N = Y.shape
    _check_lambdas(lambda_w, lambda_h, lambda_b)
    if d < K:
        raise ValueError(
            f"d={d} < K={K}: with d < K the constraint rank(WH) <= d makes the UFM non-convex "
            "and the nuclear-norm reformulation is not guaranteed to be tight; use d >= K"
        )
    mu = np.sqrt(lambda_w * lambda_h)
    tau = N * mu
    gamma = _gamma(lambda_b)

    B = _row_space_basis(Y)  # N x m
    Yr = Y @ B  # K x m, Y = Yr B^T
    v = B.T @ np.ones(N)  # coordinates of 1_N, ||v||^2 = N

    scale = max(np.linalg.norm(Y) / np.sqrt(N), np.finfo(float).tiny)
    b_init = np.zeros(K) if b0 is None else np.asarray(b0, dtype=np.float64).copy()
    if gamma == 0.0:  # lambda_b = inf: bias-free UFM
        b, iters, res = np.zeros(K), 0, 0.0
    else:
        b, iters, res = _newton_bias(Yr, v, tau, lambda_b, b_init, tol, max_iter, scale)

    _, U, s, Vt = _svt(Yr - np.outer(b, v), tau)
    keep = s > rank_tol * float(np.linalg.norm(Yr, 2))
    W, H = balanced_factors(U[:, keep], s[keep], Vt[keep] @ B.T, d, lambda_w, lambda_h, embedding)
    diag = kkt_diagnostics(W, H, b, Y, lambda_w, lambda_h, lambda_b)
    return UFMSolution(
        W=W,
        H=H,
        b=b,
        objective=objective(W, H, b, Y, lambda_w, lambda_h, lambda_b),
        iterations=iters,
        residual=res,
        converged=res <= tol,
        method="nuclear-norm",
        rank=int(keep.sum()),
        diagnostics=diag,
    )


def gradient_descent(
    Y: np.ndarray,
    d: int,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
    *,
    seed: int = 0,
    lr: float = 0.5,
    steps: int = 20_000,
    init_scale: float = 0.1,
) -> UFMSolution:
    """Plain full-batch gradient descent on (W, H, b) from a random Gaussian start (float64).

    W, H ~ ``init_scale`` * N(0, 1) entrywise, b = 0; constant step ``lr``.  This is the
    independent reference used to check that ``solve`` returns a *global* minimiser: the UFM
    has a benign landscape (no spurious local minima), so GD from random starts reaches the
    global optimum value.  ``lambda_b = inf`` keeps b frozen at 0.
    """
    Y = np.asarray(Y, dtype=np.float64)
    K, N = Y.shape
    _check_lambdas(lambda_w, lambda_h, lambda_b)
    rng = np.random.default_rng(seed)
    W = init_scale * rng.standard_normal((K, d))
    H = init_scale * rng.standard_normal((d, N))
    b = np.zeros(K)
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
        for _ in range(steps):
            dW, dH, db = gradients(W, H, b, Y, lambda_w, lambda_h, lambda_b)
            W -= lr * dW
            H -= lr * dH
            b -= lr * db
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(H)) and np.all(np.isfinite(b))):
        raise FloatingPointError(f"gradient descent diverged with lr={lr}; use a smaller step")
    diag = kkt_diagnostics(W, H, b, Y, lambda_w, lambda_h, lambda_b)
    sv = np.linalg.svd(W @ H, compute_uv=False)
    rank = int(np.sum(sv > 1e-8 * max(1.0, sv[0] if sv.size else 0.0)))
    return UFMSolution(
        W=W,
        H=H,
        b=b,
        objective=objective(W, H, b, Y, lambda_w, lambda_h, lambda_b),
        iterations=steps,
        residual=diag["kkt_residual"],
        converged=True,
        method="gradient-descent",
        rank=rank,
        diagnostics=diag,
    )
