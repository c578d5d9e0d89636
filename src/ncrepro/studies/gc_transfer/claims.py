"""Claims table of the gc_transfer study (Munn, Dherin & Gonzalvo 2024, "The Impact of
Geometric Complexity on Neural Collapse in Transfer Learning"), from the study's long table.

End of training = each run's last checkpoint; diverged runs are left out. Every rule and
threshold is a constant below, fixed from the paper's wording before looking at results.

Claims (one row per pair and sweep where the claim is per sweep):

- ``gc_cdnv_<pair>_<sweep>``: lower GC comes with lower CDNV across a sweep (Sec. 4.1,
  Figs 1, 6-9, 11): Spearman ρ(end GC, end train CDNV) over the sweep's runs > 0.
- ``<sweep>_lowers_gc_<pair>``: higher LR, smaller batch, more L2 and a larger GC penalty
  give lower GC (Sec. 4.1, Figs 1, 6-9, 11): Spearman ρ(sweep value, end GC) < 0 (> 0 for
  the batch size).
- ``cdnv_below_geometric_collapse``: CDNV <= ρ · geometric collapse (eq. 6), ρ the Poincaré
  constant estimated as max CDNV / GCol on the fig1 runs (as the paper), checked on the
  checkpoints of every other run on the same data (held out from the estimate).
- ``bound_above_ncc_error`` and ``bound_non_vacuous``: the GC bound (Prop. 4.3, our
  reconstruction of its constants) lies above the NCC test error at every checkpoint of
  fig3's run; and below 1 ("the bound is not vacuous", Sec. 4.3).
- ``source_gc_target_cdnv_<sweep>`` / ``source_gc_fewshot_<sweep>``: lower source GC comes
  with lower target CDNV / higher 5-shot accuracy (Sec. 5.2, Fig. 4): Spearman ρ(end
  source GC, end target CDNV) > 0, ρ(end source GC, end 5-shot accuracy) < 0.
- ``sampled_gc_<estimator>``: the sampled GC stays close to exact (Sec. 4.2, Fig. 2):
  mean relative error of one draw at the sampling fraction `SAMPLING_FRACTION` <= 5 %.
"""

from __future__ import annotations

import math

import pandas as pd

from ncrepro.claims import Claim, claims_frame, fmt, note
from ncrepro.studies import TableOutput
from ncrepro.studies.gc_transfer.figures import (
    bound_pair,
    final_values,
    pair_off,
    sampling_rows,
    sampling_summary,
    select,
    spearman,
)
from ncrepro.studies.gc_transfer.runs import PAIR_ROWS, STUDY

# ---------------------------------------------------------------------------- the rules
MIN_POINTS_RHO = 3  # Spearman's rho needs at least three sweep values
# the sign a sweep's rho(value, end GC) must have for "lower GC" as the paper says:
# higher LR / more L2 / larger GC penalty -> lower GC (rho < 0); smaller batch -> lower GC (rho > 0)
GC_DIRECTION = {"lr": -1, "batch_size": +1, "weight_decay": -1, "penalty": -1}
# "CDNV <= c * geometric collapse": holds on at least this fraction of held-out checkpoints
HOLDS_FRACTION = 0.9
# Figure 2: "the value of the sampled GC remains stable and consistent to its true value":
# one draw at SAMPLING_FRACTION (nearest fraction run) within 5 % of exact on average
SAMPLING_FRACTION = 0.25
SAMPLING_TOLERANCE = 0.05
COLLAPSE_PAIRS = ("fig1", "fig4", "fig6", "fig7", "fig8", "fig9", "fig10", "fig11")
FEWSHOT_PAIRS = ("fig4", "fig10")
SWEEP_WORDS = {
    "lr": "a higher learning rate",
    "batch_size": "a smaller batch",
    "weight_decay": "more L2 regularization",
    "penalty": "a larger explicit GC penalty",
}


def _completed(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] != "diverged"] if "status" in rows else rows


def _end(table: pd.DataFrame, experiment: str, metric: str, split, probe) -> pd.DataFrame:
    """End-of-training values of `metric` per run of `experiment`, mean over seeds per
    sweep value: columns sweep_value, value."""
    rows = _completed(select(table[table["experiment"] == experiment], metric, split, probe))
    if rows.empty:
        return pd.DataFrame(columns=["sweep_value", "value"])
    last = final_values(rows)
    return last.groupby("sweep_value", as_index=False)["value"].mean()


