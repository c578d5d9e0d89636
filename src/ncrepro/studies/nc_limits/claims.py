"""Claims table of the nc_limits study (Hui, Belkin, Nakkiran 2022, "Limitations of Neural
Collapse for Understanding Generalization in Deep Learning"), from the study's long table.

The long table (results/tables/nc_limits.parquet) has one row per (experiment, run, step,
split, metric): TrainVariance (metric ``train_variance``, split train), StrongTestVariance
and WeakTestVariance (split test), accuracies, fine-tuning probes, and the run's ``status``
(completed | diverged | stopped_on_loss | capped).  Lower variance = more collapse.

Claims (paper section in brackets):

1. ``train_collapse``: TrainVariance falls by a large factor over training (Sec. 3.2, Figs 1-3).
2. ``strong_test_collapse_fails``: StrongTestVariance stays well above TrainVariance at the end
   (Sec. 3.2, Figs 1, 3).
3. ``weak_test_collapse_fails``: so does WeakTestVariance (Fig. 2, abstract).
4. ``weak_strong_alike``: weak and strong test variance behave alike over training (Sec. 3.2).
5. ``train_test_anticorrelated``: across train-set sizes N, train and test collapse are
   anti-correlated (Fig. 4).
6. ``train_collapse_worse_accuracy``: across N, less train collapse goes with better test
   accuracy (Fig. 4).
7. ``collapsed_transfer_worse``: more collapsed pretraining checkpoints fine-tune worse
   (Fig. 5, Sec. 4.2).

Claims 5-7 use the point builders of the figures (``fig4_points``, ``fig5_points``), so a
verdict rests on the numbers the figure shows.  Every threshold is a constant below.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ncrepro.claims import NOT_TESTABLE, Claim, claims_frame, disabled_reason, fmt, note
from ncrepro.studies import TableOutput
from ncrepro.studies.nc_limits.runs import STUDY
from ncrepro.studies.nc_limits.transfer_figures import (
    TRAIN_SIZE_EXPERIMENT,
    TRANSFER_EXPERIMENT,
    fig4_points,
    fig5_points,
)

__all__ = [
    "LARGE_FACTOR",
    "ALIKE_MIN_RHO",
    "MIN_POINTS_RHO",
    "END_TRAIN_LOSS",
    "END_OF_TRAINING_STATUS",
    "claims",
    "claims_table",
]

# ---------------------------------------------------------------------------- the rules
# "falls by a large factor" / "stays well above": one order of magnitude.
LARGE_FACTOR = 10.0
# "both strong and weak collapse have similar behavior": the two rank the checkpoints of
# training alike, Spearman rho >= 0.5 (a large association by the usual convention).
ALIKE_MIN_RHO = 0.5
# Spearman's rho is not computed on fewer points (as in the figures' captions).
MIN_POINTS_RHO = 3
# Figs 1-3 compare train and test variance at the end of training, which the paper defines
# as 0 training error and then train loss "close to 0", i.e. below 1e-5 (Sec. 3.2, footnote
# 3): only runs whose train loss at their last checkpoint is at most this count.
END_TRAIN_LOSS = 1e-5
# Fig. 4 compares runs "at the end of training", which the paper defines by a train-loss
# threshold (stop at 1e-6): only runs that stopped on that loss are at the paper's end point;
# a run capped by the step budget is at a different train loss for each N.
END_OF_TRAINING_STATUS = "stopped_on_loss"

CURVE_EXPERIMENTS = ("curves", "grid")
DIVERGED = "diverged"

TRAIN_COLLAPSE = Claim(
    claim_id="train_collapse",
    claim="Train collapse occurs: the within-class variability of train features "
    "(TrainVariance) converges towards 0 over training.",
    paper_ref="Sec. 3.2, Figs 1-3, Conjecture 2",
    statistic="median over the curves and grid runs (each run once, diverged runs left out) "
    "of TrainVariance(first checkpoint) / TrainVariance(last checkpoint); TrainVariance = "
    "E norm(h - mu_y)^2 / E_i norm(mu_i - mu)^2 on the train set, class means of the same "
    "checkpoint",
    criterion=f"median fall factor >= {LARGE_FACTOR:g}",
)
STRONG_TEST_FAILS = Claim(
    claim_id="strong_test_collapse_fails",
    claim="Strong test collapse does not occur: StrongTestVariance stays far above "
    "TrainVariance in every setting.",
    paper_ref="Sec. 3.2, Figs 1 and 3, abstract",
    statistic="min over the curves and grid runs that reached the paper's end of training "
    f"(train loss at the last checkpoint <= {END_TRAIN_LOSS:g}) of StrongTestVariance / "
    "TrainVariance at that checkpoint (StrongTestVariance: the same ratio on the test set "
    "with test class means)",
    criterion=f"min ratio >= {LARGE_FACTOR:g}, over runs with final train loss <= "
    f"{END_TRAIN_LOSS:g}",
)
WEAK_TEST_FAILS = Claim(
    claim_id="weak_test_collapse_fails",
    claim="Weak test collapse does not occur either: WeakTestVariance stays far above "
    "TrainVariance.",
    paper_ref="Fig. 2, Sec. 3.2, abstract",
    statistic="min over the curves and grid runs that reached the paper's end of training "
    f"(train loss at the last checkpoint <= {END_TRAIN_LOSS:g}) of WeakTestVariance / "
    "TrainVariance at that checkpoint (WeakTestVariance: k-means (k = K) centroids of the "
    "test features, distance to the nearest centroid)",
    criterion=f"min ratio >= {LARGE_FACTOR:g}, over runs with final train loss <= "
    f"{END_TRAIN_LOSS:g}",
)
WEAK_STRONG_ALIKE = Claim(
    claim_id="weak_strong_alike",
    claim="Weak and strong test variance behave alike over training (why the paper plots only "
    "the strong one).",
    paper_ref="Sec. 3.2 (Fig. 2)",
    statistic="Spearman rho between WeakTestVariance and StrongTestVariance over the "
    "checkpoints of the curves experiment (one point per run and checkpoint, seeds pooled)",
    criterion=f"rho >= {ALIKE_MIN_RHO:g} (at least {MIN_POINTS_RHO} checkpoints)",
)
ANTI_CORRELATED = Claim(
    claim_id="train_test_anticorrelated",
    claim="Across train-set sizes N, train and test collapse are anti-correlated: as N grows "
    "TrainVariance rises while StrongTestVariance falls.",
    paper_ref="Sec. 3.2, Fig. 4",
    statistic="per (dataset, arch) panel of fig4: Spearman rho over N between the mean over "
    "seeds of end-of-training TrainVariance and of StrongTestVariance (fig4_points); value = "
    "the largest rho over panels",
    criterion=f"rho < 0 in every panel (>= {MIN_POINTS_RHO} sizes N), every run ended on the "
    f"train-loss threshold (status {END_OF_TRAINING_STATUS})",
)
WORSE_ACCURACY = Claim(
    claim_id="train_collapse_worse_accuracy",
    claim="Across train-set sizes N, more train collapse (smaller TrainVariance) goes with "
    "worse test accuracy.",
    paper_ref="Sec. 3.2, Fig. 4 caption",
    statistic="per (dataset, arch) panel of fig4: Spearman rho over N between the mean over "
    "seeds of end-of-training TrainVariance and of test accuracy (fig4_points); value = the "
    "smallest rho over panels",
    criterion=f"rho > 0 in every panel (>= {MIN_POINTS_RHO} sizes N), every run ended on the "
    f"train-loss threshold (status {END_OF_TRAINING_STATUS})",
)
TRANSFER_WORSE = Claim(
    claim_id="collapsed_transfer_worse",
    claim="Pretraining checkpoints with more test collapse (lower StrongTestVariance on the "
    "pretraining superclass task) give worse accuracy after fine-tuning on the finer task.",
    paper_ref="Sec. 4.2, Fig. 5",
    statistic="per (dataset, arch) panel of fig5: Spearman rho over pretraining checkpoints "
    "between the mean over seeds of StrongTestVariance and of the fine-tuned test accuracy "
    "(best over the LR sweep, diverged LRs ignored; fig5_points); value = the smallest rho "
    "over panels",
    criterion=f"rho > 0 in every panel (>= {MIN_POINTS_RHO} checkpoints): lower variance, "
    "lower accuracy",
)
ALL_CLAIMS = [
    TRAIN_COLLAPSE,
    STRONG_TEST_FAILS,
    WEAK_TEST_FAILS,
    WEAK_STRONG_ALIKE,
    ANTI_CORRELATED,
    WORSE_ACCURACY,
    TRANSFER_WORSE,
]


# ---------------------------------------------------------------------------- helpers
def _spearman(x, y) -> float:
    """Spearman rho over the finite pairs; NaN with fewer than MIN_POINTS_RHO or no spread."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < MIN_POINTS_RHO or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    from scipy.stats import spearmanr

    return float(spearmanr(x[ok], y[ok]).statistic)


