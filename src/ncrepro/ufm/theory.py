"""Closed forms of "The role of class encoding in neural collapse" (Massion, Makhlouf &
Massart) for the MSE UFM with balanced classes, n samples per class, N = nK.

Notation: J = 1 1^T / K, mu = sqrt(lw lh), c = K sqrt(n lw lh) (Theorem III.1),
gamma = 1/(1 + lb) (Lemma III.3), k = sqrt(lw / (n lh)).

Derivation used throughout (checked numerically in tests/test_ufm.py)
---------------------------------------------------------------------
For Y = Ybar C with balanced C (C C^T = n I), the optimal product is Z = Zbar C, and soft
thresholding Z at N mu is the same as soft thresholding Zbar at c (singular values of
Zbar C are sqrt(n) times those of Zbar, and N mu = sqrt(n) c).  The balanced factors give

    Hbar^T Hbar = k |Zbar|,   |Zbar| = (Zbar^T Zbar)^{1/2},                         (G)

and W^T = sqrt(n lh / lw) Hbar whenever Zbar is symmetric PSD (Theorem III.1, eq. (3)).

"Two-level" encodings Ybar = p (I - J) + s J (one-hot: p = s = 1; label smoothing:
p = 1 - delta, s = 1; centred versions: s = 0) keep the permutation symmetry, so
b* = beta_b 1/K and Ybar - b 1_K^T = p (I - J) + (s - beta_b) J has singular values |p| on
1-perp and |s - beta_b| on 1.  The bias condition b = gamma (Y - Z) 1 / N (eq. (8)) then
reduces to the scalar equation beta_b = gamma (s - soft_c(s - beta_b)) with the solution

    beta_b = gamma s            if |s| (1 - gamma) <= c     (bias direction not active)
    beta_b = sign(s) c / lb     otherwise,

which for s = 1 is beta_b = min(1/(1 + lb), c/lb), i.e. eq. (5) with the switch at
lb = c/(1 - c).  Hence Zbar = soft_c(p)(I - J) + soft_c(s - beta_b) J and by (G)

    Hbar^T Hbar = k [ (|p| - c)_+ (I - J) + (|s - beta_b| - c)_+ J ].

For one-hot and c < 1 this is Theorem III.1, eq. (4), with

    alpha_1 = alpha_2 = (1 - c) sqrt(lw / (n lh))

(the same constant in both regimes; the regimes differ only in the J coefficient, which is
1 for lb <= c/(1-c) and c/(lb (1 - c)) beyond).  For c >= 1 the solution is W = H = 0 and
b = 1/(1 + lb) * 1/K.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "c_constant",
    "critical_lambda_b",
    "theory_kappa",
    "two_level_solution",
    "theory_bias",
    "theory_gram",
    "theory_gram_coefficients",
    "theory_ssetf",
    "theory_nc3",
    "theory_objective",
    "label_smoothing_ssetf",
    "ssetf_matrix",
    "fit_ssetf",
]


def c_constant(K: int, n: int, lambda_w: float, lambda_h: float) -> float:
    """c = K sqrt(n lw lh) of Theorem III.1 (c >= 1 gives the zero solution W = H = 0)."""
    return float(K * np.sqrt(n * lambda_w * lambda_h))


def critical_lambda_b(K: int, n: int, lambda_w: float, lambda_h: float) -> float:
    """Critical bias regularisation c/(1 - c) of Theorem III.1 (NaN when c >= 1).

    For lb <= c/(1-c) the uncentred class means form a simplex ETF and b* = 1/(1+lb) 1/K;
    beyond it they are a shifted simplex ETF tending to an orthogonal frame and b* = c/lb 1/K.
    """
    c = c_constant(K, n, lambda_w, lambda_h)
    return c / (1.0 - c) if c < 1.0 else float("nan")


def theory_kappa(n: int, lambda_w: float, lambda_h: float) -> float:
    """NC3' scale kappa = sqrt(lh n / lw) of Theorem IV.4 (balanced classes, any encoding)."""
    return float(np.sqrt(lambda_h * n / lambda_w))


def _soft(x: float, c: float) -> float:
    return float(np.sign(x) * max(abs(x) - c, 0.0))


