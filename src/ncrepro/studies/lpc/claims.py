"""Claims table of the lpc study (Sbailò & Ghiringhelli, "Latent Point Collapse on a Low
Dimensional Embedding in Deep Neural Network Classifiers"), from the study's long table.

Every statistic is computed on the best-LR run per seed (selected by final test
accuracy, as the paper does), at the last checkpoint, averaged over seeds per (dataset,
model) — the numbers of tables 1, 2 and 4 — and a claim must hold in every dataset
section of the run. "Penalized" models are those with the L2 penalty on the
classifier's input (LPC, LPC-Wide, LPC-Narrow, LPC-NoPen, LPC-SCL); "LPC-linear" those
with it on a linear penultimate layer (LPC, LPC-Wide, LPC-Narrow, LPC-SCL).

A claim is judged only if every model it compares ended in the terminal phase of training
(train accuracy >= `lpc.convergence_accuracy`, 99.9 %, at the last checkpoint), where the
paper makes its claims (TPT_RULE below); otherwise it is "not testable at this scale",
with the statistic as computed in `value` and `detail`.

The thresholds are the constants below, fixed from the paper's wording before any run.
"""

from __future__ import annotations

import math

import pandas as pd

from ncrepro.claims import Claim, claims_frame, fmt, note
from ncrepro.studies import TableOutput
from ncrepro.studies.lpc.models import BASELINE, LPC_LINEAR, MARGIN_BASELINES, MODELS
from ncrepro.studies.lpc.report import final_values, per_model, section_order, select_runs

PENALIZED = tuple(m.name for m in MODELS if m.penalized)
UNPENALIZED = tuple(m.name for m in MODELS if not m.penalized)

# ---------------------------------------------------------------------------- the rules
# "converges to zero only for architectures that implement an L2 loss on the penultimate
# layer" / "at least an order of magnitude lower" (Sec. III.1, App. E): every penalized
# model's NC1/d at least 10x below every unpenalized model's.
NC1_FACTOR = 10.0
# "more than two orders of magnitude larger than the baseline" (Sec. III.1).
SEPARATION_FACTOR = 100.0
# "SCL, ArcFace, and CosFace improve the class separation ratio by less than an order of
# magnitude relative to the baseline" (Sec. III.1).
BASELINE_FACTOR = 10.0
# "collapse points consistently remain at an approximately constant distance from the
# origin": coefficient of variation of the norms at most 10 %.
NORM_CV_MAX = 0.1
# "the entropy of the distribution sharply decreases": at least 1 nat per dimension below
# the baseline's (standardized features: a Gaussian has 1.42 nats per dimension).
ENTROPY_DROP = 1.0
# "over two orders of magnitude of improvement" in robustness for a linear penultimate
# layer with the penalty (Sec. III.2).
ROBUSTNESS_FACTOR = 100.0
# "larger class separation directly correlate[s] with improved robustness" (Fig. 3):
# Spearman rho over the models, at least 0.5, with at least MIN_POINTS models.
RHO_MIN, MIN_POINTS = 0.5, 5
# Binarity "holds" (App. D): every node's two GMM peaks are at least 4 component stds
# apart (a mixture of two equal Gaussians is bimodal beyond 2), for every LPC-linear
# model; it "does not hold" for LinPen: its mean peak distance is below 4.
PEAK_DISTANCE_BINARY = 4.0
# TPT_RULE: the paper's claims are about networks trained "so that most training occurs
# in the terminal phase of training (TPT), defined as the period after the network
# achieves 99.9% training accuracy" (App. C): a claim is judged only if every model it
# compares reached `lpc.convergence_accuracy` (train, clean images) at its last
# checkpoint in every seed; otherwise it is not testable at this scale.
DEFAULT_TPT_ACCURACY = 0.999