def _label(dataset, arch, seed=None) -> str:
    return f"{dataset}/{arch}" + ("" if seed is None or pd.isna(seed) else f" s{int(seed)}")


def _curve_variances(table: pd.DataFrame, experiments) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(per-checkpoint variances, per-run info, number of diverged runs left out).

    Variances: one row per (run, step), columns train_variance (train split),
    strong_test_variance and weak_test_variance (test split) and train_loss (metric loss,
    train split); non-finite values are NaN.
    A run listed under several experiments (the curves run is also a grid cell) counts once.
    """
    rows = table[table["experiment"].isin(experiments)]
    # the metric row of a diverged run: the only row of one that diverged before its
    # first checkpoint, so it is counted here
    marked = set(rows.loc[rows["metric"] == DIVERGED, "run"])
    split_of = {
        "train_variance": "train",
        "strong_test_variance": "test",
        "weak_test_variance": "test",
        "loss": "train",
    }
    keep = rows["metric"].map(split_of).eq(rows["split"])
    rows = rows[keep].copy()
    if rows.empty:
        empty = pd.DataFrame(columns=["run", "step", *list(split_of)[:3], "train_loss"])
        return empty, pd.DataFrame(columns=["dataset", "arch", "seed", "status"]), len(marked)
    rows["value"] = rows["value"].where(np.isfinite(rows["value"].astype(float)))
    status = rows["status"] if "status" in rows else pd.Series("unknown", index=rows.index)
    info = (
        rows.assign(status=status)
        .groupby("run", sort=True)[["dataset", "arch", "seed", "status"]]
        .first()
    )
    diverged = info.index[info["status"] == DIVERGED]
    info = info.drop(index=diverged)
    rows = rows[~rows["run"].isin(diverged)]
    wide = rows.pivot_table(
        index=["run", "step"], columns="metric", values="value", aggfunc="mean", dropna=False
    )
    wide = wide.reindex(columns=list(split_of)).rename(columns={"loss": "train_loss"})
    wide = wide.reset_index().sort_values(["run", "step"])
    return wide, info, len(marked | set(diverged))


def _no_runs(experiments, n_diverged: int) -> str:
    names = "/".join(experiments)
    if n_diverged:
        return f"all {n_diverged} {names} runs diverged"
    return f"no {names} rows with variances in the table"


def _last(wide: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Each run's last checkpoint at which every one of ``columns`` is finite."""
    ok = wide.dropna(subset=columns)
    return ok.loc[ok.groupby("run")["step"].idxmax()].set_index("run")


