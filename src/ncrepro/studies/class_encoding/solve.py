"""class_encoding study (Massion, Makhlouf & Massart, "The role of class encoding in neural
collapse"): UFM experiments, one tidy table, and the paper-style encoding table.

Two experiments, both solved to global optimality with ``ncrepro.ufm.solve``:

``transition``
    one-hot, balanced labels, a log-spaced sweep of the bias regularisation lambda_b that
    always contains the critical value c/(1 - c) (c = K sqrt(n lw lh) < 1): Theorem III.1's
    bias transition of the optimal class means from a simplex ETF (lambda_b <= c/(1-c)) to a
    shifted simplex ETF tending to an orthogonal frame (lambda_b -> inf).
``encodings``
    a fixed lambda_b, a list of encodings (one-hot, label smoothing, rotated one-hot, random)
    and class sizes (balanced and imbalanced): which NC properties survive the encoding
    (Theorem IV.1: NC1 always; Corollary IV.2: NC2 when the means are an SSETF;
    Proposition IV.3: rotation breaks NC3; Theorem IV.4: NC3' always, balanced).

``run_study`` returns one long table (one row per experiment x metric) with the closed-form
prediction next to each measured value (``theory``; NaN where no theorem applies),
``residual = value - theory`` and the ``source`` of the prediction.  A few points are also
solved by plain gradient descent from a random start as an independent check of global
optimality (metric ``gd_objective_gap``).

The config block (``class_encoding:`` in config.yaml)::

    class_encoding:
      enabled: true
      K: 4
      n: 5              # samples per class (balanced)
      d: 6
      lambda_w: 0.005
      lambda_h: 0.005
      transition:       # one-hot, balanced; log-spaced lambda_b plus exactly c/(1-c)
        lambda_b: {min: 1.0e-3, max: 1.0e+2, count: 25}
      encodings:        # the encoding table at a fixed lambda_b
        lambda_b: 0.1
        list: [one_hot, {label_smoothing: 0.1}, {label_smoothing: 0.3}, rotated_one_hot, random]
        class_sizes: [balanced, [3, 5, 7, 9]]
        seed: 0         # orthogonal Q of rotated_one_hot, Gaussian matrix of random
      gd_check:         # independent check by gradient descent at a few points
        transition_lambda_b: [1.0e-3, 1.0e-1, 1.0e+1]   # nearest sweep points (log scale)
        encodings: [random]
        steps: 20000
        lr: 0.5         # capped at 0.9/(1 + lambda_b) (the bias block's step limit)
        seed: 0
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd

from ncrepro import ufm
from ncrepro.config import ConfigError, deep_update

__all__ = [
    "STUDY",
    "COLUMNS",
    "DEFAULT_CONFIG",
    "TABLE_METRICS",
    "experiment_specs",
    "run_experiment",
    "run_study",
    "encoding_table",
    "encoding_label",
]

STUDY = "class_encoding"
COLUMNS = [
    "study",
    "experiment",
    "encoding",
    "delta",
    "seed",
    "class_sizes",
    "K",
    "n",
    "N",
    "d",
    "lambda_w",
    "lambda_h",
    "lambda_b",
    "metric",
    "value",
    "theory",
    "residual",
    "source",
]

DEFAULT_CONFIG: dict[str, Any] = {
    "enabled": True,
    "K": 4,
    "n": 5,
    "d": 6,
    "lambda_w": 0.005,
    "lambda_h": 0.005,
    "transition": {"lambda_b": {"min": 1.0e-3, "max": 1.0e2, "count": 25}},
    "encodings": {
        "lambda_b": 0.1,
        "list": [
            "one_hot",
            {"label_smoothing": 0.1},
            {"label_smoothing": 0.3},
            "rotated_one_hot",
            "random",
        ],
        "class_sizes": ["balanced", [3, 5, 7, 9]],
        "seed": 0,
    },
    "gd_check": {
        "transition_lambda_b": [1.0e-3, 1.0e-1, 1.0e1],
        "encodings": ["random"],
        "steps": 20000,
        "lr": 0.5,
        "seed": 0,
    },
}

_NAN = float("nan")
_SPEC_FIELDS = {f.name for f in fields(ufm.UFMSpec)}
# (metric, column header of the rendered table); the encoding table keeps them in this order
TABLE_METRICS = [
    ("nc1", "NC1"),
    ("nc2_equinorm", "NC2 equinorm"),
    ("nc2_equiangularity", "NC2 equiangularity"),
    ("ssetf_fit_residual", "SSETF fit of H̄ (residual)"),
    ("ssetf_beta", "β of H̄"),
    ("nc3", "NC3 (centred means)"),
    ("nc3_uncentered", "NC3 (H̄, eq. 3)"),
    ("nc3_prime", "NC3′"),
    ("kappa", "κ"),
    ("nc3_prime_weighted", "NC3′ with diag(n_k)"),
    ("encoding_ssetf_residual", "SSETF fit of Ȳ (residual)"),
    ("encoding_ssetf_beta", "β of Ȳ"),
    ("bias_norm", "‖b*‖"),
]


# ---------------------------------------------------------------------------- config


def _block(study_config: Mapping[str, Any] | None) -> dict:
    """The study block merged over DEFAULT_CONFIG (nested dicts merged key by key)."""
    merged = copy.deepcopy(DEFAULT_CONFIG)
    if study_config:
        deep_update(merged, copy.deepcopy(dict(study_config)))
    return merged


def _positive(value, name: str, *, integer: bool = False, allow_zero: bool = False):
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or (value < 0 if allow_zero else value <= 0):
        kind = "integer" if integer else "number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"class_encoding.{name}: expected a finite {kind} {bound}, got {value!r}")
    return int(value) if integer else float(value)


def _lambda_b_grid(spec: Any, crit: float) -> list[float]:
    """Log-spaced sweep {min, max, count} (or an explicit list), plus exactly ``crit``."""
    if isinstance(spec, Mapping):
        lo = _positive(spec.get("min"), "transition.lambda_b.min")
        hi = _positive(spec.get("max"), "transition.lambda_b.max")
        count = _positive(spec.get("count"), "transition.lambda_b.count", integer=True)
        if hi <= lo:
            raise ConfigError("class_encoding.transition.lambda_b: need min < max")
        values = list(np.geomspace(lo, hi, count))
    elif isinstance(spec, Sequence) and not isinstance(spec, str) and spec:
        values = [_positive(v, "transition.lambda_b[]", allow_zero=True) for v in spec]
    else:
        raise ConfigError(
            "class_encoding.transition.lambda_b: expected {min, max, count} or a list of values"
        )
    values = sorted({float(v) for v in values} | {float(crit)})
    return values


def _parse_encoding(entry: Any, default_seed: int) -> tuple[str, float, int]:
    """'one_hot' | {'label_smoothing': delta} | 'rotated_one_hot' | {'random': seed} ..."""
    if isinstance(entry, str):
        name, arg = entry, None
    elif isinstance(entry, Mapping) and len(entry) == 1:
        ((name, arg),) = entry.items()
    else:
        raise ConfigError(
            f"class_encoding.encodings.list: bad entry {entry!r}; use a name or "
            "{label_smoothing: delta} / {rotated_one_hot: seed} / {random: seed}"
        )
    if name not in ufm.ENCODINGS:
        raise ConfigError(
            f"class_encoding.encodings.list: unknown encoding {name!r} (known: {ufm.ENCODINGS})"
        )
    delta, seed = 0.0, default_seed
    if name == "label_smoothing":
        if arg is None:
            raise ConfigError("class_encoding.encodings.list: label_smoothing needs a delta")
        delta = float(arg)
        if not 0.0 <= delta < 1.0:
            raise ConfigError(f"class_encoding: label smoothing delta must be in [0, 1), got {arg}")
    elif arg is not None:
        if name == "one_hot":
            raise ConfigError("class_encoding.encodings.list: one_hot takes no argument")
        seed = _positive(arg, f"encodings.list.{name} (seed)", integer=True, allow_zero=True)
    return name, delta, seed


def _parse_sizes(entry: Any, K: int, n: int) -> tuple[int, ...]:
    if entry == "balanced":
        return (n,) * K
    if isinstance(entry, int) and not isinstance(entry, bool):
        return (_positive(entry, "encodings.class_sizes[]", integer=True),) * K
    if isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == K:
        return tuple(_positive(v, "encodings.class_sizes[][]", integer=True) for v in entry)
    raise ConfigError(
        f"class_encoding.encodings.class_sizes: {entry!r} is neither 'balanced', an int, "
        f"nor a list of K={K} class sizes"
    )


def _nearest_log(values: Sequence[float], targets: Sequence[float]) -> set[float]:
    positive = [v for v in values if v > 0]
    chosen = set()
    for t in targets:
        t = _positive(t, "gd_check.transition_lambda_b[]")
        chosen.add(min(positive, key=lambda v, t=t: abs(math.log(v / t))))
    return chosen


def experiment_specs(study_config: Mapping[str, Any] | None) -> list[dict]:
    """Expand the ``class_encoding`` config block into a list of experiment dicts.

    Each dict has ``experiment`` ("transition" | "encodings"), the ``ncrepro.ufm.UFMSpec``
    fields (K, n, d, lambda_w, lambda_h, lambda_b, encoding, delta, seed, center) and
    ``gd_check`` (bool: also run gradient descent).  ``n`` is an int for balanced classes and
    a tuple of K class sizes otherwise.  Missing keys fall back to ``DEFAULT_CONFIG``.

    The transition sweep is one-hot and balanced (the hypotheses of Theorem III.1); it needs
    c = K sqrt(n lw lh) < 1 and always contains lambda_b = c/(1 - c) exactly.
    """
    cfg = _block(study_config)
    K = _positive(cfg["K"], "K", integer=True)
    n = _positive(cfg["n"], "n", integer=True)
    d = _positive(cfg["d"], "d", integer=True)
    lw = _positive(cfg["lambda_w"], "lambda_w")
    lh = _positive(cfg["lambda_h"], "lambda_h")
    if K < 2:
        raise ConfigError(f"class_encoding.K: need at least 2 classes, got {K}")
    if d < K:
        raise ConfigError(f"class_encoding.d: the UFM needs d >= K, got d={d} < K={K}")
    c = ufm.c_constant(K, n, lw, lh)
    if c >= 1.0:
        raise ConfigError(
            f"class_encoding: c = K sqrt(n lambda_w lambda_h) = {c:.4g} >= 1 gives the zero "
            "solution W = H = 0 (no transition); lower lambda_w / lambda_h"
        )
    crit = ufm.critical_lambda_b(K, n, lw, lh)
    gd = cfg.get("gd_check") or {}
    base = {"K": K, "d": d, "lambda_w": lw, "lambda_h": lh, "center": False}

    specs: list[dict] = []
    lbs = _lambda_b_grid(cfg["transition"]["lambda_b"], crit)
    gd_lbs = _nearest_log(lbs, gd.get("transition_lambda_b") or [])
    for lb in lbs:
        specs.append(
            {
                "experiment": "transition",
                **base,
                "n": n,
                "lambda_b": lb,
                "encoding": "one_hot",
                "delta": 0.0,
                "seed": 0,
                "gd_check": lb in gd_lbs,
            }
        )

    enc = cfg["encodings"]
    lb = _positive(enc["lambda_b"], "encodings.lambda_b", allow_zero=True)
    seed = _positive(enc.get("seed", 0), "encodings.seed", integer=True, allow_zero=True)
    gd_encodings = set(gd.get("encodings") or [])
    for sizes_entry in enc["class_sizes"]:
        sizes = _parse_sizes(sizes_entry, K, n)
        for entry in enc["list"]:
            name, delta, enc_seed = _parse_encoding(entry, seed)
            specs.append(
                {
                    "experiment": "encodings",
                    **base,
                    "n": sizes[0] if len(set(sizes)) == 1 else sizes,
                    "lambda_b": lb,
                    "encoding": name,
                    "delta": delta,
                    "seed": enc_seed,
                    "gd_check": name in gd_encodings,
                }
            )
    return specs


# ---------------------------------------------------------------------------- experiments


def _row(metric: str, value: float, theory: float = _NAN, source: str = "") -> dict:
    value, theory = float(value), float(theory)
    return {
        "metric": metric,
        "value": value,
        "theory": theory,
        "residual": value - theory,
        "source": source if np.isfinite(theory) else "",
    }


def _labels(spec: ufm.UFMSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Y, labels = ufm.make_labels(
        spec.encoding, spec.class_sizes, delta=spec.delta, seed=spec.seed, center=spec.center
    )
    Ybar = ufm.make_encoding(spec.encoding, spec.K, delta=spec.delta, seed=spec.seed)
    return Y, labels, Ybar


def _extra_rows(spec: ufm.UFMSpec, gd_opts: Mapping[str, Any] | None) -> list[dict]:
    """Metrics beyond ``ufm.sweep_rows``: rank and self-duality predictions, the weighted NC3'
    identity (any class sizes), the SSETF fit of the encoding itself and the GD check."""
    K, sizes, d = spec.K, spec.class_sizes, spec.dim
    lw, lh, lb = spec.lambda_w, spec.lambda_h, spec.lambda_b
    Y, labels, Ybar = _labels(spec)
    sol = ufm.solve(Y, d, lw, lh, lb)
    Hbar = ufm.class_means(sol.H, labels, K)
    balanced = len(set(sizes)) == 1
    n = sizes[0]
    two_level = balanced and not spec.center and spec.encoding != "random"
    rows = []

    # rank of W H and self-duality W^T = kappa Hbar (Q^T for rotated labels)
    rank_th = sd_th = _NAN
    src = ""
    if two_level:
        delta = spec.delta if spec.encoding == "label_smoothing" else 0.0
        tl = ufm.two_level_solution(K, n, lw, lh, lb, 1.0 - delta, 1.0)
        perp_on = tl["perp"] > 0
        ones_on = tl["ones"] > 1e-12 * max(tl["perp"], 1.0)
        rank_th = (K - 1) * perp_on + ones_on
        G = tl["gram"]
        Q = ufm.random_orthogonal(K, spec.seed) if spec.encoding == "rotated_one_hot" else None
        if np.trace(G) > 0:
            if Q is None:
                sd_th = 0.0
            else:
                D = Q - np.eye(K)
                sd_th = float(np.sqrt(max(np.trace(D @ G @ D.T), 0.0) / np.trace(G)))
        src = {
            "one_hot": "Thm III.1",
            "label_smoothing": "derived (two-level encoding)",
            "rotated_one_hot": "Thm III.1 + Prop IV.3",
        }[spec.encoding]
    kappa = ufm.theory_kappa(n, lw, lh) if balanced else _NAN
    if balanced and np.linalg.norm(Hbar) > 0:
        sd = np.linalg.norm(sol.W.T - kappa * Hbar) / np.linalg.norm(kappa * Hbar)
    else:
        sd = _NAN
    rows.append(_row("rank", sol.rank, rank_th, src and f"{src}: rank of eq. (4)"))
    rows.append(_row("self_duality_residual", sd, sd_th, src and f"{src}: eq. (3)"))

    # lw W^T W = lh Hbar diag(n_k) Hbar^T: the identity behind Thm IV.4, any class sizes
    A = lw * sol.W.T @ sol.W
    B = lh * (Hbar * np.asarray(sizes, float)) @ Hbar.T
    nb = np.linalg.norm(B)
    weighted = float(np.linalg.norm(A - B) / nb) if nb > 0 else _NAN
    rows.append(_row("nc3_prime_weighted", weighted, 0.0, "Thm IV.4 proof (any class sizes)"))

    # the encoding itself as a shifted simplex ETF (Definition III.1, Section IV-B)
    _, beta_y, res_y = ufm.fit_ssetf(Ybar, return_residual=True)
    if spec.encoding == "label_smoothing":
        beta_th, res_th = ufm.label_smoothing_ssetf(spec.delta)[1], 0.0
        ysrc = "Sec. IV-B (sign corrected: -delta/(1-delta))"
    elif spec.encoding in ("one_hot", "rotated_one_hot"):
        beta_th, res_th, ysrc = 0.0, 0.0, "Sec. IV-B / Def. II.2 (orthogonal frame)"
    else:
        beta_th = res_th = _NAN
        ysrc = ""
    rows.append(_row("encoding_ssetf_beta", beta_y, beta_th, ysrc))
    rows.append(_row("encoding_ssetf_residual", res_y, res_th, ysrc))

    if gd_opts is not None:
        lr = min(float(gd_opts.get("lr", 0.5)), 0.9 / (1.0 + lb))
        gd = ufm.gradient_descent(
            Y,
            d,
            lw,
            lh,
            lb,
            seed=int(gd_opts.get("seed", 0)),
            lr=lr,
            steps=int(gd_opts.get("steps", 20000)),
            init_scale=0.5,
        )
        gap = (gd.objective - sol.objective) / abs(sol.objective)
        rows.append(_row("gd_objective_gap", gap, 0.0, "global optimality (GD, random init)"))
    return rows


def run_experiment(spec: Mapping[str, Any], gd_opts: Mapping[str, Any] | None = None) -> list:
    """All metric rows of one experiment dict (from ``experiment_specs``), spec columns
    attached; ``gd_opts`` (steps, lr, seed) adds the gradient-descent check."""
    uspec = ufm.UFMSpec(
        **{
            k: (tuple(v) if k == "n" and not isinstance(v, int) else v)
            for k, v in spec.items()
            if k in _SPEC_FIELDS
        }
    )
    sizes = uspec.class_sizes
    balanced = len(set(sizes)) == 1
    meta = {
        "study": STUDY,
        "experiment": spec["experiment"],
        "encoding": uspec.encoding,
        "delta": float(uspec.delta) if uspec.encoding == "label_smoothing" else 0.0,
        "seed": int(uspec.seed),
        "class_sizes": ",".join(str(s) for s in sizes),
        "K": int(uspec.K),
        "n": int(sizes[0]) if balanced else pd.NA,
        "N": int(sum(sizes)),
        "d": int(uspec.dim),
        "lambda_w": float(uspec.lambda_w),
        "lambda_h": float(uspec.lambda_h),
        "lambda_b": float(uspec.lambda_b),
    }
    base = ufm.sweep_rows(uspec)
    for row in base:  # signed residual, as everywhere in this table
        row["residual"] = row["value"] - row["theory"]
        if row["metric"] in ("nc1", "nc1_scatter") and not balanced:
            row["source"] = "Thm IV.1 proof (any class sizes)"
        if row["metric"].startswith("nc2_") and row["source"] and uspec.encoding != "one_hot":
            # the means are an SSETF by the two-level closed form (for label smoothing the
            # paper calls NC2 unproven), then Cor IV.2
            row["source"] = (
                "Prop IV.3 + Cor IV.2"
                if uspec.encoding == "rotated_one_hot"
                else "Cor IV.2 + derived SSETF means"
            )
    by_metric = {r["metric"]: i for i, r in enumerate(base)}
    for extra in _extra_rows(uspec, gd_opts):
        if extra["metric"] in by_metric:
            base[by_metric[extra["metric"]]] = extra
        else:
            base.append(extra)
    return [{**meta, **row} for row in base]


def run_study(study_config: Mapping[str, Any] | None) -> pd.DataFrame:
    """Solve every experiment of the study; one tidy long table (columns ``COLUMNS``)."""
    cfg = _block(study_config)
    gd_opts = cfg.get("gd_check") or {}
    records = []
    for spec in experiment_specs(cfg):
        records.extend(run_experiment(spec, gd_opts if spec["gd_check"] else None))
    table = pd.DataFrame.from_records(records, columns=COLUMNS)
    table["n"] = table["n"].astype("Int64")
    return table


# ---------------------------------------------------------------------------- encoding table


def encoding_label(encoding: str, delta: float = 0.0, seed: int = 0) -> str:
    """Human-readable name of an encoding (table rows, captions)."""
    if encoding == "one_hot":
        return "one-hot"
    if encoding == "label_smoothing":
        return f"label smoothing δ={delta:g}"
    if encoding == "rotated_one_hot":
        return f"rotated one-hot (Q, seed {seed})"
    if encoding == "random":
        return f"random Gaussian (seed {seed})"
    return encoding


def encoding_table(table: pd.DataFrame) -> pd.DataFrame:
    """Paper-style table of the ``encodings`` experiment: one row per (encoding, class sizes).

    Columns: ``encoding`` (readable label), ``encoding_key``, ``delta``, ``seed``,
    ``class_sizes``, ``balanced``, ``lambda_b``; then ``<metric>_value`` and
    ``<metric>_theory`` for every metric of ``TABLE_METRICS`` (theory NaN where no theorem
    applies), and ``encoding_beta_paper`` (the beta the paper prints for label smoothing,
    +delta/(1-delta); compare with ``encoding_ssetf_beta_value``).
    """
    rows = table[table["experiment"] == "encodings"]
    keys = ["encoding", "delta", "seed", "class_sizes", "lambda_b"]
    out = []
    for key, group in rows.groupby(keys, sort=False):
        enc, delta, seed, sizes, lb = key
        by = group.set_index("metric")
        sizes_list = [int(s) for s in str(sizes).split(",")]
        record = {
            "encoding": encoding_label(enc, delta, seed),
            "encoding_key": enc,
            "delta": float(delta),
            "seed": int(seed),
            "class_sizes": str(sizes),
            "balanced": len(set(sizes_list)) == 1,
            "lambda_b": float(lb),
        }
        for metric, _ in TABLE_METRICS:
            has = metric in by.index
            record[f"{metric}_value"] = float(by.at[metric, "value"]) if has else _NAN
            record[f"{metric}_theory"] = float(by.at[metric, "theory"]) if has else _NAN
        record["encoding_beta_paper"] = (
            float(delta / (1.0 - delta)) if enc == "label_smoothing" else _NAN
        )
        out.append(record)
    frame = pd.DataFrame.from_records(out)
    if frame.empty:
        return frame
    # balanced block first, then each imbalanced configuration; config order within a block
    frame["_block"] = (~frame["balanced"]).astype(int)
    frame = frame.sort_values("_block", kind="stable").drop(columns="_block")
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------------------- command line


def encoding_cell_sources(table: pd.DataFrame, wide: pd.DataFrame) -> dict[str, list[dict]]:
    """For `ncrepro audit --cell`: the long-table rows behind each encoding-table cell."""
    rows = table[table["experiment"] == "encodings"]
    keep = [
        "encoding",
        "delta",
        "seed",
        "class_sizes",
        "lambda_b",
        "metric",
        "value",
        "theory",
        "residual",
        "source",
    ]
    cells = {}
    for i, record in wide.iterrows():
        match = rows[
            (rows["encoding"] == record["encoding_key"])
            & (rows["delta"] == record["delta"])
            & (rows["seed"] == record["seed"])
            & (rows["class_sizes"] == record["class_sizes"])
        ]
        for metric, _ in TABLE_METRICS:
            sources = match.loc[match["metric"] == metric, keep].to_dict("records")
            cells[f"{i}|{metric}_value"] = sources
            cells[f"{i}|{metric}_theory"] = sources
    return cells
