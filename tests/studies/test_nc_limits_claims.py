"""nc_limits claims table (and the shared claims helpers), on small hand-made tables whose
answers are known: a table where a claim holds gives "supported", one where it fails gives
"not supported", missing data gives "not testable at this scale"."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy.stats import spearmanr

from ncrepro.claims import (
    COLUMNS,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    Claim,
    check_claims,
    claims_frame,
)
from ncrepro.studies.nc_limits import claims as nl
from ncrepro.studies.nc_limits.transfer_figures import fig4_points

CONFIG = {
    "preset": "test",
    "datasets": {},
    "nc_limits": {"enabled": True, "train_size": {"enabled": True}, "transfer": {"enabled": True}},
}
STEPS = [10, 100, 1000]


# ---------------------------------------------------------------------------- builders
def _row(run, experiment, step, split, metric, value, **extra) -> dict:
    base = {
        "study": "nc_limits",
        "experiment": experiment,
        "run": run,
        "dataset": "digits",
        "arch": "resnet18",
        "loss": "ce",
        "seed": 0,
        "view": "full",
        "n_train": 100,
        "step": step,
        "split": split,
        "metric": metric,
        "value": float(value),
        "status": "completed",
    }
    return {**base, **extra}


def curve_rows(run, tv, stv, wtv, loss, *, experiment="grid", steps=STEPS, **extra) -> list:
    """One run's variances (and train loss) at each checkpoint."""
    rows = []
    series = [
        ("train_variance", "train", tv),
        ("strong_test_variance", "test", stv),
        ("weak_test_variance", "test", wtv),
        ("loss", "train", loss),
    ]
    for i, step in enumerate(steps):
        for metric, split, values in series:
            if values is not None:
                rows.append(_row(run, experiment, step, split, metric, values[i], **extra))
    return rows


def size_rows(sizes, tv, stv, acc, *, seeds=(0, 1), status="stopped_on_loss", **extra) -> list:
    """fig4: one run per (N, seed), its last checkpoint only."""
    rows = []
    for seed in seeds:
        for N, x, y, a in zip(sizes, tv, stv, acc, strict=True):
            run = f"resnet18-synth10-n{N}-s{seed}"
            kw = {"dataset": "synth10", "n_train": N, "seed": seed, "status": status, **extra}
            jitter = 0.001 * seed  # seeds differ a little
            for metric, split, v in (
                ("train_variance", "train", x + jitter),
                ("strong_test_variance", "test", y + jitter),
                ("accuracy", "test", a),
            ):
                rows.append(_row(run, "train_size", 500, split, metric, v, **kw))
    return rows


def transfer_rows(steps, stv, acc, *, seeds=(0, 1), probe_status="completed", **extra) -> list:
    """fig5: pretraining checkpoints with StrongTestVariance and a two-LR fine-tuning sweep."""
    rows = []
    for seed in seeds:
        run = f"mlp-digits-super-s{seed}"
        kw = {"arch": "mlp", "seed": seed, **extra}
        for step, x, a in zip(steps, stv, acc, strict=True):
            rows.append(_row(run, "transfer", step, "test", "strong_test_variance", x, **kw))
            for lr, shift in ((0.01, -0.05), (0.1, 0.0)):
                rows.append(
                    _row(
                        run,
                        "transfer",
                        step,
                        "test",
                        "finetune_accuracy",
                        a + shift,
                        probe="finetune",
                        probe_lr=lr,
                        probe_status=probe_status,
                        **kw,
                    )
                )
    return rows


def frame(*row_lists) -> pd.DataFrame:
    return pd.DataFrame.from_records([r for rows in row_lists for r in rows])


def by_id(claims: pd.DataFrame) -> dict:
    return {r["claim_id"]: r for _, r in claims.iterrows()}


def run_claims(table: pd.DataFrame, config: dict = CONFIG) -> dict:
    out = nl.claims(table, config)
    check_claims(out)
    assert list(out.columns) == COLUMNS
    assert list(out["claim_id"]) == [c.claim_id for c in nl.ALL_CLAIMS]
    return by_id(out)


# ---------------------------------------------------------------------------- shared helpers
CLAIM = Claim("some_claim", "A claim.", "Sec. 1", "a statistic", "value > 0")