# ---------------------------------------------------------------------------- claims 1-4
def _train_collapse(table: pd.DataFrame) -> dict:
    """Median over runs of TrainVariance(first checkpoint) / TrainVariance(last checkpoint)."""
    wide, info, n_div = _curve_variances(table, CURVE_EXPERIMENTS)
    tv = wide.dropna(subset=["train_variance"])
    factors, parts = [], []
    for run, series in tv.groupby("run", sort=True):
        if len(series) < 2:
            continue
        first, last = series.iloc[0], series.iloc[-1]
        factor = (
            first["train_variance"] / last["train_variance"]
            if last["train_variance"] > 0
            else math.inf
        )
        factors.append(factor)
        r = info.loc[run]
        parts.append(
            f"{_label(r['dataset'], r['arch'], r['seed'])} {fmt(factor)}x "
            f"(steps {int(first['step'])}->{int(last['step'])})"
        )
    if not factors:
        reason = _no_runs(CURVE_EXPERIMENTS, n_div) if info.empty else "no run has >= 2 checkpoints"
        return TRAIN_COLLAPSE.untestable(reason)
    value = float(np.median(factors))
    detail = "; ".join(parts) + (f"; {n_div} diverged runs left out" if n_div else "")
    return TRAIN_COLLAPSE.judged(value, value >= LARGE_FACTOR, len(factors), detail)


