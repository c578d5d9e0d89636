"""Label construction and tidy metric rows for UFM experiments (class_encoding study).

``sweep_rows(spec)`` solves one UFM instance globally and returns rows
``{metric, value, theory, residual, source}``: ``theory`` is the closed-form prediction
(NaN where no theorem applies), ``residual = |value - theory|`` and ``source`` names the
result the prediction comes from.  The caller attaches the spec columns (``sweep_frame``
does it for a list of specs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import metrics, theory
from .solver import solve

__all__ = [
    "ENCODINGS",
    "UFMSpec",
    "random_orthogonal",
    "make_encoding",
    "make_labels",
    "sweep_rows",
    "sweep_frame",
]

ENCODINGS = ("one_hot", "label_smoothing", "rotated_one_hot", "random")
_NAN = float("nan")


@dataclass(frozen=True)
class UFMSpec:
    """One UFM instance.

    ``n`` is either the common class size (balanced) or a list of K class sizes.
    ``encoding`` in ENCODINGS; ``delta`` is used by label_smoothing, ``seed`` by
    rotated_one_hot (orthogonal Q) and random (Gaussian K x K encoding).  ``center`` subtracts
    the label mean Y 1/N (Theorem III.4).  ``d`` defaults to K.  ``lambda_b = inf`` is the
    bias-free UFM.
    """

    K: int
    n: int | tuple[int, ...]
    lambda_w: float
    lambda_h: float
    lambda_b: float
    d: int | None = None
    encoding: str = "one_hot"
    delta: float = 0.1
    seed: int = 0
    center: bool = False

    @property
    def class_sizes(self) -> tuple[int, ...]:
        if isinstance(self.n, Iterable):
            sizes = tuple(int(x) for x in self.n)
            if len(sizes) != self.K:
                raise ValueError(f"{len(sizes)} class sizes given for K={self.K}")
            return sizes
        return (int(self.n),) * self.K

    @property
    def dim(self) -> int:
        return self.K if self.d is None else int(self.d)


def random_orthogonal(K: int, seed: int) -> np.ndarray:
    """Haar-distributed orthogonal K x K matrix (QR of a Gaussian matrix with sign fix)."""
    A = np.random.default_rng(seed).standard_normal((K, K))
    Q, R = np.linalg.qr(A)
    return Q * np.sign(np.diag(R))


def make_encoding(encoding: str, K: int, *, delta: float = 0.1, seed: int = 0) -> np.ndarray:
    """Class encoding matrix Ybar (K x K), column k = label of class k.

    one_hot: I; label_smoothing: (1 - delta) I + (delta/K) 11^T; rotated_one_hot: Q
    (``random_orthogonal(K, seed)``, Proposition IV.3); random: Gaussian N(0, 1) entries.
    """
    if encoding == "one_hot":
        return np.eye(K)
    if encoding == "label_smoothing":
        return (1.0 - delta) * np.eye(K) + (delta / K) * np.ones((K, K))
    if encoding == "rotated_one_hot":
        return random_orthogonal(K, seed)
    if encoding == "random":
        return np.random.default_rng(seed).standard_normal((K, K))
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")


def make_labels(
    encoding: str,
    class_sizes: int | Sequence[int],
    *,
    K: int | None = None,
    delta: float = 0.1,
    seed: int = 0,
    center: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Label matrix Y = Ybar C (K x N, samples ordered by class) and class assignment.

    ``class_sizes`` is a list of K sizes, or an int n (then ``K`` is required).  With
    ``center`` the label mean is removed: Y - Y 1 1^T / N.  Returns (Y, labels) with
    ``labels`` the length-N integer class of each column.
    """
    if isinstance(class_sizes, Iterable):
        sizes = np.asarray(list(class_sizes), dtype=int)
        if K is not None and K != sizes.size:
            raise ValueError(f"{sizes.size} class sizes given for K={K}")
    else:
        if K is None:
            raise ValueError("K is required when class_sizes is a single integer")
        sizes = np.full(K, int(class_sizes))
    if np.any(sizes < 1):
        raise ValueError("every class needs at least one sample")
    K = sizes.size
    labels = np.repeat(np.arange(K), sizes)
    Y = make_encoding(encoding, K, delta=delta, seed=seed)[:, labels]
    if center:
        Y = Y - Y.mean(axis=1, keepdims=True)
    return Y, labels