def _rho_claim(claim: Claim, a: pd.DataFrame, b: pd.DataFrame | None, sign: int, what: str) -> dict:
    """rho between a.value and b.value (or the sweep value when b is None) over the
    sweep values both have; supported if sign * rho > 0."""
    if b is None:
        joined = a.assign(other=a["sweep_value"])
    else:
        joined = a.merge(b.rename(columns={"value": "other"}), on="sweep_value")
    n = len(joined)
    if n < MIN_POINTS_RHO:
        return claim.untestable(f"{what}: {n} sweep value(s) with data, need {MIN_POINTS_RHO}", n=n)
    rho = spearman(joined["value"], joined["other"])
    pairs = ", ".join(
        f"{fmt(v)}: {fmt(g)}" for v, g in zip(joined["sweep_value"], joined["value"], strict=True)
    )
    if math.isnan(rho):
        return claim.untestable(f"{what}: rho undefined (constant values); {pairs}", n=n)
    return claim.judged(rho, sign * rho > 0, n, f"{what}; end values {pairs}")


def _distinct_sweeps(table: pd.DataFrame, config: dict, pairs) -> list[tuple]:
    """(pair, sweep, note, off) of every sweep with runs, in `pairs` order; a sweep whose
    runs are exactly those of an earlier one (a quick preset drawing fig6 from fig4's runs)
    is judged once, its note naming the figures that share it. A switched-off pair's
    configured sweeps come with `off`, why they have no runs (their claims: not testable)."""
    block = config[STUDY]["pairs"]
    seen: dict[frozenset, int] = {}
    out: list[list] = []
    for pair in pairs:
        if pair not in block:
            continue
        if off := pair_off(config, pair):
            sweeps = block[pair].get("sweeps") or PAIR_ROWS[pair]
            out += [[pair, sweep, [], off] for sweep in PAIR_ROWS[pair] if sweep in sweeps]
            continue
        for sweep in PAIR_ROWS[pair]:
            runs = frozenset(table.loc[table["experiment"] == f"{pair}_{sweep}", "run"])
            if not runs:
                continue
            if (runs, sweep) in seen:
                out[seen[runs, sweep]][2].append(pair)
                continue
            seen[runs, sweep] = len(out)
            out.append([pair, sweep, [], None])
    return [
        (p, s, f" (the same runs as {', '.join(also)}'s {s} row)" if also else "", off)
        for p, s, also, off in out
    ]


def _sweep_claims(table: pd.DataFrame, config: dict) -> list[dict]:
    rows = []
    for pair, sweep, shared, off in _distinct_sweeps(table, config, COLLAPSE_PAIRS):
        words = SWEEP_WORDS[sweep]
        together = Claim(
            f"gc_cdnv_{pair}_{sweep}",
            f"Lower embedding GC comes with lower CDNV (more neural collapse) across "
            f"the {sweep} sweep ({pair}).",
            f"Sec. 4.1, Prop. 4.1; Fig. {pair[3:]}",
            "Spearman rho over the sweep values of (end-of-training GC, end-of-training "
            "train CDNV), means over seeds; GC of the penultimate embedding",
            "rho > 0",
        )
        lowers = Claim(
            f"{sweep}_lowers_gc_{pair}",
            f"{words[0].upper() + words[1:]} gives lower embedding GC ({pair}).",
            f"Sec. 4.1 (after Dherin et al. 2022); Fig. {pair[3:]}",
            f"Spearman rho over the {sweep} sweep of ({sweep}, end-of-training GC)",
            "rho < 0" if GC_DIRECTION[sweep] < 0 else "rho > 0",
        )
        if off:
            rows += [together.untestable(off), lowers.untestable(off)]
            continue
        experiment = f"{pair}_{sweep}"
        gc = _end(table, experiment, "gc", "train", "geometric")
        cdnv = _end(table, experiment, "cdnv", "train", None)
        what = f"{pair} {sweep}{shared}"
        rows.append(_rho_claim(together, gc, cdnv, +1, what))
        rows.append(_rho_claim(lowers, gc, None, GC_DIRECTION[sweep], what))
    return rows


POINCARE = Claim(
    "cdnv_below_geometric_collapse",
    "The embedding GC bounds neural collapse: CDNV <= rho * geometric collapse with one "
    "Poincare constant rho of the data (eq. 6).",
    "Prop. 4.1 / eq. 6, Sec. 4.3",
    "fraction of the checkpoints of runs outside fig1 on fig1's dataset (held out) with "
    "train CDNV <= rho * geometric collapse; rho = max CDNV / geometric collapse over the "
    "fig1 runs' checkpoints (the paper's estimate)",
    f"fraction >= {HOLDS_FRACTION}",
)


