"""class_encoding study: experiments, tidy table vs closed forms, encoding table, figures.

The study's closed forms are exact, so every row with a theory value must match to 1e-6
(most match to ~1e-12; the fitted SSETF beta is square-root conditioned at beta = 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from ncrepro import ufm
from ncrepro.config import ConfigError
from ncrepro.figures import save_figure
from ncrepro.stages.render import markdown_table
from ncrepro.studies import get, load
from ncrepro.studies.class_encoding import figures as figs
from ncrepro.studies.class_encoding import solve as ce

CONFIG_YAML = """
class_encoding:
  enabled: true
  K: 4
  n: 5
  d: 6
  lambda_w: 0.005
  lambda_h: 0.005
  transition:
    lambda_b: {min: 1.0e-3, max: 1.0e+2, count: 25}
  encodings:
    lambda_b: 0.1
    list: [one_hot, {label_smoothing: 0.1}, {label_smoothing: 0.3}, rotated_one_hot, random]
    class_sizes: [balanced, [3, 5, 7, 9]]
    seed: 0
  gd_check:
    transition_lambda_b: [1.0e-3, 1.0e-1, 1.0e+1]
    encodings: [random]
    steps: 20000
    lr: 0.5
    seed: 0
"""
BLOCK = yaml.safe_load(CONFIG_YAML)["class_encoding"]
FIG_CONFIG = {"preset": "test", "datasets": {}, "class_encoding": BLOCK}
TOL = 1e-6


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return ce.run_study(BLOCK)


# ---------------------------------------------------------------------------- config


def test_block_equals_defaults():
    merged = ce._block(BLOCK)
    assert merged == ce._block(None) == ce.DEFAULT_CONFIG


def test_experiment_specs_transition_contains_critical_point():
    specs = ce.experiment_specs(BLOCK)
    trans = [s for s in specs if s["experiment"] == "transition"]
    enc = [s for s in specs if s["experiment"] == "encodings"]
    c = ufm.c_constant(4, 5, 0.005, 0.005)
    crit = c / (1 - c)
    assert c < 1
    lbs = [s["lambda_b"] for s in trans]
    assert len(trans) == 26 and lbs == sorted(lbs)
    assert crit in lbs  # exactly, not approximately
    assert min(lbs) < crit < max(lbs)
    assert sum(lb < crit for lb in lbs) >= 5 and sum(lb > crit for lb in lbs) >= 5
    assert all(s["encoding"] == "one_hot" and s["n"] == 5 for s in trans)
    assert len(enc) == 10
    assert {s["n"] for s in enc} == {5, (3, 5, 7, 9)}
    assert sorted(s["delta"] for s in enc if s["encoding"] == "label_smoothing") == [
        0.1, 0.1, 0.3, 0.3
    ]  # fmt: skip
    assert sum(s["gd_check"] for s in trans) == 3 and sum(s["gd_check"] for s in enc) == 2


@pytest.mark.parametrize(
    "override, match",
    [
        ({"lambda_w": 1.0, "lambda_h": 1.0}, "zero solution"),
        ({"d": 3}, "d >= K"),
        ({"encodings": {"list": ["two_hot"]}}, "unknown encoding"),
        ({"encodings": {"list": [{"label_smoothing": 1.5}]}}, "delta"),
        ({"encodings": {"class_sizes": [[1, 2]]}}, "class sizes"),
        ({"transition": {"lambda_b": {"min": 1.0, "max": 0.1, "count": 5}}}, "min < max"),
        ({"K": 0}, "K"),
    ],
)
def test_experiment_specs_rejects_bad_config(override, match):
    with pytest.raises(ConfigError, match=match):
        ce.experiment_specs({**BLOCK, **override})


def test_explicit_lambda_b_list_and_encoding_seeds():
    block = {
        **BLOCK,
        "transition": {"lambda_b": [0.0, 1.0]},
        "encodings": {**BLOCK["encodings"], "list": [{"random": 3}, {"rotated_one_hot": 2}]},
        "gd_check": {},
    }
    specs = ce.experiment_specs(block)
    crit = ufm.critical_lambda_b(4, 5, 0.005, 0.005)
    assert [s["lambda_b"] for s in specs if s["experiment"] == "transition"] == [0.0, crit, 1.0]
    assert [s["seed"] for s in specs if s["experiment"] == "encodings"][:2] == [3, 2]


# ---------------------------------------------------------------------------- the table


def test_table_schema(table, tmp_path):
    assert list(table.columns) == ce.COLUMNS
    assert (table["study"] == "class_encoding").all()
    assert set(table["experiment"]) == {"transition", "encodings"}
    has = table["theory"].notna()
    np.testing.assert_array_equal(
        table.loc[has, "residual"], table.loc[has, "value"] - table.loc[has, "theory"]
    )
    assert (table.loc[has, "source"] != "").all()
    assert set(table["class_sizes"]) == {"5,5,5,5", "3,5,7,9"}
    assert table.loc[table["class_sizes"] == "3,5,7,9", "n"].isna().all()
    # Parquet round trip (what the figure rule reads)
    table.to_parquet(tmp_path / "class_encoding.parquet")
    back = pd.read_parquet(tmp_path / "class_encoding.parquet")
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


def test_every_theory_row_matches(table):
    has = table["theory"].notna()
    assert has.sum() > 900 * 0.5
    bad = table[has & ~(table["residual"].abs() < TOL)]
    assert bad.empty, bad[["experiment", "encoding", "lambda_b", "metric", "value", "theory"]]
    # and the theorems the study is about are all among the checked rows
    checked = set(table.loc[has, "metric"])
    assert {
        "bias_norm", "bias_deviation", "gram_residual", "ssetf_alpha", "ssetf_beta", "nc1",
        "nc2_equinorm", "nc3", "nc3_uncentered", "nc3_prime", "kappa", "self_duality_residual",
        "nc3_prime_weighted", "rank", "objective", "encoding_ssetf_beta", "gd_objective_gap",
    } <= checked  # fmt: skip


def test_transition_rows(table):
    rows = table[table["experiment"] == "transition"]
    crit = ufm.critical_lambda_b(4, 5, 0.005, 0.005)
    at = rows[rows["lambda_b"] == crit]
    assert not at.empty
    by = at.set_index("metric")
    assert by.at["critical_lambda_b", "value"] == crit
    assert by.at["rank", "value"] == 3  # simplex ETF: rank K - 1 up to and at the switch
    beta = rows[rows["metric"] == "ssetf_beta"].sort_values("lambda_b")
    assert (beta.loc[beta["lambda_b"] <= crit, "value"] > 1 - 1e-6).all()
    after = beta.loc[beta["lambda_b"] > crit, "value"].to_numpy()
    assert np.all(np.diff(after) < 0) and after[-1] < 1e-3  # towards the orthogonal frame
    bias = rows[rows["metric"] == "bias_norm"].sort_values("lambda_b")
    assert bias["residual"].abs().max() < 1e-10


def test_gradient_descent_check(table):
    gd = table[table["metric"] == "gd_objective_gap"]
    assert len(gd) == 5
    assert set(gd["experiment"]) == {"transition", "encodings"}
    assert (gd["value"] > -1e-12).all()  # the solver's optimum is never beaten
    assert (gd["value"] < TOL).all()


def test_encoding_table(table):
    enc = ce.encoding_table(table)
    assert len(enc) == 10
    for metric in ["nc1", "nc2_equinorm", "nc2_equiangularity", "nc3", "nc3_prime", "kappa"]:
        assert f"{metric}_value" in enc and f"{metric}_theory" in enc
    assert enc["balanced"].tolist() == [True] * 5 + [False] * 5
    assert (enc["nc1_value"] < 1e-20).all()  # Theorem IV.1, any encoding, any class sizes
    bal, imb = enc[enc["balanced"]], enc[~enc["balanced"]]
    assert (bal["nc3_prime_value"] < 1e-12).all()  # Theorem IV.4
    assert (imb["nc3_prime_value"] > 1e-2).all()  # ... needs balanced classes
    assert (enc["nc3_prime_weighted_value"] < 1e-12).all()
    rot = bal[bal["encoding_key"] == "rotated_one_hot"].iloc[0]
    assert rot["nc3_value"] > 0.1  # Proposition IV.3
    rnd = bal[bal["encoding_key"] == "random"].iloc[0]
    assert rnd["ssetf_fit_residual_value"] > 1e-2 and np.isnan(rnd["nc2_equinorm_theory"])
    ls = enc[enc["encoding_key"] == "label_smoothing"]
    np.testing.assert_allclose(ls["encoding_ssetf_beta_value"], -ls["delta"] / (1 - ls["delta"]))
    np.testing.assert_allclose(ls["encoding_beta_paper"], ls["delta"] / (1 - ls["delta"]))


# ---------------------------------------------------------------------------- figures


@pytest.mark.parametrize("name", sorted(get("class_encoding").figures))
def test_figures_render(table, tmp_path, name):
    fig, rows, caption = load(get("class_encoding").figures[name].render)(table, FIG_CONFIG)
    png = save_figure(fig, tmp_path / f"{name}.pdf")
    assert png.exists() and png.stat().st_size > 30_000
    assert (tmp_path / f"{name}.pdf").stat().st_size > 5_000
    assert isinstance(rows, pd.DataFrame) and len(rows) > 0
    assert len(caption) > 200


def test_transition_caption_states_parameters(table):
    _, rows, caption = figs.fig_transition(table, FIG_CONFIG)
    for text in ["K = 4", "n = 5", "d = 6", "lambda_W = 0.005", "c = K sqrt", "0.04472", "0.04681"]:
        assert text in caption
    assert set(rows["metric"]) == {"bias_norm", "ssetf_beta"}


def test_encodings_table(table, tmp_path):
    output = figs.encodings_table(table, FIG_CONFIG)
    wide = output.frame
    assert len(wide) == 10
    assert "nc3_value" in wide and "nc3_theory" in wide
    md = markdown_table(wide[output.markdown_columns])
    assert sum(line.startswith("| ") for line in md.splitlines()) == 11  # header + 10 rows
    assert set(output.rows["experiment"]) == {"encodings"}
    assert len(output.cells) == 10 * 2 * len(ce.TABLE_METRICS)
    assert "label smoothing δ=0.3" in md


def test_theory_curves_dense():
    lbs = np.geomspace(1e-3, 1e2, 200)
    curves = figs.theory_curves(4, 5, 0.005, 0.005, lbs)
    crit = ufm.critical_lambda_b(4, 5, 0.005, 0.005)
    assert (curves.loc[curves["lambda_b"] <= crit, "ssetf_beta"] == 1).all()
    assert curves["bias_norm"].is_monotonic_decreasing


# ---------------------------------------------------------------------------- independent check


K5, N3, D7, LW5, LH5 = 5, 3, 7, 0.002, 0.01  # parameters used nowhere else


@pytest.mark.parametrize("regime", ["etf", "etf_half", "critical", "shifted", "far"])
def test_solver_matches_theorem_III1_independently(regime):
    """Theorem III.1 written out from the paper, without ncrepro.ufm.theory."""
    c = K5 * np.sqrt(N3 * LW5 * LH5)
    crit = c / (1 - c)
    assert c < 1
    lb = {"etf": 0.0, "etf_half": 0.5 * crit, "critical": crit, "shifted": 2.5 * crit,
          "far": 30.0}[regime]  # fmt: skip
    labels = np.repeat(np.arange(K5), N3)
    Y = np.eye(K5)[:, labels]  # one-hot, balanced, ordered by class
    sol = ufm.solve(Y, D7, LW5, LH5, lb)
    C = np.eye(K5)[:, labels]
    Hbar = sol.H @ C.T / N3
    J = np.ones((K5, K5)) / K5
    # eq. (5)
    b_expected = (1 / (1 + lb) if lb <= crit else c / lb) * np.ones(K5) / K5
    np.testing.assert_allclose(sol.b, b_expected, rtol=TOL, atol=1e-12)
    # NC1: H* = Hbar* C
    np.testing.assert_allclose(sol.H, Hbar @ C, atol=1e-12)
    # eq. (4): Hbar^T Hbar = alpha (I - sigma J), alpha = (1 - c) sqrt(lw / (n lh)) in both
    # regimes (the paper only says "some alpha_1, alpha_2 > 0")
    gram = Hbar.T @ Hbar
    sigma = 1.0 if lb <= crit else c / (lb * (1 - c))
    alpha = (1 - c) * np.sqrt(LW5 / (N3 * LH5))
    np.testing.assert_allclose(gram, alpha * (np.eye(K5) - sigma * J), atol=TOL * alpha)
    # the structure itself, whatever alpha: equal diagonal, equal off-diagonal, ratio -sigma/K
    off = gram[~np.eye(K5, dtype=bool)]
    assert np.ptp(np.diag(gram)) < 1e-12 and np.ptp(off) < 1e-12
    assert off.mean() / (gram[0, 0] - off.mean()) == pytest.approx(-sigma / K5, rel=TOL)
    # eq. (3): W*^T = sqrt(n lh / lw) Hbar*
    np.testing.assert_allclose(sol.W.T, np.sqrt(N3 * LH5 / LW5) * Hbar, atol=TOL * alpha)
    # and it is the global optimum (first-order + spectral certificate)
    diag = sol.diagnostics
    assert diag["kkt_residual"] < 1e-10 and diag["spectral_ratio"] <= 1 + 1e-9