def _test_gap(table: pd.DataFrame, claim: Claim, test_metric: str) -> dict:
    """min of <test variance> / TrainVariance at the last checkpoint, over the runs whose
    train loss there is <= END_TRAIN_LOSS (the paper's end of training)."""
    wide, info, n_div = _curve_variances(table, CURVE_EXPERIMENTS)
    if info.empty:
        return claim.untestable(_no_runs(CURVE_EXPERIMENTS, n_div))
    last = _last(wide, ["train_variance", test_metric])
    if last.empty:
        return claim.untestable(f"no checkpoint with both train_variance and {test_metric}")
    with np.errstate(divide="ignore"):
        ratio = last[test_metric] / last["train_variance"]
    ended = last["train_loss"] <= END_TRAIN_LOSS  # NaN loss (not recorded) does not qualify
    parts = [
        f"{_label(info.at[run, 'dataset'], info.at[run, 'arch'], info.at[run, 'seed'])} "
        f"{fmt(r)}x (train {fmt(last.at[run, 'train_variance'])}, "
        f"test {fmt(last.at[run, test_metric])}, train loss {fmt(last.at[run, 'train_loss'])}, "
        f"step {int(last.at[run, 'step'])})"
        for run, r in ratio.items()
    ]
    diverged = f"; {n_div} diverged runs left out" if n_div else ""
    if not ended.any():
        return claim.untestable(
            f"no run reached the paper's end of training (train loss <= {END_TRAIN_LOSS:g} at "
            f"the last checkpoint); over all {len(ratio)} runs the min ratio is "
            f"{fmt(ratio.min())}: " + "; ".join(parts) + diverged,
            value=float(ratio.min()),
            n=len(ratio),
        )
    value = float(ratio[ended].min())
    left_out = (
        f"; {int((~ended).sum())} runs left out (train loss above {END_TRAIN_LOSS:g})"
        if not ended.all()
        else ""
    )
    detail = "; ".join(p for p, e in zip(parts, ended, strict=True) if e) + left_out + diverged
    return claim.judged(value, value >= LARGE_FACTOR, int(ended.sum()), detail)