NC1_ONLY_PENALIZED = Claim(
    "nc1_zero_only_with_penalty",
    "NC1/d converges to ~0 only for the architectures with the L2 penalty on the "
    "penultimate layer: all same-class latents collapse to a point.",
    "Sec. III.1, Table 1, App. E / Fig. 5",
    "per dataset: max over penalized models / min over unpenalized models of NC1/d (train "
    "features, last checkpoint, mean over seeds); value = the largest over datasets",
    f"ratio <= 1/{NC1_FACTOR:g} in every dataset",
)
SEPARATION_LPC = Claim(
    "separation_two_orders",
    "Architectures with the L2 penalty on the penultimate layer reach a class separation "
    "ratio more than two orders of magnitude above the baseline (NoPen).",
    "Sec. III.1, Table 1",
    "per dataset: min over penalized models of separation ratio / NoPen's (train features, "
    "last checkpoint, mean over seeds); value = the smallest over datasets",
    f"ratio >= {SEPARATION_FACTOR:g} in every dataset",
)
SEPARATION_BASELINES = Claim(
    "separation_baselines_within_one_order",
    "SCL, ArcFace and CosFace improve the class separation ratio by less than an order of "
    "magnitude over the baseline.",
    "Sec. III.1, Table 1",
    "per dataset: max over SCL, ArcFace, CosFace of separation ratio / NoPen's; value = "
    "the largest over datasets",
    f"ratio < {BASELINE_FACTOR:g} in every dataset",
)
EQUAL_NORMS = Claim(
    "collapse_points_equal_norms",
    "The collapse points lie at an approximately constant distance from the origin.",
    "Sec. III.1, Table 1, App. A",
    "max over penalized models and datasets of the coefficient of variation of the norms of z over "
    "the train samples (the LPC code's coeff_var_norm; last checkpoint, mean over seeds)",
    f"CV <= {NORM_CV_MAX:g}",
)
ENTROPY = Claim(
    "entropy_drops",
    "The entropy of the latent distribution sharply decreases under latent point collapse.",
    "Sec. III.1, Table 1, Sec. II",
    "min over datasets and penalized models of (NoPen's entropy - the model's), "
    "Kozachenko-Leonenko (k = 20) of standardized test features, nats per dimension",
    f"drop >= {ENTROPY_DROP:g} nat per dimension for every penalized model",
)
ROBUSTNESS = Claim(
    "robustness_two_orders",
    "With the L2 penalty on a linear penultimate layer, robustness to input perturbations "
    "grows by over two orders of magnitude over the baseline.",
    "Sec. III.2, Table 2",
    "per dataset: min over LPC, LPC-Wide, LPC-Narrow, LPC-SCL of DeepFool robustness / "
    "NoPen's (test images, last checkpoint, mean over seeds); value = the smallest",
    f"ratio >= {ROBUSTNESS_FACTOR:g} in every dataset",
)
SEPARATION_ROBUSTNESS = Claim(
    "separation_robustness_correlate",
    "Larger class separation goes with larger robustness (across models).",
    "Sec. III.2, Fig. 3",
    "per dataset: Spearman rho over models between the separation ratio (train) and the "
    "DeepFool robustness (mean over seeds, fig3's points); value = the smallest",
    f"rho >= {RHO_MIN:g} in every dataset (>= {MIN_POINTS} models)",
)
NARROW_ROBUST = Claim(
    "narrow_most_robust",
    "A lower-dimensional penultimate layer yields better robustness: LPC-Narrow is the "
    "most robust of LPC, LPC-Wide, LPC-Narrow.",
    "Sec. III.2, Table 2",
    "per dataset: LPC-Narrow's DeepFool robustness / the larger of LPC's and LPC-Wide's; "
    "value = the smallest over datasets",
    "ratio > 1 in every dataset",
)
INTERMEDIATE_ACCURATE = Claim(
    "intermediate_most_accurate",
    "An intermediate-dimensional penultimate layer gives better generalization: LPC is the "
    "most accurate of LPC, LPC-Wide, LPC-Narrow.",
    "Sec. III.2, Table 2",
    "per dataset: LPC's test accuracy minus the larger of LPC-Wide's and LPC-Narrow's "
    "(last checkpoint, mean over seeds); value = the smallest over datasets",
    "difference > 0 in every dataset",
)
GENERALIZATION = Claim(
    "lpc_generalizes_better",
    "LPC improves generalization over the baseline (a small but significant gain).",
    "Sec. III.2, Table 2, Sec. IV.1",
    "per dataset: LPC's test accuracy minus NoPen's (mean over seeds); value = the smallest",
    "difference > 0 in every dataset",
)
BINARITY_LPC = Claim(
    "binarity_lpc",
    "Binary encoding: in LPC models every penultimate node takes one of two values (a "
    "bimodal GMM fits every node, even the lowest-scoring).",
    "App. D, Table 4, Fig. 4",
    "min over LPC, LPC-Wide, LPC-Narrow, LPC-SCL, datasets, seeds and nodes of the GMM peak "
    "distance abs(m1 - m2) / mean std (train features, last checkpoint)",
    f"min peak distance >= {PEAK_DISTANCE_BINARY:g}",
)
BINARITY_LINPEN = Claim(
    "binarity_not_linpen",
    "Binarity does not hold for LinPen (a linear penultimate layer without the penalty).",
    "App. D, Table 4, Fig. 4",
    "max over datasets of LinPen's peak distance, mean over nodes and seeds",
    f"mean peak distance < {PEAK_DISTANCE_BINARY:g} in every dataset",
)
ALL_CLAIMS = [
    NC1_ONLY_PENALIZED,
    SEPARATION_LPC,
    SEPARATION_BASELINES,
    EQUAL_NORMS,
    ENTROPY,
    ROBUSTNESS,
    SEPARATION_ROBUSTNESS,
    NARROW_ROBUST,
    INTERMEDIATE_ACCURATE,
    GENERALIZATION,
    BINARITY_LPC,
    BINARITY_LINPEN,
]