def _poincare_claim(table: pd.DataFrame, config: dict) -> dict:
    from ncrepro.metrics.geometric import poincare_estimate

    cdnv = _completed(select(table, "cdnv", "train", None))
    collapse = _completed(select(table, "geometric_collapse", "train", "geometric"))
    points = cdnv.merge(collapse, on=["run", "step"], suffixes=("_cdnv", "_gcol"))
    points = points.drop_duplicates(["run", "step"])
    pairs = config[STUDY]["pairs"]
    fig1 = pairs.get("fig1")
    if off := pair_off(config, "fig1"):
        return POINCARE.untestable(off)
    if fig1 is None or points.empty:
        return POINCARE.untestable("no fig1 runs to estimate rho from")
    run_pair = table.drop_duplicates(["run", "pair"])[["run", "pair", "dataset"]]
    fig1_runs = set(run_pair.loc[run_pair["pair"] == "fig1", "run"])
    same_data = set(run_pair.loc[run_pair["dataset"] == fig1["dataset"], "run"])
    calib = points[points["run"].isin(fig1_runs)]
    held = points[points["run"].isin(same_data - fig1_runs)]
    if calib.empty:
        return POINCARE.untestable("no fig1 checkpoints with CDNV and geometric collapse")
    rho = poincare_estimate(calib["value_cdnv"], calib["value_gcol"])
    if held.empty:
        return POINCARE.untestable(
            f"rho = {fmt(rho)} from {len(calib)} fig1 checkpoints; no other runs on "
            f"{fig1['dataset']} to check it on",
            n=len(calib),
        )
    holds = held["value_cdnv"] <= rho * held["value_gcol"]
    fraction = float(holds.mean())
    worst = float((held["value_cdnv"] / held["value_gcol"]).max())
    detail = (
        f"rho = {fmt(rho)} from {len(calib)} fig1 checkpoints; held-out runs "
        f"{held['run'].nunique()}, "
        f"checkpoints {len(held)}; their max CDNV/GCol = {fmt(worst)}"
    )
    return POINCARE.judged(fraction, fraction >= HOLDS_FRACTION, len(held), detail)


BOUND_ABOVE = Claim(
    "bound_above_ncc_error",
    "The GC-based bound (Prop. 4.3) lies above the nearest-class-mean test error.",
    "Prop. 4.3, Fig. 3",
    "fraction of the checkpoints of fig3's run with gc_bound >= NCC test error (gc_bound = "
    "12 (K-1)(1+2.5/m) rho * geometric collapse, our reconstruction of the lost constants)",
    "fraction = 1",
)
BOUND_TIGHT = Claim(
    "bound_non_vacuous",
    "The bound is not vacuous (relatively tight fit).",
    "Sec. 4.3, Fig. 3",
    "fraction of the checkpoints of fig3's run with gc_bound < 1",
    "fraction = 1",
)


def _bound_claims(table: pd.DataFrame, config: dict) -> list[dict]:
    from ncrepro.studies.gc_transfer.figures import bound_rows

    if off := pair_off(config, bound_pair(config)):  # no fig3 run
        return [BOUND_ABOVE.untestable(off), BOUND_TIGHT.untestable(off)]
    rows = bound_rows(table)
    wide = rows.pivot_table(index=["run", "step"], columns="metric", values="value").reset_index()
    if wide.empty or "gc_bound" not in wide or "ncc_test_error" not in wide:
        reason = "no gc_bound probe (config gc_transfer.bound) or no NCC test error"
        return [BOUND_ABOVE.untestable(reason), BOUND_TIGHT.untestable(reason)]
    wide = wide.dropna(subset=["gc_bound", "ncc_test_error"])
    above = float((wide["gc_bound"] >= wide["ncc_test_error"]).mean())
    below_one = float((wide["gc_bound"] < 1).mean())
    detail = (
        f"{len(wide)} checkpoints; gc_bound {fmt(wide['gc_bound'].min())} .. "
        f"{fmt(wide['gc_bound'].max())}, "
        f"NCC error {fmt(wide['ncc_test_error'].min())} .. {fmt(wide['ncc_test_error'].max())}"
    )
    return [
        BOUND_ABOVE.judged(above, above == 1.0, len(wide), detail),
        BOUND_TIGHT.judged(below_one, below_one == 1.0, len(wide), detail),
    ]