def _weak_strong_alike(table: pd.DataFrame) -> dict:
    """Spearman rho of WeakTestVariance vs StrongTestVariance over the curves checkpoints."""
    wide, info, n_div = _curve_variances(table, ("curves",))
    if info.empty:
        return WEAK_STRONG_ALIKE.untestable(_no_runs(("curves",), n_div))
    pts = wide.dropna(subset=["weak_test_variance", "strong_test_variance"])
    if len(pts) < MIN_POINTS_RHO:
        return WEAK_STRONG_ALIKE.untestable(
            f"{len(pts)} checkpoints with both test variances; Spearman needs >= {MIN_POINTS_RHO}",
            n=len(pts),
        )
    rho = _spearman(pts["weak_test_variance"], pts["strong_test_variance"])
    if not math.isfinite(rho):
        return WEAK_STRONG_ALIKE.untestable(
            "a test variance is constant over the checkpoints", n=len(pts)
        )
    first = pts.groupby("run").head(1)
    last = pts.groupby("run").tail(1)
    detail = (
        f"{len(pts)} checkpoints of {pts['run'].nunique()} run(s); first -> last checkpoint: "
        f"strong {fmt(first['strong_test_variance'].mean())} -> "
        f"{fmt(last['strong_test_variance'].mean())}, weak "
        f"{fmt(first['weak_test_variance'].mean())} -> {fmt(last['weak_test_variance'].mean())}"
    )
    return WEAK_STRONG_ALIKE.judged(rho, rho >= ALIKE_MIN_RHO, len(pts), detail)


# ---------------------------------------------------------------------------- claims 5-7
def _panel_rhos(points: pd.DataFrame, x: str, y: str, order: str) -> list[tuple]:
    """(dataset, arch, rho, n points) per panel, points sorted by ``order``."""
    out = []
    for (dataset, arch), cell in points.groupby(["dataset", "arch"], sort=True):
        cell = cell.sort_values(order)
        ok = cell[np.isfinite(cell[x].astype(float)) & np.isfinite(cell[y].astype(float))]
        out.append((dataset, arch, _spearman(ok[x], ok[y]), len(ok)))
    return out


def _judge_panels(claim: Claim, panels: list[tuple], *, want_positive: bool, what: str) -> dict:
    """Verdict over the panels with a rho: all > 0 (want_positive) or all < 0."""
    usable = [p for p in panels if math.isfinite(p[2])]
    parts = [
        f"{_label(d, a)} rho {fmt(r, 2)} ({n} {what})"
        if math.isfinite(r)
        else f"{_label(d, a)} untestable ({n} {what}, need >= {MIN_POINTS_RHO} with spread)"
        for d, a, r, n in panels
    ]
    n = sum(p[3] for p in usable)
    if not usable:
        return claim.untestable("no panel with a Spearman rho: " + "; ".join(parts), n=n)
    rhos = [p[2] for p in usable]
    value = min(rhos) if want_positive else max(rhos)
    passed = value > 0 if want_positive else value < 0
    return claim.judged(value, passed, n, "; ".join(parts))


def _fig4_claims(table: pd.DataFrame, config: dict) -> list[dict]:
    """Claims on fig4's points: rho(TrainVar, StrongTestVar) < 0 and rho(TrainVar, acc) > 0."""
    off = disabled_reason(config, STUDY, TRAIN_SIZE_EXPERIMENT)
    if off:
        return [ANTI_CORRELATED.untestable(off), WORSE_ACCURACY.untestable(off)]
    per_run, points, _ = fig4_points(table)
    if per_run.empty:
        reason = f"no '{TRAIN_SIZE_EXPERIMENT}' rows with variances in the table"
        return [ANTI_CORRELATED.untestable(reason), WORSE_ACCURACY.untestable(reason)]
    used = per_run[per_run["status"] != DIVERGED]
    if points.empty or used.empty:
        reason = f"all {len(per_run)} '{TRAIN_SIZE_EXPERIMENT}' runs diverged"
        return [ANTI_CORRELATED.untestable(reason), WORSE_ACCURACY.untestable(reason)]
    anti = _judge_panels(
        ANTI_CORRELATED,
        _panel_rhos(points, "x", "y", "n_train"),
        want_positive=False,
        what="sizes N",
    )
    worse = _judge_panels(
        WORSE_ACCURACY,
        _panel_rhos(points, "x", "acc", "n_train"),
        want_positive=True,
        what="sizes N",
    )
    seeds = sorted(int(s) for s in used["seed"].unique())
    context = f"seeds {seeds}"
    n_div = int((per_run["status"] == DIVERGED).sum())
    if n_div:
        context += f", {n_div} diverged runs left out"
    not_ended = used[used["status"] != END_OF_TRAINING_STATUS]
    statuses = ", ".join(f"{int(c)} {s}" for s, c in not_ended["status"].value_counts().items())
    out = []
    for claim, row in ((ANTI_CORRELATED, anti), (WORSE_ACCURACY, worse)):
        if len(not_ended) and row["verdict"] != NOT_TESTABLE:
            # the statistic is kept (value, detail) but the paper's end point was not reached
            row = claim.untestable(
                f"{len(not_ended)} of {len(used)} runs did not end on the train-loss threshold "
                f"({statuses}), so their last checkpoint is not the paper's end of training; "
                f"as computed: {row['detail']}; {context}",
                value=row["value"],
                n=row["n"],
            )
        else:
            row = {**row, "detail": f"{row['detail']}; {context}"}
        out.append(row)
    return out