# ---------------------------------------------------------------------------- helpers
class _Values:
    """Per (section, model) means of the selected runs' final values, and which models
    ended in the terminal phase of training."""

    def __init__(self, table: pd.DataFrame, tpt_accuracy: float):
        self.table = table
        self.selected = select_runs(table)
        self.sections = section_order(table)
        self.tpt_accuracy = tpt_accuracy
        self._cache: dict = {}
        final = final_values(table, self.selected, "accuracy", "train")
        self.train_accuracy = final.groupby(["paper_dataset", "model"])["value"].min().to_dict()

    def outside_tpt(self, models) -> list[str]:
        """(section/model) of `models` with a selected run whose train accuracy at the
        last checkpoint is below the TPT threshold."""
        return [
            f"{s}/{m} {self.train_accuracy.get((s, m), math.nan):.3f}"
            for s in self.sections
            for m in models
            if not self.train_accuracy.get((s, m), math.nan) >= self.tpt_accuracy
        ]

    def __call__(self, metric: str, split: str) -> dict:
        key = (metric, split)
        if key not in self._cache:
            self._cache[key] = per_model(self.table, self.selected, metric, split)
        return self._cache[key]

    def get(self, metric, split, section, model) -> float:
        value = self(metric, split).get((section, model), math.nan)
        return float(value)


def _missing(values: dict, sections, models) -> list[str]:
    return [
        f"{s}/{m}"
        for s in sections
        for m in models
        if not math.isfinite(values.get((s, m), math.nan))
    ]


def _per_section(
    claim: Claim,
    v: _Values,
    need: dict[tuple[str, str], tuple],
    statistic,
    passes,
    worst,
    digits: int = 3,
) -> dict:
    """Judge a claim computed per section: `need` maps (metric, split) -> models whose
    values must exist; `statistic(section) -> (value, detail)`; `passes(value)`; the
    overall value is `worst` (min or max) over sections."""
    if not v.sections:
        return claim.untestable("no runs with results in the table")
    missing = []
    for (metric, split), models in need.items():
        missing += [f"{metric}: {x}" for x in _missing(v(metric, split), v.sections, models)]
    if missing:
        return claim.untestable("no value for " + "; ".join(missing))
    values, parts = [], []
    for section in v.sections:
        value, detail = statistic(section)
        values.append(value)
        parts.append(f"{section}: {fmt(value, digits)} ({detail})")
    overall = worst(values)
    models = sorted({m for ms in need.values() for m in ms})
    return _judge_in_tpt(
        claim, v, models, overall, all(passes(x) for x in values), len(values), "; ".join(parts)
    )


def _judge_in_tpt(claim, v: _Values, models, value, passed, n, detail) -> dict:
    """The verdict, if every model the claim compares ended in the terminal phase of
    training (TPT_RULE); otherwise not testable, with the value as computed."""
    outside = v.outside_tpt(models)
    if outside:
        return claim.untestable(
            f"not in the terminal phase (train accuracy < {v.tpt_accuracy:g} at the last "
            f"checkpoint): {', '.join(outside)}; as computed: {detail}",
            value=value,
            n=n,
        )
    return claim.judged(value, passed, n, detail)


def _ratio_claim(claim, v, metric, split, models, reference, worst, passes):
    def statistic(section):
        ref = v.get(metric, split, section, reference)
        ratios = {m: v.get(metric, split, section, m) / ref for m in models}
        pick = worst(ratios.values())
        who = next(m for m, r in ratios.items() if r == pick)
        return pick, f"{who}; " + ", ".join(f"{m} {fmt(r)}" for m, r in ratios.items())

    return _per_section(claim, v, {(metric, split): (*models, reference)}, statistic, passes, worst)