def two_level_solution(
    K: int,
    n: int,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
    p: float = 1.0,
    s: float = 1.0,
) -> dict:
    """Closed-form optimum for the balanced two-level encoding Ybar = p (I - J) + s J.

    Returns a dict with ``c``, ``beta_b`` (b* = beta_b 1/K), ``b`` (K,), ``Zbar`` (K x K,
    Z* = Zbar C), ``gram`` (Hbar^T Hbar, K x K) and the coefficients ``perp`` and ``ones``
    of gram = k [perp (I - J) + ones J].  One-hot: p = s = 1 (Theorem III.1); label smoothing
    Y_delta: p = 1 - delta, s = 1; centred labels: s = 0 (Theorem III.4: b* = 0).
    ``lambda_b = inf`` is the bias-free UFM.
    """
    c = c_constant(K, n, lambda_w, lambda_h)
    gamma = 0.0 if np.isinf(lambda_b) else 1.0 / (1.0 + lambda_b)
    if abs(s) * (1.0 - gamma) <= c:
        beta_b = gamma * s
    else:
        beta_b = float(np.sign(s) * c / lambda_b)
    J = np.full((K, K), 1.0 / K)
    Ik = np.eye(K)
    Zbar = _soft(p, c) * (Ik - J) + _soft(s - beta_b, c) * J
    perp = max(abs(p) - c, 0.0)
    ones = max(abs(s - beta_b) - c, 0.0)
    k = np.sqrt(lambda_w / (n * lambda_h))
    return {
        "c": c,
        "beta_b": beta_b,
        "b": np.full(K, beta_b / K),
        "Zbar": Zbar,
        "gram": k * (perp * (Ik - J) + ones * J),
        "perp": perp,
        "ones": ones,
        "k": float(k),
    }


def _p_s(delta: float, centered: bool) -> tuple[float, float]:
    return 1.0 - delta, (0.0 if centered else 1.0)


def theory_bias(
    K: int,
    n: int,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
    *,
    delta: float = 0.0,
    centered: bool = False,
) -> np.ndarray:
    """Optimal bias b* (Theorem III.1, eq. (5); Theorem III.4 for ``centered``).

    One-hot (delta = 0), balanced: b* = 1/(1+lb) 1/K if lb <= c/(1-c), (c/lb) 1/K otherwise,
    i.e. b* = min(1/(1+lb), c/lb) 1/K; this form also covers c >= 1 (then b* = 1/(1+lb) 1/K).
    Label smoothing (delta > 0) has the *same* b* (derived, module docstring): the bias only
    sees the label mean, which is 1/K for every delta.  Centred labels give b* = 0.
    """
    p, s = _p_s(delta, centered)
    return two_level_solution(K, n, lambda_w, lambda_h, lambda_b, p, s)["b"]


def theory_gram(
    K: int,
    n: int,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
    *,
    delta: float = 0.0,
    centered: bool = False,
) -> np.ndarray:
    """Hbar*^T Hbar* (K x K) from Theorem III.1, eq. (4), with the constants made explicit.

    One-hot, c < 1: alpha_1 (I - J) for lb <= c/(1-c), alpha_2 (I - c/(lb(1-c)) J) beyond,
    with alpha_1 = alpha_2 = (1 - c) sqrt(lw/(n lh)).  Zero matrix for c >= 1.  Label
    smoothing / centred labels: the derived two-level formula of the module docstring.
    """
    p, s = _p_s(delta, centered)
    return two_level_solution(K, n, lambda_w, lambda_h, lambda_b, p, s)["gram"]


def theory_gram_coefficients(
    K: int,
    n: int,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
    *,
    delta: float = 0.0,
    centered: bool = False,
) -> tuple[float, float]:
    """(alpha, sigma) with Hbar*^T Hbar* = alpha (I - sigma J).

    One-hot, c < 1: alpha = alpha_1 = alpha_2 = (1 - c) sqrt(lw/(n lh)) and
    sigma = min(1, c/(lb (1 - c))) (sigma = 1 for lb = 0).  Returns (0, nan) when the
    1-perp part vanishes (c >= 1 - delta).
    """
    p, s = _p_s(delta, centered)
    sol = two_level_solution(K, n, lambda_w, lambda_h, lambda_b, p, s)
    if sol["perp"] == 0.0:
        return 0.0, float("nan")
    return sol["k"] * sol["perp"], 1.0 - sol["ones"] / sol["perp"]


def theory_ssetf(
    K: int,
    n: int,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
    *,
    delta: float = 0.0,
    centered: bool = False,
) -> tuple[float, float]:
    """SSETF parameters (alpha, beta) of the optimal uncentred means Hbar* (beta <= 1 root).

    From Hbar^T Hbar = a (I - sigma J) = alpha^2 (I - (2 beta - beta^2) J):
    alpha = sqrt(a), beta = 1 - sqrt(1 - sigma).  One-hot: beta = 1 (simplex ETF) for
    lb <= c/(1-c), beta = 1 - sqrt(1 - c/(lb(1-c))) -> 0 (orthogonal frame) as lb -> inf.
    """
    a, sigma = theory_gram_coefficients(
        K, n, lambda_w, lambda_h, lambda_b, delta=delta, centered=centered
    )
    if a == 0.0:
        return 0.0, float("nan")
    return float(np.sqrt(a)), float(1.0 - np.sqrt(1.0 - sigma))


def theory_nc3(K: int, sigma: float) -> float:
    """NC3 = ||W^T/||W|| - Mc/||Mc|| ||_F^2 with centred means Mc = Hbar (I - J), when
    W^T = kappa Hbar (Theorem III.1) and Hbar^T Hbar = a (I - sigma J):
    2 - 2 sqrt((K - 1)/(K - sigma)); zero in the simplex-ETF regime (sigma = 1)."""
    return float(2.0 - 2.0 * np.sqrt((K - 1.0) / (K - sigma)))


