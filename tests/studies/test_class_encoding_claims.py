"""class_encoding claims table, on small hand-made tables with known answers and on the real
(cheap, exact) study table of the quick configuration."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ncrepro import ufm
from ncrepro.claims import COLUMNS, NOT_SUPPORTED, NOT_TESTABLE, SUPPORTED, check_claims
from ncrepro.studies.class_encoding import claims as cc
from ncrepro.studies.class_encoding import solve as ce

K, N_PER_CLASS, LW, LH = 4, 5, 0.005, 0.005
CRIT = ufm.critical_lambda_b(K, N_PER_CLASS, LW, LH)  # 0.0468...
CONFIG = {"preset": "test", "datasets": {}, "class_encoding": {"enabled": True}}


def row(metric, value, theory=math.nan, source="", **extra) -> dict:
    """One long-table row; defaults: one-hot, balanced, transition experiment."""
    base = {
        "study": "class_encoding",
        "experiment": "transition",
        "encoding": "one_hot",
        "delta": 0.0,
        "seed": 0,
        "class_sizes": ",".join([str(N_PER_CLASS)] * K),
        "K": K,
        "n": N_PER_CLASS,
        "N": K * N_PER_CLASS,
        "d": 6,
        "lambda_w": LW,
        "lambda_h": LH,
        "lambda_b": 0.01,
        "metric": metric,
        "value": float(value),
        "theory": float(theory),
        "residual": float(value) - float(theory),
        "source": source if math.isfinite(theory) else "",
    }
    return {**base, **extra}


def table(*rows) -> pd.DataFrame:
    out = pd.DataFrame.from_records(list(rows))
    out["n"] = out["n"].astype("Int64")
    return out


def run_claims(frame: pd.DataFrame, config: dict = CONFIG) -> dict:
    out = cc.claims(frame, config)
    check_claims(out)
    assert list(out.columns) == COLUMNS
    return {r["claim_id"]: r for _, r in out.iterrows()}


# ---------------------------------------------------------------------------- residual claims
def test_residual_claim_verdicts():
    good = table(
        row("nc1", 1e-12, 0.0, "Thm IV.1"),
        row("nc1", 2e-12, 0.0, "Thm IV.1 proof (any class sizes)", n=pd.NA),
    )
    got = run_claims(good)["thm_iv_1"]
    assert got["verdict"] == SUPPORTED
    assert got["value"] == pytest.approx(2e-12) and got["n"] == 2

    bad = table(row("nc1", 1e-3, 0.0, "Thm IV.1"))
    got = run_claims(bad)["thm_iv_1"]
    assert got["verdict"] == NOT_SUPPORTED and got["value"] == pytest.approx(1e-3)

    # no row for Theorem III.4 (needs lambda_b = 0 or centred labels)
    got = run_claims(good)["thm_iii_4"]
    assert got["verdict"] == NOT_TESTABLE and "lambda_b = 0" in got["detail"]


def test_residual_is_relative_beyond_unit_scale():
    kappa = ufm.theory_kappa(N_PER_CLASS, LW, LH)  # sqrt(5) ~ 2.24
    # off by 1.5e-6 absolute = 6.7e-7 relative: agrees within TOL = 1e-6
    ok = table(row("kappa", kappa + 1.5e-6, kappa, "Thm IV.4"))
    got = run_claims(ok)["thm_iv_4"]
    assert got["verdict"] == SUPPORTED
    assert got["value"] == pytest.approx(1.5e-6 / kappa)
    # the same absolute error on a quantity of order 0.1 does not
    small = table(row("bias_norm", 0.1 + 1.5e-6, 0.1, "Thm III.1"))
    assert run_claims(small)["thm_iii_1"]["verdict"] == NOT_SUPPORTED


def test_residual_claims_untestable_and_fallback():
    # value = theory by construction proves nothing: the informational rows are ignored
    info = table(
        row("critical_lambda_b", CRIT, CRIT, "Thm III.1"),
        row("c", 0.045, 0.045, "definition"),
    )
    got = run_claims(info)
    assert got["thm_iii_1"]["verdict"] == NOT_TESTABLE
    assert not any(key.startswith("closed_form_") for key in got)
    # a non-finite value cannot be judged
    nan = table(row("nc1", math.nan, 0.0, "Thm IV.1"))
    got = run_claims(nan)["thm_iv_1"]
    assert got["verdict"] == NOT_TESTABLE and "non-finite" in got["detail"]
    # a source the catalogue does not know still gets its own row, last
    other = table(row("nc1", 0.0, 0.0, "Thm IV.1"), row("foo", 0.5, 0.5, "Lemma V.9"))
    out = cc.claims(other, CONFIG)
    assert out["claim_id"].iloc[-1] == "closed_form_lemma_v_9"
    assert out["verdict"].iloc[-1] == SUPPORTED


def test_disabled_or_empty_makes_every_claim_untestable():
    for frame, config, reason in (
        (pd.DataFrame(), CONFIG, "empty"),
        (table(row("nc1", 0.0, 0.0, "Thm IV.1")), {"class_encoding": {"enabled": False}}, "dis"),
    ):
        got = run_claims(frame, config)
        assert list(got) == cc.ORDER
        assert {r["verdict"] for r in got.values()} == {NOT_TESTABLE}
        assert all(reason in r["detail"] for r in got.values())


# ---------------------------------------------------------------------------- transition
def beta_rows(lambda_bs, betas) -> list:
    return [row("ssetf_beta", b, lambda_b=lb) for lb, b in zip(lambda_bs, betas, strict=True)]


def test_transition_claims():
    below, beyond = [1e-3, 1e-2, CRIT], [0.1, 1.0, 10.0]
    holds = table(*beta_rows(below + beyond, [1.0, 1.0, 1.0, 0.3, 0.05, 0.005]))
    got = run_claims(holds)
    assert got["etf_below_critical"]["verdict"] == SUPPORTED
    assert got["etf_below_critical"]["n"] == 3  # c/(1-c) itself is in the ETF regime
    assert got["of_beyond_critical"]["verdict"] == SUPPORTED
    assert got["of_beyond_critical"]["value"] == pytest.approx(-0.045)

    fails = table(*beta_rows(below + beyond, [1.0, 0.9, 1.0, 0.3, 0.4, 0.005]))
    got = run_claims(fails)
    assert got["etf_below_critical"]["verdict"] == NOT_SUPPORTED
    assert got["etf_below_critical"]["value"] == pytest.approx(0.1)
    assert got["of_beyond_critical"]["verdict"] == NOT_SUPPORTED
    assert got["of_beyond_critical"]["value"] == pytest.approx(0.1)

    # imbalanced or label-smoothing rows are not Theorem III.1's setting
    other = table(
        *[{**r, "n": pd.NA} for r in beta_rows(beyond, [0.3, 0.05, 0.005])],
        *[{**r, "encoding": "label_smoothing"} for r in beta_rows(below, [1.0, 1.0, 1.0])],
    )
    got = run_claims(other)
    assert got["etf_below_critical"]["verdict"] == NOT_TESTABLE
    assert got["of_beyond_critical"]["verdict"] == NOT_TESTABLE


def test_nc3_with_centred_means():
    zero = table(row("nc3", 0.0, 0.0, "Thm III.1"), row("nc3", 1e-30, 0.0, "Thm III.1"))
    assert run_claims(zero)["nc3_centred_one_hot"]["verdict"] == SUPPORTED
    # beyond c/(1-c) the closed form itself gives a non-zero NC3 against the centred means
    th = ufm.theory_nc3(K, 0.5)  # Gram I - 0.5 J: a shifted, not centred, simplex ETF
    beyond = table(row("nc3", 0.0, 0.0, "Thm III.1"), row("nc3", th, th, "Thm III.1", lambda_b=1.0))
    got = run_claims(beyond)["nc3_centred_one_hot"]
    assert got["verdict"] == NOT_SUPPORTED and got["value"] == pytest.approx(th)
    assert "lambda_b > c/(1-c)" in got["detail"]
    none = table(row("nc1", 0.0, 0.0, "Thm IV.1"))
    assert run_claims(none)["nc3_centred_one_hot"]["verdict"] == NOT_TESTABLE


# ---------------------------------------------------------------------------- label smoothing
def ls_rows(betas: dict) -> list:
    return [
        row("encoding_ssetf_beta", b, experiment="encodings", encoding="label_smoothing", delta=d)
        for d, b in betas.items()
    ]


def test_label_smoothing_beta_as_printed():
    definition = table(*ls_rows({0.1: -0.1 / 0.9, 0.3: -0.3 / 0.7}))
    got = run_claims(definition)["ls_beta_as_printed"]
    assert got["verdict"] == NOT_SUPPORTED
    assert got["value"] == pytest.approx(2 * 0.3 / 0.7)  # |-b - b|, the larger delta
    assert got["n"] == 2
    printed = table(*ls_rows({0.1: 0.1 / 0.9}))
    assert run_claims(printed)["ls_beta_as_printed"]["verdict"] == SUPPORTED
    # the reflected root 2 - beta describes the same Gram matrix: accepted too
    reflected = table(*ls_rows({0.1: 2 - 0.1 / 0.9}))
    assert run_claims(reflected)["ls_beta_as_printed"]["verdict"] == SUPPORTED
    none = table(row("nc1", 0.0, 0.0, "Thm IV.1"))
    assert run_claims(none)["ls_beta_as_printed"]["verdict"] == NOT_TESTABLE


# ---------------------------------------------------------------------------- conjecture
def fits(encoding, means_fit, code_fit, **extra) -> list:
    kw = {"experiment": "encodings", "encoding": encoding, "lambda_b": 0.1, **extra}
    return [
        row("ssetf_fit_residual", means_fit, **kw),
        row("encoding_ssetf_residual", code_fit, **kw),
    ]


def test_ssetf_conjecture():
    consistent = table(*fits("one_hot", 1e-16, 0.0), *fits("random", 0.4, 0.5))
    got = run_claims(consistent)["ssetf_conjecture"]
    assert got["verdict"] == SUPPORTED and got["value"] == 0 and got["n"] == 2
    counterexample = table(*fits("one_hot", 1e-16, 0.0), *fits("random", 1e-16, 0.5))
    got = run_claims(counterexample)["ssetf_conjecture"]
    assert got["verdict"] == NOT_SUPPORTED and got["value"] == 1
    # only SSETF encodings: the 'only if' direction is never exercised
    one_sided = table(*fits("one_hot", 1e-16, 0.0), *fits("label_smoothing", 1e-16, 0.0, delta=0.1))
    got = run_claims(one_sided)["ssetf_conjecture"]
    assert got["verdict"] == NOT_TESTABLE and "one direction" in got["detail"]
    # imbalanced rows are outside the conjecture
    imbalanced = table(*fits("one_hot", 0.2, 0.0, n=pd.NA), *fits("random", 0.4, 0.5, n=pd.NA))
    assert run_claims(imbalanced)["ssetf_conjecture"]["verdict"] == NOT_TESTABLE


def test_claims_table_for_the_pipeline():
    frame = table(row("nc1", 0.0, 0.0, "Thm IV.1"))
    output = cc.claims_table(frame, {**CONFIG, "preset": "smoke"})
    pd.testing.assert_frame_equal(output.frame, cc.claims(frame, CONFIG))
    assert "class_encoding" in output.title
    assert "Preset 'smoke'" in output.note and "not testable at this scale" in output.note


# ---------------------------------------------------------------------------- real data
def test_claims_on_the_study_table():
    """The quick configuration's study table (exact UFM solutions, ~1 s): every theorem the
    table covers holds to 1e-6; the two printed statements that the closed forms contradict
    are not supported; Theorem III.4 has no rows (no lambda_b = 0, no centred labels)."""
    study = ce.run_study(ce.DEFAULT_CONFIG)
    out = cc.claims(study, {"preset": "quick", "datasets": {}, "class_encoding": {}})
    check_claims(out)
    got = dict(zip(out["claim_id"], out["verdict"], strict=True))
    assert list(got) == cc.ORDER  # every source is covered by the catalogue
    expected = {
        "thm_iii_4": NOT_TESTABLE,
        "ls_beta_as_printed": NOT_SUPPORTED,
        "nc3_centred_one_hot": NOT_SUPPORTED,
    }
    assert got == {key: expected.get(key, SUPPORTED) for key in cc.ORDER}
    values = dict(zip(out["claim_id"], out["value"], strict=True))
    assert values["ls_beta_as_printed"] == pytest.approx(2 * 0.3 / 0.7)
    assert values["thm_iii_1"] < cc.TOL and np.isnan(values["thm_iii_4"])