def test_claims_frame_column_order_and_types():
    out = claims_frame(
        [CLAIM.judged(1.5, True, 3, "ok"), Claim("other", "B.", "Fig. 2", "s", "c").untestable("x")]
    )
    assert list(out.columns) == COLUMNS
    assert list(out["verdict"]) == [SUPPORTED, NOT_TESTABLE]
    assert out["value"].dtype == "float64" and out["n"].dtype == "int64"
    assert math.isnan(out["value"].iloc[1])
    assert CLAIM.judged(-1.0, False, 1)["verdict"] == NOT_SUPPORTED


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f.drop(columns="criterion"), "columns"),
        (lambda f: f.assign(extra=1), "columns"),
        (lambda f: f[list(reversed(COLUMNS))], "columns"),
        (lambda f: f.assign(verdict="maybe"), "verdict"),
        (lambda f: f.assign(detail="|x| > 0"), "Markdown"),
        (lambda f: f.assign(claim_id="Not A Slug"), "slug"),
        (lambda f: pd.concat([f, f], ignore_index=True), "duplicate"),
        (lambda f: f.assign(value=float("nan")), "not NaN"),
        (lambda f: f.assign(n=-1), "non-negative"),
        (lambda f: f.assign(verdict=NOT_TESTABLE, detail=""), "reason"),
    ],
)
def test_check_claims_rejects(mutate, message):
    good = claims_frame([CLAIM.judged(1.0, True, 2, "fine")])
    check_claims(good)
    with pytest.raises(ValueError, match=message):
        check_claims(mutate(good))


# ---------------------------------------------------------------------------- claims 1-4
def test_collapse_claims_supported():
    # two grid runs collapse 100x on train, test stays >= 100x above; the curves run is the
    # first grid run listed again (counted once)
    tv, stv, wtv, loss = [1.0, 0.1, 0.01], [3.0, 2.0, 1.5], [2.5, 1.8, 1.2], [1.0, 1e-3, 1e-6]
    table = frame(
        curve_rows("a", tv, stv, wtv, loss),
        curve_rows("b", [2.0, 0.2, 0.02], stv, wtv, loss, dataset="synth10"),
        curve_rows("a", tv, stv, wtv, loss, experiment="curves"),
    )
    got = run_claims(table)
    assert got["train_collapse"]["verdict"] == SUPPORTED
    assert got["train_collapse"]["value"] == pytest.approx(100.0)
    assert got["train_collapse"]["n"] == 2
    assert got["strong_test_collapse_fails"]["verdict"] == SUPPORTED
    assert got["strong_test_collapse_fails"]["value"] == pytest.approx(75.0)
    assert got["weak_test_collapse_fails"]["verdict"] == SUPPORTED
    assert got["weak_test_collapse_fails"]["value"] == pytest.approx(60.0)
    assert got["weak_strong_alike"]["verdict"] == SUPPORTED
    assert got["weak_strong_alike"]["value"] == pytest.approx(1.0)
    assert got["weak_strong_alike"]["n"] == 3


def test_exact_train_collapse_gives_an_infinite_factor():
    table = frame(curve_rows("a", [1.0, 0.1, 0.0], [3, 2, 1], [3, 2, 1], [1, 1e-3, 0.0]))
    got = run_claims(table)
    assert got["train_collapse"]["value"] == math.inf
    assert got["train_collapse"]["verdict"] == SUPPORTED
    assert got["strong_test_collapse_fails"]["verdict"] == SUPPORTED


def test_collapse_claims_not_supported():
    # train falls only 2x, test ends 2x above train, weak rises while strong falls
    tv, stv, wtv, loss = [1.0, 0.8, 0.5], [3.0, 2.0, 1.0], [0.2, 0.5, 0.9], [1.0, 1e-3, 1e-6]
    table = frame(
        curve_rows("a", tv, stv, wtv, loss),
        curve_rows("a", tv, stv, wtv, loss, experiment="curves"),
    )
    got = run_claims(table)
    assert got["train_collapse"]["verdict"] == NOT_SUPPORTED
    assert got["train_collapse"]["value"] == pytest.approx(2.0)
    assert got["strong_test_collapse_fails"]["verdict"] == NOT_SUPPORTED
    assert got["strong_test_collapse_fails"]["value"] == pytest.approx(2.0)
    assert got["weak_test_collapse_fails"]["verdict"] == NOT_SUPPORTED
    assert got["weak_strong_alike"]["verdict"] == NOT_SUPPORTED
    assert got["weak_strong_alike"]["value"] == pytest.approx(-1.0)