def theory_objective(
    K: int,
    n: int,
    lambda_w: float,
    lambda_h: float,
    lambda_b: float,
    *,
    delta: float = 0.0,
    centered: bool = False,
) -> float:
    """Optimal UFM objective for the balanced two-level encodings (one-hot, label smoothing,
    centred variants), from the closed-form Zbar and b*:
    f* = (1/2K) ||Zbar + b 1^T - Ybar||^2 + mu sqrt(n) ||Zbar||_* + (lb/2) ||b||^2."""
    p, s = _p_s(delta, centered)
    sol = two_level_solution(K, n, lambda_w, lambda_h, lambda_b, p, s)
    J = np.full((K, K), 1.0 / K)
    Ybar = p * (np.eye(K) - J) + s * J
    b = sol["b"]
    resid = sol["Zbar"] + b[:, None] - Ybar
    mu = np.sqrt(lambda_w * lambda_h)
    nuc = np.linalg.svd(sol["Zbar"], compute_uv=False).sum()
    bias = 0.0 if np.isinf(lambda_b) else 0.5 * lambda_b * float(b @ b)
    return float(0.5 / K * np.sum(resid**2) + mu * np.sqrt(n) * nuc + bias)


def label_smoothing_ssetf(delta: float) -> tuple[float, float]:
    """SSETF parameters of the label-smoothing encoding Y_delta = (1-delta) I + (delta/K) 11^T.

    Y_delta = alpha P (I - beta 11^T/K) with P = I, alpha = 1 - delta and
    **beta = -delta/(1 - delta)** (negative!).  Check: (1-delta)(I + delta/(1-delta) J)
    = (1-delta) I + delta J.  The paper's text (Section IV-B) prints beta = +delta/(1-delta);
    that sign is a typo: (1-delta)(I - delta/(1-delta) J) = (1-delta) I - delta J has
    off-diagonal entries -delta/K < 0.  (The only other beta reproducing the Gram matrix is
    2 - beta = 2 + delta/(1-delta), with the reflected frame P (I - 2J); never +delta/(1-delta).)
    Verified numerically in tests/test_ufm.py::test_label_smoothing_ssetf_sign.
    """
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    return 1.0 - delta, -delta / (1.0 - delta)


def ssetf_matrix(alpha: float, beta: float, K: int, P: np.ndarray | None = None) -> np.ndarray:
    """Shifted simplex ETF M = alpha P (I - beta 11^T/K) (Definition III.1); P = I_K default."""
    M = alpha * (np.eye(K) - beta * np.full((K, K), 1.0 / K))
    return M if P is None else np.asarray(P) @ M


def fit_ssetf(M: np.ndarray, return_residual: bool = False):
    """Fit a shifted simplex ETF to the K columns of M (d x K) by least squares on the Gram.

    For M = alpha P (I - beta J), J = 11^T/K, P semi-orthogonal,
        M^T M = alpha^2 (I - beta J)^2 = alpha^2 (I - (2 beta - beta^2) J)    (J^2 = J).
    Least squares of G = M^T M onto span{I, J} (<I,I> = K, <I,J> = <J,J> = 1) gives
        a = tr(G (I - J)) / (K - 1) = alpha^2,   a + e = 1^T G 1 / K = ||M 1||^2 / K,
    so alpha = sqrt(a) and, taking the root beta <= 1 of 1 - (2 beta - beta^2) = (a+e)/a,
        beta = 1 - ||M 1|| / (sqrt(K) alpha).
    (beta and 2 - beta give the same Gram matrix: P(I - (2-beta)J) = [P(I - 2J)](I - beta J),
    so beta is only identifiable up to that reflection; beta <= 1 is the canonical choice.)

    Returns (alpha, beta), or (alpha, beta, residual) with residual the relative Frobenius
    misfit ||G - a I - e J||_F / ||G||_F (0 iff M is exactly an SSETF).  (nan, nan) if M = 0.
    """
    M = np.asarray(M, dtype=np.float64)
    K = M.shape[1]
    G = M.T @ M
    mean_sq = float(G.sum()) / K
    a = (float(np.trace(G)) - mean_sq) / (K - 1)
    e = mean_sq - a
    gnorm = np.linalg.norm(G)
    if a <= 0.0 or gnorm == 0.0:
        out = (float("nan"), float("nan"))
        return (*out, float("nan")) if return_residual else out
    alpha = float(np.sqrt(a))
    beta = float(1.0 - np.sqrt(max(mean_sq, 0.0)) / alpha)
    if not return_residual:
        return alpha, beta
    resid = G - a * np.eye(K) - e * np.full((K, K), 1.0 / K)
    return alpha, beta, float(np.linalg.norm(resid) / gnorm)
