"""Claims table of the class_encoding study (Massion, Makhlouf, Massart 2026, "The role of
class encoding in neural collapse"), computed from the study's long table.

The long table (results/tables/class_encoding.parquet) has one row per (experiment, metric)
of a globally solved UFM instance, with ``value``, the closed-form ``theory`` (NaN where no
result applies), ``residual = value - theory`` and ``source`` (the theorem the closed form
comes from, e.g. "Thm III.1", "Thm IV.1 proof (any class sizes)", "Prop IV.3 + Cor IV.2").

Two kinds of claims:

* one per result of the paper that has rows (Theorem III.1, Theorem III.4, Lemma III.3,
  Theorem IV.1, Corollary IV.2, Proposition IV.3, Theorem IV.4, the SSETF encodings of
  Sec. IV-B), plus the premise that the solutions are global minimisers and this project's
  own two-level closed form; each is judged on the scaled residual of its rows.  A source
  the catalogue does not know still gets a row (``closed_form_<source>``), so no
  theory-bearing row of the table is left out;
* statements checked on the values themselves: the headline ETF -> OF transition, the
  conjecture of Sec. IV-B, and the two places where the paper's printed statement differs
  from what its own closed forms give (label smoothing's beta sign; NC3 with the usual
  centred class means beyond the critical lambda_b), each with its own verdict.

All thresholds are the module constants below.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ncrepro.claims import Claim, claims_frame, fmt, note
from ncrepro.studies import TableOutput

__all__ = ["TOL", "SCALE_FLOOR", "INFORMATIONAL_METRICS", "claims", "claims_table"]

# ---------------------------------------------------------------------------- the rules
# Agreement of numerics with a closed form: |value - theory| <= TOL * max(SCALE_FLOOR, |theory|)
# (absolute for quantities of order <= 1, relative beyond: kappa ~ 2, rank = K, ...).  The
# solver is exact up to rounding; 1e-6 is the tolerance the encoding table already uses and
# leaves room for the square-root conditioning of the SSETF beta fit at beta = 1 (~1e-8).
TOL = 1e-6
SCALE_FLOOR = 1.0
# A matrix "is" an SSETF / NC holds when its defining residual (Gram fit, NC metric) <= TOL.
# Rows whose value equals the theory by construction (constants of the set-up) prove nothing.
INFORMATIONAL_METRICS = frozenset({"c", "critical_lambda_b"})
# lambda_b counts as <= c/(1-c) within this relative rounding (the sweep contains it exactly)
CRIT_RTOL = 1e-12

_RESIDUAL_STAT = (
    f"max over the rows of abs(value - theory) / max({SCALE_FLOOR:g}, abs(theory)), theory = "
    "the closed form named in the row's source"
)
_RESIDUAL_RULE = f"scaled residual <= {TOL:g}"


# ---------------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class _ByResidual:
    """A claim judged on the scaled residual of the rows whose ``source`` it owns."""

    claim: Claim
    owns: Callable[[str], bool]
    absent: str  # why there are no rows, when there are none


def _residual_claim(claim_id: str, claim: str, paper_ref: str, what: str) -> Claim:
    return Claim(
        claim_id=claim_id,
        claim=claim,
        paper_ref=paper_ref,
        statistic=f"{_RESIDUAL_STAT} ({what})",
        criterion=_RESIDUAL_RULE,
    )


BY_RESIDUAL = [
    _ByResidual(
        _residual_claim(
            "global_optimum",
            "The numerical solutions are global minimisers of the UFM (2) (premise of every "
            "result below; a check of this run, not a claim of the paper).",
            "premise of Thms III.1-IV.4 (global minimisers)",
            "metrics certificate_gap = max(0, spectral_norm(R) / (N sqrt(lw lh)) - 1) of the "
            "convex reformulation and gd_objective_gap = relative objective gap of plain gradient "
            "descent from a random start; both 0 in theory",
        ),
        lambda s: s == "convexity" or s.startswith("global optimality"),
        "no certificate or gradient-descent rows in the table",
    ),
    _ByResidual(
        _residual_claim(
            "lemma_iii_3",
            "Any global minimiser satisfies the first-order optimality conditions (6)-(8), "
            "for any encoding and class sizes.",
            "Lemma III.3",
            "metric kkt_residual, theory 0",
        ),
        lambda s: s.startswith("Lemma III.3"),
        "no kkt_residual rows in the table",
    ),
    _ByResidual(
        _residual_claim(
            "thm_iii_1",
            "One-hot labels, balanced classes, c = K sqrt(n lw lh) < 1: every global "
            "minimiser has H* = Hbar* C, W*^T = sqrt(n lh / lw) Hbar* (eq. 3), "
            "Hbar*^T Hbar* of the two-regime form (4) switching at lambda_b = c/(1-c), and "
            "the bias b* of eq. (5).",
            "Theorem III.1, eqs. (3)-(5)",
            "one-hot balanced rows: bias_norm, bias_deviation, Gram residual, SSETF "
            "alpha / beta / fit residual, rank, self-duality residual, NC3 (centred and "
            "uncentred), objective; informational rows c, critical_lambda_b left out",
        ),
        lambda s: s.startswith("Thm III.1") and "Prop IV.3" not in s,
        "no one-hot balanced rows in the table",
    ),
    _ByResidual(
        _residual_claim(
            "thm_iii_4",
            "The bias centres the labels: with lambda_b = 0 the optimal bias is b* = Y 1/N, "
            "and with centred labels b* = 0 for every lambda_b >= 0, for any encoding.",
            "Theorem III.4",
            "bias_norm and bias_deviation = max_k abs(b_k - b*_k) of the rows with lambda_b = 0 "
            "or centred labels",
        ),
        lambda s: s.startswith("Thm III.4"),
        "no rows with lambda_b = 0 or centred labels in this run (the configured sweeps "
        "have lambda_b > 0 and uncentred labels)",
    ),
    _ByResidual(
        _residual_claim(
            "thm_iv_1",
            "Variability collapse (NC1, H* = Hbar* C) holds at every global minimiser, for "
            "any encoding and any lambda_b >= 0 (balanced in the theorem; Sec. IV-A states "
            "it for imbalanced classes too).",
            "Theorem IV.1, Sec. IV-A",
            "metrics nc1 = (1/K) tr(Sigma_W Sigma_B^+) and nc1_scatter (relative within-class "
            "scatter), theory 0, every encoding and class sizes",
        ),
        lambda s: s.startswith("Thm IV.1"),
        "no nc1 rows in the table",
    ),
    _ByResidual(
        _residual_claim(
            "cor_iv_2",
            "If the optimal means Hbar* form a shifted simplex ETF, the centred means form a "
            "simplex ETF (NC2).",
            "Corollary IV.2 (via Proposition III.2)",
            "metrics nc2_equinorm, nc2_equiangularity, nc2_max_angle of the centred means, "
            "theory 0, on the rows whose closed form makes Hbar* an SSETF (one-hot, label "
            "smoothing, rotated one-hot; balanced)",
        ),
        lambda s: "Cor IV.2" in s,
        "no rows where the closed form makes Hbar* an SSETF (needs a balanced one-hot, "
        "label-smoothing or rotated encoding)",
    ),
    _ByResidual(
        _residual_claim(
            "prop_iv_3",
            "Rotating the labels by an orthogonal Q maps the minimisers to (Q W*, H*, Q b*): "
            "the class means are unchanged and the self-duality W*^T ~ Hbar* (NC3) breaks.",
            "Proposition IV.3, Sec. IV-C",
            "rotated one-hot rows: bias, Gram / SSETF of Hbar*, rank, objective, and NC3 and "
            "self-duality residual against their values predicted from Q (non-zero)",
        ),
        lambda s: "Prop IV.3" in s and "Cor IV.2" not in s,
        "no rotated one-hot (balanced) encoding in this run",
    ),
    _ByResidual(
        _residual_claim(
            "thm_iv_4",
            "Balanced classes, any encoding, any lambda_b: NC3' holds, W*^T W* = kappa^2 "
            "Hbar* Hbar*^T with kappa = sqrt(lh n / lw); the proof's identity lw W^T W = "
            "lh Hbar diag(n_k) Hbar^T holds for any class sizes.",
            "Theorem IV.4 and its proof",
            "metrics nc3_prime (normalised Gram distance, theory 0), kappa (theory "
            "sqrt(lh n / lw)), balanced; nc3_prime_weighted (relative residual of the "
            "weighted identity, theory 0), any class sizes",
        ),
        lambda s: s.startswith("Thm IV.4"),
        "no nc3_prime rows in the table",
    ),
    _ByResidual(
        _residual_claim(
            "encodings_are_ssetf",
            "One-hot (alpha = 1, beta = 0) and label-smoothing encodings are shifted simplex "
            "ETFs (Definition III.1).",
            "Sec. IV-B, Definitions II.2 / III.1",
            "metrics encoding_ssetf_residual (relative Gram-fit misfit of the encoding Ybar, "
            "theory 0) and encoding_ssetf_beta (fitted beta of Ybar; theory 0 for one-hot and "
            "-delta/(1-delta) for label smoothing, the sign the definition gives)",
        ),
        lambda s: s.startswith("Sec. IV-B"),
        "no one-hot or label-smoothing encoding rows in the table",
    ),
    _ByResidual(
        _residual_claim(
            "derived_two_level",
            "Label-smoothing minimisers (balanced) match this project's two-level closed form "
            "(Thm III.1's derivation with Ybar = p(I - J) + sJ; not a claim of the paper, "
            "which calls NC2 for label smoothing unproven).",
            "derived here (ncrepro.ufm.theory), extends Theorem III.1",
            "label-smoothing rows: bias, Gram / SSETF of Hbar*, rank, self-duality, NC3, objective",
        ),
        lambda s: s.startswith("derived"),
        "no balanced label-smoothing encoding in this run",
    ),
]

ETF_BELOW_CRITICAL = Claim(
    claim_id="etf_below_critical",
    claim="One-hot, balanced: for lambda_b <= c/(1-c) the uncentred optimal class means form a "
    "simplex ETF (SSETF beta = 1).",
    paper_ref="Theorem III.1 eq. (4), Sec. III-A, abstract",
    statistic="max abs(beta - 1) over the one-hot balanced rows with lambda_b <= c/(1-c), beta = "
    "SSETF beta fitted to the solver's Hbar* (metric ssetf_beta, root beta <= 1)",
    criterion=f"max abs(beta - 1) <= {TOL:g}",
)
OF_BEYOND_CRITICAL = Claim(
    claim_id="of_beyond_critical",
    claim="One-hot, balanced: as lambda_b grows beyond c/(1-c) the optimal class means move "
    "continuously from the simplex ETF towards an orthogonal frame (beta decreasing to 0).",
    paper_ref="Theorem III.1, Sec. III-A, abstract",
    statistic="largest change beta(lambda_b[i+1]) - beta(lambda_b[i]) between consecutive "
    "lambda_b > c/(1-c) of the one-hot balanced rows (fitted SSETF beta of the solver's Hbar*, "
    "averaged over rows sharing a lambda_b)",
    criterion="< 0 (beta strictly decreasing in lambda_b beyond c/(1-c))",
)
LS_BETA_PRINTED = Claim(
    claim_id="ls_beta_as_printed",
    claim="Label smoothing Ybar = (1-delta) I + (delta/K) 11^T is the SSETF with alpha = 1-delta, "
    "beta = +delta/(1-delta), P = I (as printed).",
    paper_ref="Sec. IV-B (text after Corollary IV.2)",
    statistic="max over the label-smoothing deltas > 0 of min(abs(beta - b_p), "
    "abs(2 - beta - b_p)), beta = SSETF beta fitted to Ybar (metric encoding_ssetf_beta), "
    "b_p = +delta/(1-delta) the printed value; both roots beta and 2 - beta (same Gram "
    "matrix) are allowed",
    criterion=f"<= {TOL:g}",
)
NC3_CENTRED_ONE_HOT = Claim(
    claim_id="nc3_centred_one_hot",
    claim="One-hot, balanced: the global minimisers satisfy NC3 (W*^T aligned with the class "
    "means), read with NC3's usual centred class means M = Hbar*(I - J) (Papyan et al.).",
    paper_ref="Theorem III.1 ('satisfy NC1 and NC3'), Sec. IV-C first sentence",
    statistic="max over the one-hot balanced rows of metric nc3 = fro(W^T / fro(W) - M / fro(M))^2 "
    "(fro: Frobenius norm) with the centred means M",
    criterion=f"max nc3 <= {TOL:g}",
)
SSETF_CONJECTURE = Claim(
    claim_id="ssetf_conjecture",
    claim="Conjecture: with balanced classes, Hbar* is an SSETF if and only if the encoding "
    "Ybar is an SSETF.",
    paper_ref="Sec. IV-B (conjecture after Corollary IV.2)",
    statistic="number of balanced encodings where 'Hbar* is an SSETF' (ssetf_fit_residual <= "
    f"{TOL:g}) and 'Ybar is an SSETF' (encoding_ssetf_residual <= {TOL:g}) disagree",
    criterion="0 disagreements, with at least one SSETF and one non-SSETF encoding run "
    "(both directions of the 'iff'); a finite set of encodings can only fail to refute it",
)


VALUE_CLAIMS = [
    ETF_BELOW_CRITICAL,
    OF_BEYOND_CRITICAL,
    SSETF_CONJECTURE,
    LS_BETA_PRINTED,
    NC3_CENTRED_ONE_HOT,
]
# row order of the table: the premise, then the paper's order
ORDER = [
    "global_optimum",
    "thm_iii_1",
    "etf_below_critical",
    "of_beyond_critical",
    "nc3_centred_one_hot",
    "lemma_iii_3",
    "thm_iii_4",
    "thm_iv_1",
    "cor_iv_2",
    "encodings_are_ssetf",
    "ls_beta_as_printed",
    "ssetf_conjecture",
    "prop_iv_3",
    "thm_iv_4",
    "derived_two_level",
]


# ---------------------------------------------------------------------------- helpers
def _has_theory(table: pd.DataFrame) -> pd.DataFrame:
    keep = table["theory"].notna() & ~table["metric"].isin(INFORMATIONAL_METRICS)
    return table[keep]


def _scaled_residual(rows: pd.DataFrame) -> pd.Series:
    scale = np.maximum(SCALE_FLOOR, rows["theory"].abs())
    return rows["residual"].abs() / scale


def _worst_by_metric(rows: pd.DataFrame, scaled: pd.Series, limit: int = 4) -> str:
    by = scaled.groupby(rows["metric"]).max().sort_values(ascending=False)
    parts = [f"{m} {fmt(v, 2)}" for m, v in by.head(limit).items()]
    more = f" (+{len(by) - limit} metrics)" if len(by) > limit else ""
    return "worst scaled residual per metric: " + "; ".join(parts) + more


def _count_by_experiment(rows: pd.DataFrame) -> str:
    counts = rows.groupby("experiment").size()
    return "rows: " + ", ".join(f"{exp} {n}" for exp, n in counts.items())


def _judge_residual(claim: Claim, rows: pd.DataFrame, absent: str) -> dict:
    if rows.empty:
        return claim.untestable(absent)
    scaled = _scaled_residual(rows)
    bad = ~np.isfinite(scaled)
    if bad.any():
        metrics = ", ".join(sorted(rows.loc[bad, "metric"].unique()))
        return claim.untestable(
            f"{int(bad.sum())} of {len(rows)} rows have a non-finite value ({metrics})",
            n=len(rows),
        )
    value = float(scaled.max())
    detail = f"{_count_by_experiment(rows)}; {_worst_by_metric(rows, scaled)}"
    return claim.judged(value, value <= TOL, len(rows), detail)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "unnamed"


def _fallback_claims(theory_rows: pd.DataFrame, owned: pd.Series) -> list[dict]:
    """One row per source the catalogue does not know, so no closed form is left out."""
    rows = []
    for source, group in theory_rows[~owned].groupby("source", sort=True):
        claim = _residual_claim(
            f"closed_form_{_slug(str(source))}",
            f"Numerics agree with the closed form labelled '{source}'.",
            str(source) or "unlabelled",
            f"metrics {', '.join(sorted(group['metric'].unique()))}",
        )
        rows.append(_judge_residual(claim, group, "no rows"))
    return rows


def _one_hot_balanced(table: pd.DataFrame) -> pd.DataFrame:
    """One-hot rows with equal class sizes, with their critical lambda_b = c/(1-c) attached."""
    rows = table[(table["encoding"] == "one_hot") & table["n"].notna()].copy()
    if rows.empty:
        return rows.assign(critical=pd.Series(dtype=float))
    n = rows["n"].astype(float)
    c = rows["K"] * np.sqrt(n * rows["lambda_w"] * rows["lambda_h"])
    rows["critical"] = np.where(c < 1.0, c / (1.0 - c), np.nan)
    return rows[rows["critical"].notna()]


def _below_critical(rows: pd.DataFrame) -> pd.Series:
    return rows["lambda_b"] <= rows["critical"] * (1.0 + CRIT_RTOL)


# ---------------------------------------------------------------------------- value claims
def _etf_below_critical(table: pd.DataFrame) -> dict:
    """max abs(beta - 1) of the fitted SSETF beta of one-hot balanced Hbar*, lambda_b <= c/(1-c)."""
    rows = _one_hot_balanced(table)
    rows = rows[(rows["metric"] == "ssetf_beta") & _below_critical(rows)]
    rows = rows[np.isfinite(rows["value"])]
    if rows.empty:
        return ETF_BELOW_CRITICAL.untestable(
            "no one-hot balanced ssetf_beta rows with lambda_b <= c/(1-c) (c < 1)"
        )
    dev = (rows["value"] - 1.0).abs()
    value = float(dev.max())
    worst = rows.loc[dev.idxmax()]
    detail = (
        f"{len(rows)} rows, lambda_b {fmt(rows['lambda_b'].min())}..{fmt(rows['lambda_b'].max())}"
        f" (c/(1-c) = {fmt(rows['critical'].iloc[0], 4)}); largest abs(beta - 1) at lambda_b = "
        f"{fmt(worst['lambda_b'])}"
    )
    return ETF_BELOW_CRITICAL.judged(value, value <= TOL, len(rows), detail)


def _of_beyond_critical(table: pd.DataFrame) -> dict:
    """Largest consecutive change of beta over lambda_b > c/(1-c) (negative: decreasing)."""
    rows = _one_hot_balanced(table)
    rows = rows[(rows["metric"] == "ssetf_beta") & ~_below_critical(rows)]
    rows = rows[np.isfinite(rows["value"])]
    curve = rows.groupby("lambda_b")["value"].mean().sort_index()
    if len(curve) < 2:
        return OF_BEYOND_CRITICAL.untestable(
            f"needs >= 2 values of lambda_b > c/(1-c) with one-hot balanced rows, got {len(curve)}",
            n=len(curve),
        )
    steps = np.diff(curve.to_numpy())
    value = float(steps.max())
    detail = (
        f"beta {fmt(curve.iloc[0])} at lambda_b = {fmt(curve.index[0])} -> "
        f"{fmt(curve.iloc[-1])} at lambda_b = {fmt(curve.index[-1])} "
        f"(c/(1-c) = {fmt(rows['critical'].iloc[0], 4)}; beta = 0 is the orthogonal frame)"
    )
    return OF_BEYOND_CRITICAL.judged(value, value < 0.0, len(curve), detail)


def _ls_beta_as_printed(table: pd.DataFrame) -> dict:
    """Distance of the fitted beta of the label-smoothing encoding from the printed +d/(1-d)."""
    rows = table[
        (table["encoding"] == "label_smoothing")
        & (table["metric"] == "encoding_ssetf_beta")
        & (table["delta"] > 0)
        & np.isfinite(table["value"])
    ]
    per_delta = rows.groupby("delta")["value"].mean()  # Ybar does not depend on class sizes
    if per_delta.empty:
        return LS_BETA_PRINTED.untestable("no label-smoothing encoding with delta > 0 in this run")
    parts, gaps = [], []
    for delta, beta in per_delta.items():
        printed = delta / (1.0 - delta)
        gaps.append(min(abs(beta - printed), abs(2.0 - beta - printed)))
        parts.append(
            f"delta = {fmt(delta)}: fitted beta {fmt(beta, 4)} (other root {fmt(2 - beta, 4)}), "
            f"printed {fmt(printed, 4)}, -delta/(1-delta) = {fmt(-printed, 4)}"
        )
    value = float(max(gaps))
    return LS_BETA_PRINTED.judged(value, value <= TOL, len(per_delta), "; ".join(parts))


def _nc3_centred_one_hot(table: pd.DataFrame) -> dict:
    """max of NC3 (centred means) over one-hot balanced minimisers, split at c/(1-c)."""
    rows = _one_hot_balanced(table)
    nc3 = rows[(rows["metric"] == "nc3") & np.isfinite(rows["value"])]
    if nc3.empty:
        return NC3_CENTRED_ONE_HOT.untestable("no one-hot balanced nc3 rows in this run")
    value = float(nc3["value"].max())
    below = _below_critical(nc3)
    parts = []
    for label, part in (("lambda_b <= c/(1-c)", nc3[below]), ("lambda_b > c/(1-c)", nc3[~below])):
        if len(part):
            worst = part.loc[part["value"].idxmax()]
            parts.append(
                f"{label}: max {fmt(worst['value'])} at lambda_b = {fmt(worst['lambda_b'])} "
                f"(closed form {fmt(worst['theory'])}, {len(part)} rows)"
            )
    unc = rows[(rows["metric"] == "nc3_uncentered") & np.isfinite(rows["value"])]
    if len(unc):
        parts.append(
            f"with uncentred means (eq. 3) max {fmt(unc['value'].max())}: Thm III.1's "
            "self-duality is with Hbar*, not the centred means"
        )
    return NC3_CENTRED_ONE_HOT.judged(value, value <= TOL, len(nc3), "; ".join(parts))


def _ssetf_conjecture(table: pd.DataFrame) -> dict:
    """Balanced encodings where 'Hbar* is an SSETF' and 'Ybar is an SSETF' disagree."""
    metrics = ["ssetf_fit_residual", "encoding_ssetf_residual"]
    rows = table[
        (table["experiment"] == "encodings") & table["n"].notna() & table["metric"].isin(metrics)
    ]
    keys = ["encoding", "delta", "seed", "lambda_b"]
    wide = rows.pivot_table(index=keys, columns="metric", values="value", aggfunc="mean")
    wide = wide.reindex(columns=metrics).dropna()
    if wide.empty:
        return SSETF_CONJECTURE.untestable(
            "no balanced encoding with both SSETF fit residuals (Hbar* and Ybar)"
        )
    means_ssetf = wide["ssetf_fit_residual"] <= TOL
    code_ssetf = wide["encoding_ssetf_residual"] <= TOL
    parts = []
    for (enc, delta, _, _), r in wide.iterrows():
        name = f"{enc} {fmt(delta)}" if delta else enc
        parts.append(
            f"{name}: Hbar* fit {fmt(r['ssetf_fit_residual'], 2)}, "
            f"Ybar fit {fmt(r['encoding_ssetf_residual'], 2)}"
        )
    detail = "; ".join(parts)
    if code_ssetf.all() or not code_ssetf.any():
        kind = "SSETF" if code_ssetf.all() else "non-SSETF"
        return SSETF_CONJECTURE.untestable(
            f"only {kind} encodings ran, so one direction of the 'iff' is untested: {detail}",
            n=len(wide),
        )
    value = float((means_ssetf != code_ssetf).sum())
    return SSETF_CONJECTURE.judged(value, value == 0, len(wide), detail)


# ---------------------------------------------------------------------------- entry point
def claims(table: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The class_encoding claims table (columns ``ncrepro.claims.COLUMNS``).

    ``table`` is the study's long table; ``config`` the merged config (only
    ``class_encoding.enabled`` is read: a disabled study makes every claim untestable).
    """
    block = (config or {}).get("class_encoding") or {}
    enabled = block.get("enabled", True)
    if not enabled or table.empty:
        reason = "class_encoding disabled in config" if not enabled else "the table is empty"
        static = {c.claim_id: c for c in [e.claim for e in BY_RESIDUAL] + VALUE_CLAIMS}
        return claims_frame(static[claim_id].untestable(reason) for claim_id in ORDER)

    theory_rows = _has_theory(table)
    sources = theory_rows["source"].fillna("").astype(str)
    owned = pd.Series(False, index=theory_rows.index)
    rows = []
    for entry in BY_RESIDUAL:
        mine = sources.map(entry.owns).astype(bool)
        owned |= mine
        rows.append(_judge_residual(entry.claim, theory_rows[mine], entry.absent))
    rows += [
        _etf_below_critical(table),
        _of_beyond_critical(table),
        _ssetf_conjecture(table),
        _ls_beta_as_printed(table),
        _nc3_centred_one_hot(table),
    ]
    # the paper's order; closed forms the catalogue does not know come last
    rank = {claim_id: i for i, claim_id in enumerate(ORDER)}
    rows.sort(key=lambda r: rank.get(r["claim_id"], len(ORDER)))
    rows += _fallback_claims(theory_rows, owned)
    return claims_frame(rows)


def claims_table(table: pd.DataFrame, config: dict) -> TableOutput:
    """``claims`` for the pipeline's table stage (CSV, Markdown, provenance of all rows)."""
    return TableOutput(
        frame=claims(table, config),
        title="class_encoding: claims of Massion, Makhlouf, Massart (2026), 'The role of "
        "class encoding in neural collapse'",
        note=note(config, __name__),
    )