def test_test_gap_needs_the_papers_end_of_training():
    tv, stv, wtv = [1.0, 0.1, 0.01], [3.0, 2.0, 1.5], [2.5, 1.8, 1.2]
    # no run reached train loss <= 1e-5: not testable, the ratio is still reported
    unconverged = frame(curve_rows("a", tv, stv, wtv, [1.0, 0.5, 0.1]))
    got = run_claims(unconverged)["strong_test_collapse_fails"]
    assert got["verdict"] == NOT_TESTABLE
    assert got["value"] == pytest.approx(150.0)
    assert "end of training" in got["detail"]
    # no train loss recorded: cannot tell, so not testable either
    no_loss = frame(curve_rows("a", tv, stv, wtv, None))
    assert run_claims(no_loss)["strong_test_collapse_fails"]["verdict"] == NOT_TESTABLE
    # only the run that reached it counts
    mixed = frame(
        curve_rows("a", tv, stv, wtv, [1.0, 1e-3, 1e-6]),
        curve_rows("b", tv, [3.0, 2.0, 0.02], wtv, [1.0, 0.5, 0.1]),
    )
    got = run_claims(mixed)["strong_test_collapse_fails"]
    assert got["verdict"] == SUPPORTED and got["n"] == 1
    assert "1 runs left out" in got["detail"]


def test_collapse_claims_untestable_without_data():
    one_ckpt = frame(
        curve_rows("a", [1.0], [2.0], [2.0], [1e-6], steps=[10]),
        curve_rows("a", [1.0], [2.0], [2.0], [1e-6], steps=[10], experiment="curves"),
    )
    got = run_claims(one_ckpt)
    assert got["train_collapse"]["verdict"] == NOT_TESTABLE
    assert got["weak_strong_alike"]["verdict"] == NOT_TESTABLE
    assert "Spearman needs" in got["weak_strong_alike"]["detail"]

    diverged = frame(
        curve_rows("a", [1.0, 0.1, 0.01], [3, 2, 1], [3, 2, 1], [1, 1, 1], status="diverged")
    )
    got = run_claims(diverged)
    for claim_id in ("train_collapse", "strong_test_collapse_fails", "weak_test_collapse_fails"):
        assert got[claim_id]["verdict"] == NOT_TESTABLE
        assert "diverged" in got[claim_id]["detail"]

    for table, config, reason in (
        (pd.DataFrame(), CONFIG, "empty"),
        (diverged, {**CONFIG, "nc_limits": {"enabled": False}}, "disabled"),
    ):
        got = run_claims(table, config)
        assert {r["verdict"] for r in got.values()} == {NOT_TESTABLE}
        assert all(reason in r["detail"] for r in got.values())


# ---------------------------------------------------------------------------- claims 5-6 (fig4)
SIZES = [100, 200, 400]


def test_fig4_claims_supported():
    # larger N: more train variance, less test variance, better accuracy
    table = frame(size_rows(SIZES, [0.1, 0.2, 0.3], [3.0, 2.0, 1.0], [0.5, 0.6, 0.7]))
    got = run_claims(table)
    anti, worse = got["train_test_anticorrelated"], got["train_collapse_worse_accuracy"]
    assert anti["verdict"] == SUPPORTED and anti["value"] == pytest.approx(-1.0)
    assert worse["verdict"] == SUPPORTED and worse["value"] == pytest.approx(1.0)
    assert anti["n"] == 3
    # the statistic is Spearman on the figure's own points
    _, points, _ = fig4_points(table)
    assert anti["value"] == pytest.approx(spearmanr(points["x"], points["y"]).statistic)


def test_fig4_claims_not_supported():
    table = frame(size_rows(SIZES, [0.1, 0.2, 0.3], [1.0, 2.0, 3.0], [0.7, 0.6, 0.5]))
    got = run_claims(table)
    assert got["train_test_anticorrelated"]["verdict"] == NOT_SUPPORTED
    assert got["train_test_anticorrelated"]["value"] == pytest.approx(1.0)
    assert got["train_collapse_worse_accuracy"]["verdict"] == NOT_SUPPORTED


