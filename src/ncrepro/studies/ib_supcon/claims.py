"""Claims table of the ib_supcon study (Wang & Palmer), from the study's long table (the
pair-analysis rows; `ncrepro.studies.ib_supcon.select` reads them as the tables and
figures do). Every statistic is taken at a pair's last checkpoint unless it is over
checkpoints; every threshold is a constant below, fixed from the paper's wording and
its own numbers before looking at this run's.

1. ``models_same_accuracy``: the two models reach the same test accuracy (Table 1).
2. ``models_same_decisions``: they classify the same test samples correctly (Table 1).
3. ``identifiability_improves_with_nc1``: the K leading CCA coefficients rise as NC1
   falls over training (Fig. 2, Sec. 3.1).
4. ``k_ib_keeps_accuracy``: the K-dim IB representation keeps nearly all the accuracy of
   the raw representation (Table 2, Sec. 3.3).
5. ``etf_in_ib_space_like_full``: ETF signatures in the K-dim IB space are comparable to
   the full space's (Fig. 3, Sec. 3.4).
6. ``zero_shot_needs_more_dims``: zero-shot transfer needs K' > K IB dimensions (Fig. 4A,
   Table 3, Sec. 3.5).
7. ``ib_scalings_equal_in_domain`` / 8. ``ib_scalings_equal_zero_shot``: the IB feature
   scalings alpha_i stay within 0.9-1.1 of their mean (Fig. 4B/C).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ncrepro.claims import Claim, claims_frame, disabled_reason, fmt, note
from ncrepro.studies import TableOutput
from ncrepro.studies.ib_supcon import select as sel
from ncrepro.studies.ib_supcon.runs import STUDY

# Table 1's gaps are 0.3-0.4 points ("comparable generalization performance"): at most 1
# percentage point.
MAX_ACCURACY_GAP_PP = 1.0
# Table 1: both-correct / the weaker model's accuracy is 0.91-1.00 ("the same subset").
MIN_SHARED_CORRECT = 0.9
# "Linear identifiability ... improves": a negative rank correlation with NC1 (over at
# least MIN_POINTS_RHO checkpoints), in every dataset.
MIN_POINTS_RHO = 3
# Table 2's raw - K-IB gaps are 2.1 and 2.4 points ("retains nearly all"): at most 3.
MAX_IB_GAP_PP = 3.0
# Fig. 3: angle spreads of the IB and full spaces differ by "5 to 7 degrees" ("small").
MAX_ANGLE_STD_DIFF_DEG = 7.0
# Fig. 4B/C: "most of the feature scalings are between 0.9 and 1.1 with respect to the
# mean": more than half of the alpha_i / mean(alpha) in the band.
SCALING_BAND = (0.9, 1.1)
MIN_FRACTION_IN_BAND = 0.5

SAME_ACCURACY = Claim(
    claim_id="models_same_accuracy",
    claim="Two SupCon models trained independently on the same data reach the same test accuracy.",
    paper_ref="Table 1, Sec. 3.2",
    statistic="max over datasets (in-domain and zero-shot source pairs) of abs(accuracy of "
    "model 1 - accuracy of model 2) in percentage points, linear evaluation on the test "
    "split, last checkpoint",
    criterion=f"max gap <= {MAX_ACCURACY_GAP_PP:g} percentage points",
)
SAME_DECISIONS = Claim(
    claim_id="models_same_decisions",
    claim="The two models classify the same test samples correctly.",
    paper_ref="Table 1, Sec. 3.2",
    statistic="min over datasets of (fraction of test samples both classify correctly) / "
    "min(accuracy model 1, accuracy model 2), last checkpoint",
    criterion=f"min ratio >= {MIN_SHARED_CORRECT:g}",
)
IDENTIFIABILITY = Claim(
    claim_id="identifiability_improves_with_nc1",
    claim="Linear identifiability improves as variability collapses: the K leading canonical "
    "correlations between the two models rise as NC1 falls.",
    paper_ref="Fig. 2, Sec. 3.1",
    statistic="per in-domain dataset, Spearman rho over checkpoints between NC1 of model 1 "
    "(train) and the mean of the K leading CCA coefficients (test); value = the largest rho",
    criterion=f"rho < 0 in every dataset (>= {MIN_POINTS_RHO} checkpoints)",
)
IB_KEEPS_ACCURACY = Claim(
    claim_id="k_ib_keeps_accuracy",
    claim="The K-dim IB representation keeps nearly all the classification accuracy of the "
    "raw representation.",
    paper_ref="Table 2, Sec. 3.3",
    statistic="max over in-domain datasets of raw accuracy - K-dim IB accuracy in percentage "
    "points (model 1, test, last checkpoint)",
    criterion=f"max gap <= {MAX_IB_GAP_PP:g} percentage points",
)
ETF_LIKE_FULL = Claim(
    claim_id="etf_in_ib_space_like_full",
    claim="The class means in the K-dim IB space form a simplex ETF comparable to the one in "
    "the full representation.",
    paper_ref="Fig. 3, Sec. 3.4",
    statistic="max over in-domain datasets of abs(std of pairwise class-mean angles in the "
    "K-dim IB space - in the full representation) in degrees (model 1, train, last checkpoint)",
    criterion=f"max difference <= {MAX_ANGLE_STD_DIFF_DEG:g} degrees",
)
MORE_DIMS = Claim(
    claim_id="zero_shot_needs_more_dims",
    claim="Zero-shot transfer from a model pretrained on other classes needs K' > K IB "
    "dimensions to keep its accuracy.",
    paper_ref="Fig. 4A, Table 3, Sec. 3.5",
    statistic="K' = the fewest IB dimensions of the sweep whose zero-shot test accuracy is "
    "within analysis.kprime_tolerance of the best accuracy over the sweep (its plateau)",
    criterion="K' > K (the target's classes)",
)
SCALINGS_IN = Claim(
    claim_id="ib_scalings_equal_in_domain",
    claim="The scalings alpha_i of the K-dim IB are nearly equal: most lie within 0.9-1.1 of "
    "their mean.",
    paper_ref="Fig. 4B, Sec. 3.5",
    statistic="min over in-domain datasets of the fraction of alpha_i / mean(alpha) in "
    "[0.9, 1.1], K-dim IB (alpha_i in the beta -> infinity limit), last checkpoint",
    criterion=f"fraction > {MIN_FRACTION_IN_BAND:g}",
)
SCALINGS_ZS = Claim(
    claim_id="ib_scalings_equal_zero_shot",
    claim="The scalings alpha_i of the zero-shot K'-dim IB are nearly equal too (within "
    "0.9-1.1 of their mean).",
    paper_ref="Fig. 4C, Sec. 3.5",
    statistic="fraction of alpha_i / mean(alpha) in [0.9, 1.1], K'-dim IB of the zero-shot "
    "pair (alpha_i in the beta -> infinity limit)",
    criterion=f"fraction > {MIN_FRACTION_IN_BAND:g}",
)
ALL_CLAIMS = [
    SAME_ACCURACY,
    SAME_DECISIONS,
    IDENTIFIABILITY,
    IB_KEEPS_ACCURACY,
    ETF_LIKE_FULL,
    MORE_DIMS,
    SCALINGS_IN,
    SCALINGS_ZS,
]


def _name(p: dict) -> str:
    return f"{p['dataset']} (for {p['paper_dataset']})"


def _agreement(table: pd.DataFrame) -> list[dict]:
    gaps, ratios, parts = [], [], []
    for experiment in (sel.IN_DOMAIN, sel.ZERO_SHOT):
        rows = sel.pair_rows(table, experiment, sel.OWN)
        for p in sel.pairs(rows):
            step = p["final_step"]
            a1 = sel.value(rows, p["run"], step, "linear_accuracy", model=1, representation=sel.RAW)
            a2 = sel.value(rows, p["run"], step, "linear_accuracy", model=2, representation=sel.RAW)
            both = sel.value(rows, p["run"], step, "both_correct")
            if any(math.isnan(v) for v in (a1, a2, both)):
                continue
            gaps.append(100 * abs(a1 - a2))
            ratios.append(both / min(a1, a2) if min(a1, a2) > 0 else math.nan)
            parts.append(f"{_name(p)}: {100 * a1:.1f} / {100 * a2:.1f} / both {100 * both:.1f} %")
    if not gaps:
        reason = "no pair with both models' linear evaluation in the table"
        return [SAME_ACCURACY.untestable(reason), SAME_DECISIONS.untestable(reason)]
    detail = "; ".join(parts)
    gap, ratio = max(gaps), float(np.nanmin(ratios))
    return [
        SAME_ACCURACY.judged(gap, gap <= MAX_ACCURACY_GAP_PP, len(gaps), detail),
        SAME_DECISIONS.judged(ratio, ratio >= MIN_SHARED_CORRECT, len(ratios), detail),
    ]


def _identifiability(table: pd.DataFrame) -> dict:
    from scipy.stats import spearmanr

    rows = sel.pair_rows(table, sel.IN_DOMAIN, sel.OWN)
    rhos, parts, n = [], [], 0
    for p in sel.pairs(rows):
        nc = sel.series(rows, p["run"], "nc1", split="train", model=1)[["step", "value"]]
        mean = sel.series(rows, p["run"], "cca_leading_mean")[["step", "value"]]
        data = nc.merge(mean, on="step", suffixes=("_nc1", "_cca")).dropna()
        data = data[np.isfinite(data["value_nc1"]) & np.isfinite(data["value_cca"])]
        n += len(data)
        if len(data) < MIN_POINTS_RHO or data["value_nc1"].nunique() < 2:
            parts.append(f"{_name(p)}: {len(data)} checkpoints, untestable")
            continue
        rho = float(spearmanr(data["value_nc1"], data["value_cca"]).statistic)
        rhos.append(rho)
        first, last = data.iloc[0], data.iloc[-1]
        parts.append(
            f"{_name(p)}: rho {fmt(rho, 2)} over {len(data)} checkpoints (NC1 "
            f"{fmt(first['value_nc1'])} -> {fmt(last['value_nc1'])}, mean CCA "
            f"{fmt(first['value_cca'])} -> {fmt(last['value_cca'])})"
        )
    if not rhos:
        return IDENTIFIABILITY.untestable("; ".join(parts) or "no in-domain pair", n=n)
    value = max(rhos)
    return IDENTIFIABILITY.judged(value, value < 0, n, "; ".join(parts))


def _ib_gap(table: pd.DataFrame) -> dict:
    rows = sel.pair_rows(table, sel.IN_DOMAIN, sel.OWN)
    gaps, parts = [], []
    for p in sel.pairs(rows):
        step = p["final_step"]
        raw = sel.value(rows, p["run"], step, "linear_accuracy", model=1, representation=sel.RAW)
        ib = sel.value(rows, p["run"], step, "linear_accuracy", model=1, representation=sel.IB)
        if math.isnan(raw) or math.isnan(ib):
            continue
        gaps.append(100 * (raw - ib))
        k = sel.ib_dims(rows, p["run"], step)
        parts.append(f"{_name(p)}: raw {100 * raw:.1f} %, {k:.0f}-dim IB {100 * ib:.1f} %")
    if not gaps:
        return IB_KEEPS_ACCURACY.untestable("no in-domain pair with raw and IB accuracies")
    value = max(gaps)
    return IB_KEEPS_ACCURACY.judged(value, value <= MAX_IB_GAP_PP, len(gaps), "; ".join(parts))


def _etf(table: pd.DataFrame) -> dict:
    rows = sel.pair_rows(table, sel.IN_DOMAIN, sel.OWN)
    diffs, parts = [], []
    for p in sel.pairs(rows):
        step = p["final_step"]
        values = {}
        for representation in (sel.IB, sel.RAW):
            values[representation] = {
                m: sel.value(
                    rows, p["run"], step, m, split="train", model=1, representation=representation
                )
                for m in ("etf_angle_std_deg", "etf_mean_cosine", "etf_norm_cv")
            }
        ib, full = values[sel.IB], values[sel.RAW]
        if math.isnan(ib["etf_angle_std_deg"]) or math.isnan(full["etf_angle_std_deg"]):
            continue
        diffs.append(abs(ib["etf_angle_std_deg"] - full["etf_angle_std_deg"]))
        parts.append(
            f"{_name(p)}: angle std {fmt(ib['etf_angle_std_deg'])} (IB) vs "
            f"{fmt(full['etf_angle_std_deg'])} deg (full); mean cosine "
            f"{fmt(ib['etf_mean_cosine'])} vs {fmt(full['etf_mean_cosine'])}; norm CV "
            f"{fmt(ib['etf_norm_cv'])} vs {fmt(full['etf_norm_cv'])}"
        )
    if not diffs:
        return ETF_LIKE_FULL.untestable("no in-domain pair with ETF signatures")
    value = max(diffs)
    return ETF_LIKE_FULL.judged(
        value, value <= MAX_ANGLE_STD_DIFF_DEG, len(diffs), "; ".join(parts)
    )


def _zero_shot(table: pd.DataFrame, config: dict) -> list[dict]:
    block = config["ib_supcon"]
    if not (block.get("zero_shot") or {}).get("enabled", False):
        reason = disabled_reason(config, STUDY, sel.ZERO_SHOT) or "no zero_shot block in config"
        return [MORE_DIMS.untestable(reason), SCALINGS_ZS.untestable(reason)]
    rows = sel.pair_rows(table, sel.ZERO_SHOT, sel.TARGET)
    pairs = sel.pairs(rows)
    if not pairs:
        reason = "no zero-shot rows in the table"
        return [MORE_DIMS.untestable(reason), SCALINGS_ZS.untestable(reason)]
    p = pairs[0]
    step = p["final_step"]
    k = sel.num_classes(config, p["eval_dataset"])
    kprime = sel.value(rows, p["run"], step, "kprime", representation=sel.IB)
    ranked = sel.value(rows, p["run"], step, "linear_accuracy", model=1, representation=sel.RANKED)
    raw = sel.value(rows, p["run"], step, "linear_accuracy", model=1, representation=sel.RAW)
    dims = block["zero_shot"].get("dims")
    detail = (
        f"{p['eval_dataset']} from {p['dataset']}: K = {k}, K' = {fmt(kprime)} of the sweep "
        f"{dims} (d = {p['d']}); raw {100 * raw:.1f} %, ranked {100 * ranked:.1f} %"
    )
    if math.isnan(kprime):
        more = MORE_DIMS.untestable(f"no IB accuracies in the zero-shot sweep; {detail}")
        scal = SCALINGS_ZS.untestable("no K' (see zero_shot_needs_more_dims)")
        return [more, scal]
    more = MORE_DIMS.judged(kprime, k is not None and kprime > k, 1, detail)
    alpha = sel.components(rows, p["run"], step, "ib_alpha_relative", dims=kprime)
    return [more, _scalings(SCALINGS_ZS, [(f"{p['dataset']} -> {p['eval_dataset']}", alpha)])]


def _scalings(claim: Claim, series: list[tuple[str, np.ndarray]]) -> dict:
    lo, hi = SCALING_BAND
    fractions, parts = [], []
    for name, alpha in series:
        if len(alpha) == 0 or not np.isfinite(alpha).all():
            parts.append(f"{name}: no finite scalings")
            continue
        inside = float(np.mean((alpha >= lo) & (alpha <= hi)))
        fractions.append(inside)
        parts.append(
            f"{name}: {len(alpha)} dims, {100 * inside:.0f} % in band, alpha/mean "
            f"{fmt(alpha.min())}..{fmt(alpha.max())}"
        )
    if not fractions:
        return claim.untestable("; ".join(parts) or "no scalings in the table")
    value = min(fractions)
    return claim.judged(value, value > MIN_FRACTION_IN_BAND, len(fractions), "; ".join(parts))


def _scalings_in_domain(table: pd.DataFrame) -> dict:
    rows = sel.pair_rows(table, sel.IN_DOMAIN, sel.OWN)
    series = []
    for p in sel.pairs(rows):
        step = p["final_step"]
        dims = sel.ib_dims(rows, p["run"], step)
        series.append(
            (_name(p), sel.components(rows, p["run"], step, "ib_alpha_relative", dims=dims))
        )
    return _scalings(SCALINGS_IN, series)


def claims(table: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The ib_supcon claims table (columns ``ncrepro.claims.COLUMNS``), one row per claim."""
    off = disabled_reason(config, STUDY)
    if off or table.empty:
        reason = off or "the ib_supcon table is empty"
        return claims_frame(c.untestable(reason) for c in ALL_CLAIMS)
    rows = [
        *_agreement(table),
        _identifiability(table),
        _ib_gap(table),
        _etf(table),
    ]
    zero_shot = _zero_shot(table, config)
    rows += [zero_shot[0], _scalings_in_domain(table), zero_shot[1]]
    return claims_frame(rows)


def claims_table(table: pd.DataFrame, config: dict) -> TableOutput:
    return TableOutput(
        frame=claims(table, config),
        title="ib_supcon: claims of Wang & Palmer, 'Towards understanding neural collapse in "
        "supervised contrastive learning with the information bottleneck method'",
        note=note(config, __name__),
    )