def _as_spec(spec: UFMSpec | Mapping[str, Any]) -> UFMSpec:
    if isinstance(spec, UFMSpec):
        return spec
    spec = dict(spec)
    if isinstance(spec.get("n"), list):
        spec["n"] = tuple(spec["n"])
    return UFMSpec(**spec)


def _row(metric: str, value: float, theory_value: float = _NAN, source: str = "") -> dict:
    value, theory_value = float(value), float(theory_value)
    return {
        "metric": metric,
        "value": value,
        "theory": theory_value,
        "residual": abs(value - theory_value),
        "source": source if np.isfinite(theory_value) else "",
    }


def sweep_rows(spec: UFMSpec | Mapping[str, Any]) -> list[dict]:
    """Solve one UFM instance globally and compare NC metrics with the paper's predictions.

    Metrics (theory sources in brackets, NaN theory where none applies):
      bias_norm, bias_deviation (max_k |b_k - b*_k|)  [Thm III.1 one-hot; Prop IV.3 rotated;
          derived for label smoothing; Thm III.4 for lambda_b = 0 or centred labels],
      ssetf_alpha, ssetf_beta, ssetf_fit_residual of the uncentred means  [Thm III.1 / derived],
      gram_residual = ||Hbar^T Hbar - G*||_F / ||G*||_F  [Thm III.1 eq. (4) / derived],
      nc1, nc1_scatter  [Thm IV.1: 0 for any encoding and class sizes],
      nc2_equinorm, nc2_equiangularity, nc2_max_angle  [Cor IV.2 when Hbar is an SSETF],
      nc3 (centred means), nc3_uncentered  [Thm III.1 eq. (3) + Prop IV.3],
      nc3_prime, kappa  [Thm IV.4, balanced],
      objective  [closed form of the two-level encodings], kkt_residual, certificate_gap
          = max(0, ||R||_2/(N sqrt(lw lh)) - 1)  [global optimality: both 0],
      rank, c, critical_lambda_b (informational; value = theory).
    """
    spec = _as_spec(spec)
    K, sizes, d = spec.K, spec.class_sizes, spec.dim
    lw, lh, lb = spec.lambda_w, spec.lambda_h, spec.lambda_b
    Y, labels = make_labels(
        spec.encoding, sizes, delta=spec.delta, seed=spec.seed, center=spec.center
    )
    N = Y.shape[1]
    sol = solve(Y, d, lw, lh, lb)
    Hbar = metrics.class_means(sol.H, labels, K)

    balanced = len(set(sizes)) == 1
    n = sizes[0]
    two_level = balanced and spec.encoding in ("one_hot", "label_smoothing", "rotated_one_hot")
    Q = random_orthogonal(K, spec.seed) if spec.encoding == "rotated_one_hot" else np.eye(K)
    if spec.encoding == "one_hot" and not spec.center:
        src = "Thm III.1"
    elif spec.encoding == "rotated_one_hot" and not spec.center:
        src = "Thm III.1 + Prop IV.3"
    else:
        src = "derived (two-level encoding)"

    # ---- predictions -------------------------------------------------------------
    b_th, b_src = np.full(K, _NAN), ""
    gram_th = None
    alpha_th = beta_th = nc3_th = nc3u_th = obj_th = _NAN
    nc2_th = _NAN
    if two_level:
        delta = spec.delta if spec.encoding == "label_smoothing" else 0.0
        tl = theory.two_level_solution(K, n, lw, lh, lb, 1.0 - delta, 0.0 if spec.center else 1.0)
        b_th, b_src = Q @ tl["b"], src
        gram_th = tl["gram"]
        obj_th = theory.theory_objective(K, n, lw, lh, lb, delta=delta, centered=spec.center)
        if tl["perp"] > 0:
            alpha_th = float(np.sqrt(tl["k"] * tl["perp"]))
            beta_th = float(1.0 - np.sqrt(tl["ones"] / tl["perp"]))
            nc2_th = 0.0
        if np.linalg.eigvalsh(tl["Zbar"]).min() >= -1e-12 and np.trace(gram_th) > 0:
            # W^T = kappa Hbar Q^T: NC3 against M = Hbar P is 2 - 2 tr(Q G P)/(||Hbar|| ||Hbar P||)
            P = np.eye(K) - np.full((K, K), 1.0 / K)
            tr_g, tr_gp = np.trace(gram_th), np.trace(gram_th @ P)
            nc3u_th = 2.0 - 2.0 * np.trace(Q @ gram_th) / tr_g
            if tr_gp > 0:
                nc3_th = 2.0 - 2.0 * np.trace(Q @ gram_th @ P) / np.sqrt(tr_g * tr_gp)
    elif spec.center:
        b_th, b_src = np.zeros(K), "Thm III.4"
    elif lb == 0:
        b_th, b_src = Y.sum(axis=1) / N, "Thm III.4"

    # ---- measured values ---------------------------------------------------------
    alpha, beta, fit_res = fit_ssetf_safe(Hbar)
    gram = Hbar.T @ Hbar
    if gram_th is not None:
        gnorm = np.linalg.norm(gram_th)
        gram_res = np.linalg.norm(gram - gram_th) / (gnorm if gnorm > 0 else 1.0)
    else:
        gram_res = _NAN
    nc2 = metrics.nc2(Hbar)
    kappa_th = theory.theory_kappa(n, lw, lh) if balanced else _NAN
    diag = sol.diagnostics
    c = theory.c_constant(K, n, lw, lh) if balanced else _NAN
    crit = theory.critical_lambda_b(K, n, lw, lh) if balanced else _NAN
    bias_dev = float(np.max(np.abs(sol.b - b_th))) if np.all(np.isfinite(b_th)) else _NAN
    s2 = src if two_level else ""
    return [
        _row("bias_norm", np.linalg.norm(sol.b), np.linalg.norm(b_th), b_src),
        _row("bias_deviation", bias_dev, 0.0 if np.isfinite(bias_dev) else _NAN, b_src),
        _row("ssetf_alpha", alpha, alpha_th, s2),
        _row("ssetf_beta", beta, beta_th, s2),
        _row("ssetf_fit_residual", fit_res, 0.0 if two_level else _NAN, s2),
        _row("gram_residual", gram_res, 0.0 if gram_th is not None else _NAN, s2),
        _row("nc1", metrics.nc1(sol.H, labels, K), 0.0, "Thm IV.1"),
        _row("nc1_scatter", metrics.within_class_scatter(sol.H, labels), 0.0, "Thm IV.1"),
        _row("nc2_equinorm", nc2["equinorm"], nc2_th, "Cor IV.2"),
        _row("nc2_equiangularity", nc2["equiangularity"], nc2_th, "Cor IV.2"),
        _row("nc2_max_angle", nc2["max_angle"], nc2_th, "Cor IV.2"),
        _row("nc3", metrics.nc3(sol.W, Hbar), nc3_th, s2),
        _row("nc3_uncentered", metrics.nc3(sol.W, Hbar, centered=False), nc3u_th, s2),
        _row("nc3_prime", metrics.nc3_prime(sol.W, Hbar), 0.0 if balanced else _NAN, "Thm IV.4"),
        _row("kappa", metrics.fitted_kappa(sol.W, Hbar), kappa_th, "Thm IV.4"),
        _row("objective", sol.objective, obj_th, s2),
        _row("kkt_residual", diag["kkt_residual"], 0.0, "Lemma III.3"),
        _row("certificate_gap", max(0.0, diag["spectral_ratio"] - 1.0), 0.0, "convexity"),
        _row("rank", sol.rank),
        _row("c", c, c, "definition"),
        _row("critical_lambda_b", crit, crit, "Thm III.1"),
    ]


def fit_ssetf_safe(Hbar: np.ndarray) -> tuple[float, float, float]:
    """``theory.fit_ssetf`` with residual, NaNs for fewer than two classes."""
    if Hbar.shape[1] < 2:
        return _NAN, _NAN, _NAN
    return theory.fit_ssetf(Hbar, return_residual=True)


def sweep_frame(specs: Iterable[UFMSpec | Mapping[str, Any]]):
    """Tidy pandas DataFrame: ``sweep_rows`` of every spec with the spec fields as columns."""
    import pandas as pd

    records = []
    for raw in specs:
        spec = _as_spec(raw)
        fields = asdict(spec)
        fields["n"] = str(fields["n"]) if isinstance(fields["n"], tuple) else fields["n"]
        fields["d"] = spec.dim
        records.extend({**fields, **row} for row in sweep_rows(spec))
    return pd.DataFrame.from_records(records)