def test_fig4_claims_need_the_loss_threshold_and_three_sizes():
    capped = frame(
        size_rows(SIZES, [0.1, 0.2, 0.3], [3.0, 2.0, 1.0], [0.5, 0.6, 0.7], status="capped")
    )
    got = run_claims(capped)["train_test_anticorrelated"]
    assert got["verdict"] == NOT_TESTABLE
    assert got["value"] == pytest.approx(-1.0)  # computed, but not at the paper's end point
    assert "capped" in got["detail"]

    two_sizes = frame(size_rows(SIZES[:2], [0.1, 0.2], [3.0, 2.0], [0.5, 0.6]))
    got = run_claims(two_sizes)["train_test_anticorrelated"]
    assert got["verdict"] == NOT_TESTABLE and "need >= 3" in got["detail"]

    diverged = frame(
        size_rows(SIZES, [0.1, 0.2, 0.3], [3.0, 2.0, 1.0], [0.5, 0.6, 0.7], status="diverged")
    )
    got = run_claims(diverged)["train_test_anticorrelated"]
    assert got["verdict"] == NOT_TESTABLE and "diverged" in got["detail"]

    ok = frame(size_rows(SIZES, [0.1, 0.2, 0.3], [3.0, 2.0, 1.0], [0.5, 0.6, 0.7]))
    off = {**CONFIG, "nc_limits": {**CONFIG["nc_limits"], "train_size": {"enabled": False}}}
    got = run_claims(ok, off)["train_test_anticorrelated"]
    assert got["verdict"] == NOT_TESTABLE and "disabled" in got["detail"]


# ---------------------------------------------------------------------------- claim 7 (fig5)
CKPTS = [10, 100, 1000]


def test_fig5_claim_supported_and_not():
    # later checkpoints: lower variance (more collapse) and lower fine-tuned accuracy
    worse = frame(transfer_rows(CKPTS, [3.0, 2.0, 1.0], [0.8, 0.7, 0.6]))
    got = run_claims(worse)["collapsed_transfer_worse"]
    assert got["verdict"] == SUPPORTED and got["value"] == pytest.approx(1.0)
    assert got["n"] == 3

    better = frame(transfer_rows(CKPTS, [3.0, 2.0, 1.0], [0.6, 0.7, 0.8]))
    got = run_claims(better)["collapsed_transfer_worse"]
    assert got["verdict"] == NOT_SUPPORTED and got["value"] == pytest.approx(-1.0)


def test_fig5_claim_untestable_without_usable_fine_tunes():
    diverged = frame(
        transfer_rows(CKPTS, [3.0, 2.0, 1.0], [0.8, 0.7, 0.6], probe_status="diverged")
    )
    got = run_claims(diverged)["collapsed_transfer_worse"]
    assert got["verdict"] == NOT_TESTABLE and "diverged" in got["detail"]

    two = frame(transfer_rows(CKPTS[:2], [3.0, 2.0], [0.8, 0.7]))
    assert run_claims(two)["collapsed_transfer_worse"]["verdict"] == NOT_TESTABLE

    ok = frame(transfer_rows(CKPTS, [3.0, 2.0, 1.0], [0.8, 0.7, 0.6]))
    off = {**CONFIG, "nc_limits": {**CONFIG["nc_limits"], "transfer": {"enabled": False}}}
    got = run_claims(ok, off)["collapsed_transfer_worse"]
    assert got["verdict"] == NOT_TESTABLE and "disabled" in got["detail"]


# ---------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_claims_on_the_smoke_table(smoke_run):
    """The smoke preset's table: every claim gets a valid row; its fig4 (two sizes N) and
    fig5 (two checkpoints) cannot give a Spearman rho, so they are not testable."""
    table = pd.read_parquet(smoke_run / "results/smoke/tables/nc_limits.parquet")
    got = run_claims(table)
    assert got["train_collapse"]["verdict"] in (SUPPORTED, NOT_SUPPORTED)
    assert got["train_collapse"]["n"] >= 2
    assert got["train_test_anticorrelated"]["verdict"] == NOT_TESTABLE
    assert got["collapsed_transfer_worse"]["verdict"] == NOT_TESTABLE