# ---------------------------------------------------------------------------- claims
def _nc1(v: _Values) -> dict:
    def statistic(section):
        pen = {m: v.get("nc1_per_dim", "train", section, m) for m in PENALIZED}
        unpen = {m: v.get("nc1_per_dim", "train", section, m) for m in UNPENALIZED}
        worst_pen = max(pen, key=pen.get)
        best_unpen = min(unpen, key=unpen.get)
        ratio = pen[worst_pen] / unpen[best_unpen]
        return ratio, f"{worst_pen} {fmt(pen[worst_pen])} vs {best_unpen} {fmt(unpen[best_unpen])}"

    need = {("nc1_per_dim", "train"): PENALIZED + UNPENALIZED}
    return _per_section(NC1_ONLY_PENALIZED, v, need, statistic, lambda r: r <= 1 / NC1_FACTOR, max)


def _norm_cv(v: _Values) -> dict:
    need = {("norm_cv", "train"): PENALIZED}

    def statistic(section):
        return _max_with_name(v, "norm_cv", "train", section, PENALIZED)

    return _per_section(EQUAL_NORMS, v, need, statistic, lambda x: x <= NORM_CV_MAX, max)


def _max_with_name(v, metric, split, section, models):
    values = {m: v.get(metric, split, section, m) for m in models}
    name = max(values, key=values.get)
    return values[name], f"largest: {name}; " + ", ".join(
        f"{m} {fmt(x)}" for m, x in values.items()
    )


def _entropy(v: _Values) -> dict:
    def statistic(section):
        base = v.get("entropy", "test", section, BASELINE)
        drops = {m: base - v.get("entropy", "test", section, m) for m in PENALIZED}
        name = min(drops, key=drops.get)
        return drops[name], f"NoPen {fmt(base)}; smallest drop {name}; " + ", ".join(
            f"{m} {fmt(d)}" for m, d in drops.items()
        )

    need = {("entropy", "test"): (*PENALIZED, BASELINE)}
    return _per_section(ENTROPY, v, need, statistic, lambda d: d >= ENTROPY_DROP, min)


def _correlation(v: _Values) -> dict:
    from scipy.stats import spearmanr

    sep, rob = v("separation_ratio", "train"), v("deepfool_robustness", "test")

    def statistic(section):
        models = [m for (s, m) in sep if s == section and (s, m) in rob]
        x = [sep[(section, m)] for m in models]
        y = [rob[(section, m)] for m in models]
        if len(models) < MIN_POINTS:
            return math.nan, f"{len(models)} models"
        return float(spearmanr(x, y).statistic), f"{len(models)} models"

    if not v.sections:
        return SEPARATION_ROBUSTNESS.untestable("no runs with results in the table")
    stats = [statistic(s) for s in v.sections]
    if any(not math.isfinite(r) for r, _ in stats):
        return SEPARATION_ROBUSTNESS.untestable(
            f"fewer than {MIN_POINTS} models with both values: "
            + "; ".join(f"{s}: {d}" for s, (_, d) in zip(v.sections, stats, strict=True))
        )
    value = min(r for r, _ in stats)
    detail = "; ".join(
        f"{s}: rho {fmt(r, 2)} ({d})" for s, (r, d) in zip(v.sections, stats, strict=True)
    )
    models = sorted({m for (_s, m) in sep if (_s, m) in rob})
    return _judge_in_tpt(
        SEPARATION_ROBUSTNESS, v, models, value, value >= RHO_MIN, len(stats), detail
    )


def _narrow(v: _Values) -> dict:
    def statistic(section):
        r = {
            m: v.get("deepfool_robustness", "test", section, m)
            for m in ("LPC", "LPC-Wide", "LPC-Narrow")
        }
        other = max(r["LPC"], r["LPC-Wide"])
        return r["LPC-Narrow"] / other, ", ".join(f"{m} {fmt(x)}" for m, x in r.items())

    need = {("deepfool_robustness", "test"): ("LPC", "LPC-Wide", "LPC-Narrow")}
    return _per_section(NARROW_ROBUST, v, need, statistic, lambda x: x > 1, min)


def _intermediate(v: _Values) -> dict:
    def statistic(section):
        a = {m: v.get("accuracy", "test", section, m) for m in ("LPC", "LPC-Wide", "LPC-Narrow")}
        return a["LPC"] - max(a["LPC-Wide"], a["LPC-Narrow"]), ", ".join(
            f"{m} {x:.4f}" for m, x in a.items()
        )

    need = {("accuracy", "test"): ("LPC", "LPC-Wide", "LPC-Narrow")}
    return _per_section(INTERMEDIATE_ACCURATE, v, need, statistic, lambda x: x > 0, min, digits=3)