def _fewshot_claims(table: pd.DataFrame, config: dict) -> list[dict]:
    rows = []
    for pair, sweep, shared, off in _distinct_sweeps(table, config, FEWSHOT_PAIRS):
        suffix = "" if pair == "fig4" else f"_{pair}"
        target_cdnv = Claim(
            f"source_gc_target_cdnv_{sweep}{suffix}",
            f"Lower source GC comes with lower target-class CDNV across the {sweep} "
            f"sweep ({pair}).",
            f"Sec. 5, Prop. 5.1; Fig. {pair[3:]}",
            "Spearman rho over the sweep of (end source GC, end mean target CDNV over "
            "the 5-way tasks)",
            "rho > 0",
        )
        fewshot = Claim(
            f"source_gc_fewshot_{sweep}{suffix}",
            f"Lower source GC comes with higher 5-shot transfer accuracy across the "
            f"{sweep} sweep ({pair}).",
            f"Sec. 5.2; Fig. {pair[3:]}",
            "Spearman rho over the sweep of (end source GC, end mean 5-way 5-shot ridge accuracy)",
            "rho < 0",
        )
        if off:
            rows += [target_cdnv.untestable(off), fewshot.untestable(off)]
            continue
        experiment = f"{pair}_{sweep}"
        gc = _end(table, experiment, "gc", "train", "geometric")
        target = _end(table, experiment, "target_cdnv", None, "fewshot")
        accuracy = _end(table, experiment, "fewshot_accuracy", None, "fewshot")
        what = f"{pair} {sweep}{shared}"
        rows.append(_rho_claim(target_cdnv, gc, target, +1, what))
        rows.append(_rho_claim(fewshot, gc, accuracy, -1, what))
    return rows


def _sampling_claims(table: pd.DataFrame, config: dict) -> list[dict]:
    rows = sampling_rows(table) if "probe" in table else table.iloc[0:0]
    off = pair_off(config, bound_pair(config))  # no fig3 run to sample
    out = []
    for estimator in ("batch", "entries", "outputs", "projections"):
        claim = Claim(
            f"sampled_gc_{estimator}",
            f"GC estimated by {estimator} sampling stays consistent with the exact GC.",
            "Sec. 4.2, Fig. 2",
            f"mean over draws of abs(estimate - exact) / exact at the sampling fraction nearest "
            f"{SAMPLING_FRACTION} (fig3's run, final checkpoint)",
            f"<= {SAMPLING_TOLERANCE}",
        )
        if off:
            out.append(claim.untestable(off))
            continue
        if rows.empty or not (rows["estimator"] == estimator).any():
            out.append(claim.untestable("no gc_sampling rows for this estimator"))
            continue
        summary = sampling_summary(rows)
        s = summary[summary["estimator"] == estimator]
        nearest = s.iloc[(s["gc_fraction"] - SAMPLING_FRACTION).abs().argsort()].iloc[0]
        detail = (
            f"fraction {fmt(nearest['gc_fraction'])}, {int(nearest['draws'])} draws, bias "
            f"{fmt(100 * nearest['bias'])} %, std/exact "
            f"{fmt(100 * nearest['std'] / nearest['exact'])} %"
        )
        value = float(nearest["rel_error"])
        out.append(claim.judged(value, value <= SAMPLING_TOLERANCE, int(nearest["draws"]), detail))
    return out


def claims(table: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The gc_transfer claims table (columns ``ncrepro.claims.COLUMNS``)."""
    if table.empty:
        reason = "the gc_transfer table is empty"
        return claims_frame(
            [
                POINCARE.untestable(reason),
                BOUND_ABOVE.untestable(reason),
                BOUND_TIGHT.untestable(reason),
            ]
        )
    rows = [
        *_sweep_claims(table, config),
        _poincare_claim(table, config),
        *_bound_claims(table, config),
        *_fewshot_claims(table, config),
        *_sampling_claims(table, config),
    ]
    return claims_frame(rows)


def claims_table(table: pd.DataFrame, config: dict) -> TableOutput:
    """``claims`` for the pipeline's table stage (CSV, Markdown, provenance of all rows)."""
    return TableOutput(
        frame=claims(table, config),
        title="gc_transfer: claims of Munn, Dherin, Gonzalvo (2024), 'The Impact of Geometric "
        "Complexity on Neural Collapse in Transfer Learning'",
        note=note(config, __name__),
    )