def _fig5_claim(table: pd.DataFrame, config: dict) -> dict:
    """Claim on fig5's points: rho(StrongTestVar, fine-tuned accuracy) > 0 in every panel."""
    off = disabled_reason(config, STUDY, TRANSFER_EXPERIMENT)
    if off:
        return TRANSFER_WORSE.untestable(off)
    per_ckpt, points, _ = fig5_points(table)
    if per_ckpt.empty or points.empty:
        return TRANSFER_WORSE.untestable(
            f"no '{TRANSFER_EXPERIMENT}' checkpoints with both StrongTestVariance and a "
            "fine-tuned accuracy"
        )
    if per_ckpt["best"].notna().sum() == 0:
        return TRANSFER_WORSE.untestable("every fine-tune diverged (no usable LR)")
    row = _judge_panels(
        TRANSFER_WORSE, _panel_rhos(points, "x", "y", "step"), want_positive=True, what="ckpts"
    )
    seeds = sorted(int(s) for s in per_ckpt["seed"].unique())
    n_none = int(per_ckpt["best"].isna().sum())
    extra = f"; seeds {seeds}" + (
        f"; {n_none} (checkpoint, seed) pairs without a usable LR" if n_none else ""
    )
    return {**row, "detail": row["detail"] + extra}


# ---------------------------------------------------------------------------- entry point
def claims(table: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The nc_limits claims table (columns ``ncrepro.claims.COLUMNS``), one row per claim.

    ``table``: the study's long table; ``config``: {"preset", "datasets", "nc_limits": block}
    (read: nc_limits.enabled, nc_limits.train_size.enabled, nc_limits.transfer.enabled).
    """
    off = disabled_reason(config, STUDY)
    if off or table.empty:
        reason = off or "the nc_limits table is empty"
        return claims_frame(c.untestable(reason) for c in ALL_CLAIMS)
    rows = [
        _train_collapse(table),
        _test_gap(table, STRONG_TEST_FAILS, "strong_test_variance"),
        _test_gap(table, WEAK_TEST_FAILS, "weak_test_variance"),
        _weak_strong_alike(table),
        *_fig4_claims(table, config),
        _fig5_claim(table, config),
    ]
    return claims_frame(rows)


def claims_table(table: pd.DataFrame, config: dict) -> TableOutput:
    """``claims`` for the pipeline's table stage (CSV, Markdown, provenance of all rows)."""
    return TableOutput(
        frame=claims(table, config),
        title="nc_limits: claims of Hui, Belkin, Nakkiran (2022), 'Limitations of Neural "
        "Collapse for Understanding Generalization in Deep Learning'",
        note=note(config, __name__),
    )