def _generalization(v: _Values) -> dict:
    def statistic(section):
        lpc, base = (
            v.get("accuracy", "test", section, "LPC"),
            v.get("accuracy", "test", section, BASELINE),
        )
        return lpc - base, f"LPC {lpc:.4f}, NoPen {base:.4f}"

    need = {("accuracy", "test"): ("LPC", BASELINE)}
    return _per_section(GENERALIZATION, v, need, statistic, lambda x: x > 0, min)


def _binarity_lpc(v: _Values) -> dict:
    values = v("binarity_peak_distance_min", "train")
    missing = _missing(values, v.sections, LPC_LINEAR)
    if not v.sections or missing:
        return BINARITY_LPC.untestable(
            "no binarity values (penultimate width above lpc.metrics.binarity_max_dim, or no "
            "run) for " + ("; ".join(missing) or "any model")
        )
    # the min over seeds of each seed's min over nodes: from the selected runs directly
    sel = v.selected[v.selected["model"].isin(LPC_LINEAR)]
    rows = v.table[
        (v.table["metric"] == "binarity_peak_distance_min")
        & (v.table["split"] == "train")
        & v.table["run"].isin(sel["run"])
    ]
    rows = rows.loc[rows.groupby("run")["step"].idxmax()]
    lowest = rows.loc[rows["value"].idxmin()]
    per = rows.groupby(["paper_dataset", "model"])["value"].min()
    detail = (
        f"lowest: {lowest['paper_dataset']} {lowest['model']} seed {lowest['seed']}; "
        + ", ".join(f"{d} {m} {fmt(x)}" for (d, m), x in per.items())
    )
    value = float(lowest["value"])
    passed = value >= PEAK_DISTANCE_BINARY
    return _judge_in_tpt(BINARITY_LPC, v, LPC_LINEAR, value, passed, len(rows), detail)


def _binarity_linpen(v: _Values) -> dict:
    def statistic(section):
        x = v.get("binarity_peak_distance_mean", "train", section, "LinPen")
        return x, "LinPen"

    need = {("binarity_peak_distance_mean", "train"): ("LinPen",)}
    return _per_section(
        BINARITY_LINPEN, v, need, statistic, lambda x: x < PEAK_DISTANCE_BINARY, max
    )


# ---------------------------------------------------------------------------- entry point
def claims(table: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The lpc claims table (columns ``ncrepro.claims.COLUMNS``), one row per claim."""
    block = (config or {}).get("lpc") or {}
    if not block.get("enabled", True) or table.empty:
        reason = "lpc disabled in config" if not block.get("enabled", True) else "empty table"
        return claims_frame(c.untestable(reason) for c in ALL_CLAIMS)
    v = _Values(table, block.get("convergence_accuracy", DEFAULT_TPT_ACCURACY))
    rows = [
        _nc1(v),
        _ratio_claim(
            SEPARATION_LPC,
            v,
            "separation_ratio",
            "train",
            PENALIZED,
            BASELINE,
            min,
            lambda r: r >= SEPARATION_FACTOR,
        ),
        _ratio_claim(
            SEPARATION_BASELINES,
            v,
            "separation_ratio",
            "train",
            MARGIN_BASELINES,
            BASELINE,
            max,
            lambda r: r < BASELINE_FACTOR,
        ),
        _norm_cv(v),
        _entropy(v),
        _ratio_claim(
            ROBUSTNESS,
            v,
            "deepfool_robustness",
            "test",
            LPC_LINEAR,
            BASELINE,
            min,
            lambda r: r >= ROBUSTNESS_FACTOR,
        ),
        _correlation(v),
        _narrow(v),
        _intermediate(v),
        _generalization(v),
        _binarity_lpc(v),
        _binarity_linpen(v),
    ]
    seeds = sorted(int(s) for s in v.selected["seed"].unique()) if len(v.selected) else []
    context = f"; seeds {seeds}, best LR per seed of {block.get('lrs')}"
    rows = [
        r if r["verdict"].startswith("not testable") else {**r, "detail": r["detail"] + context}
        for r in rows
    ]
    return claims_frame(rows)


def claims_table(table: pd.DataFrame, config: dict) -> TableOutput:
    return TableOutput(
        frame=claims(table, config),
        title="lpc: claims of Sbailò & Ghiringhelli, 'Latent Point Collapse on a Low "
        "Dimensional Embedding in Deep Neural Network Classifiers'",
        note=note(config, __name__),
    )
