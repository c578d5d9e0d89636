"""ib_supcon (Wang & Palmer): run specs, the pair analysis on representations with known
answers, tables beside the published numbers, claims, and the smoke run's numbers
recomputed independently from the kept representation files."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest

from ncrepro.config import load_config, validate_config
from ncrepro.metrics.cca import canonical_correlations
from ncrepro.metrics.information_bottleneck import gaussian_ib, rank_transform
from ncrepro.runspec import run_id
from ncrepro.studies import build_run_sheet
from ncrepro.studies.ib_supcon import claims as claims_module
from ncrepro.studies.ib_supcon import select as sel
from ncrepro.studies.ib_supcon.pair import AnalysisOptions, Pair, analyse_own, analyse_zero_shot
from ncrepro.studies.ib_supcon.runs import (
    PAIR_PROBE,
    check_config,
    pair_inputs,
    pair_specs,
)
from ncrepro.studies.ib_supcon.tables import table1, table2, table3


@pytest.fixture
def quick(repo):
    config = load_config(repo / "config.yaml")
    config["ib_supcon"]["enabled"] = True
    validate_config(config)
    return config


# ------------------------------------------------------------------------------- runs
def test_pairs_differ_only_by_seed_and_model_one_names_its_partner(quick):
    spec1, spec2 = pair_specs(quick, quick["ib_supcon"]["in_domain"][0])
    assert spec1["seed"] != spec2["seed"]
    assert spec1["probes"] == {PAIR_PROBE: {"partner": run_id(spec2)}}
    assert "probes" not in spec2
    strip = {k: v for k, v in spec1.items() if k not in ("seed", "probes")}
    assert strip == {k: v for k, v in spec2.items() if k != "seed"}
    assert spec1["classifier"] == "none" and spec1["objective"]["name"] == "supcon"
    assert spec1["training"]["views"] == 2


def test_a_pair_serves_both_experiments_when_the_source_is_an_in_domain_dataset(quick):
    sheet, specs = build_run_sheet(quick)
    mine = sheet[sheet["study"] == "ib_supcon"]
    # quick: synth10_easy and synth20_easy pairs; synth20_easy is also the zero-shot source
    assert mine["run"].nunique() == 4
    source = mine[mine["experiment"] == "zero_shot"]
    assert set(source["run"]) <= set(mine[mine["experiment"] == "in_domain"]["run"])
    assert set(source["paper_dataset"]) == {"ImageNet32"}
    model1 = source[source["pair_model"] == 1]["run"].iloc[0]
    files = pair_inputs(quick, sheet, specs, model1)
    assert files["target_manifest"] == "data/synth10_easy/manifest.json"
    assert files["record2"].endswith(f"{specs[model1]['probes'][PAIR_PROBE]['partner']}/run.json")
    # the other in-domain pair is not a source: no target data
    other = mine[(mine["experiment"] == "in_domain") & (mine["pair_model"] == 1)]
    other = other[~other["run"].isin(source["run"])]["run"].iloc[0]
    assert "target_manifest" not in pair_inputs(quick, sheet, specs, other)


def test_config_checks(quick):
    assert check_config(quick) == []
    bad = copy.deepcopy(quick)
    bad["ib_supcon"]["seeds"] = [3, 3]
    bad["ib_supcon"]["zero_shot"]["target"]["dataset"] = "digits"
    bad["ib_supcon"]["in_domain"].append({"dataset": "nowhere", "paper": "X"})
    problems = " ".join(check_config(bad))
    assert "two different seeds" in problems
    assert "cannot read the target images" in problems  # digits are 1x8x8, synth 3x32x32
    assert "'nowhere'" in problems


# ------------------------------------------------------------------- the pair analysis
def clusters(k=4, d=12, n_per=60, spread=0.05, seed=0):
    """Gaussian clusters around simplex-ETF means in d dims (train and test)."""
    rng = np.random.default_rng(seed)
    means = np.hstack([np.eye(k) - 1.0 / k, np.zeros((k, d - k))]) * 3.0
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    means = means @ rotation
    out = []
    for _ in ("train", "test"):
        labels = np.repeat(np.arange(k), n_per)
        out.append((means[labels] + spread * rng.standard_normal((len(labels), d)), labels))
    return out


def rows_frame(rows):
    return pd.DataFrame(rows)


def test_linearly_identifiable_models_agree_and_have_unit_canonical_correlations():
    (x_train, y_train), (x_test, y_test) = clusters()
    scales = np.linspace(0.5, 3.0, x_train.shape[1])  # model 2 = model 1, coordinates rescaled
    pair = Pair(
        (x_train, x_train * scales), (x_test, x_test * scales), y_train, y_test, num_classes=4
    )
    rows = rows_frame(analyse_own(pair, AnalysisOptions(ridge=0.0), full=True))

    def get(metric, **kw):
        sub = rows[rows["metric"] == metric]
        for key, value in kw.items():
            sub = sub[sub[key] == value]
        return sub["value"].to_numpy()

    acc1 = get("linear_accuracy", split="test", model=1, representation="raw")[0]
    acc2 = get("linear_accuracy", split="test", model=2, representation="raw")[0]
    assert acc1 == acc2 == get("both_correct")[0]  # standardized: the same classifier
    np.testing.assert_allclose(get("cca_coefficient"), 1.0, atol=1e-8)
    assert get("cca_leading_mean")[0] == pytest.approx(1.0)
    assert get("cca_leading_var")[0] == pytest.approx(0.0, abs=1e-12)
    # NC1 of tight clusters is small; the ETF signatures of its means are the simplex's
    assert get("nc1", split="train")[0] < 1e-2
    assert get("etf_mean_cosine", representation="raw")[0] == pytest.approx(-1 / 3, abs=0.02)
    assert get("etf_angle_std_deg", representation="raw")[0] < 2.0
    assert set(get("representation_dim")) == {12}
    # identical ranks (a coordinate scaling keeps them): every direction is shared, every
    # IB eigenvalue is ~0 and their scalings are equal
    assert get("ib_eigenvalue").max() < 1e-6
    np.testing.assert_allclose(get("ib_alpha_relative"), 1.0, atol=1e-6)


def test_the_k_dim_ib_keeps_what_the_models_share():
    """Two models that share only the class structure (independent noise): the K-dim IB
    keeps the classes apart as well as the raw representation does."""
    (x_train, y_train), (x_test, y_test) = clusters(spread=0.6, seed=7)
    rng = np.random.default_rng(8)
    mix = rng.standard_normal((12, 12))
    means = np.array([x_train[y_train == c].mean(0) for c in range(4)])
    y2_train = means[y_train] @ mix + 0.6 * rng.standard_normal(x_train.shape)
    y2_test = means[y_test] @ mix + 0.6 * rng.standard_normal(x_test.shape)
    pair = Pair((x_train, y2_train), (x_test, y2_test), y_train, y_test, num_classes=4)
    rows = rows_frame(analyse_own(pair, AnalysisOptions(), full=True))
    test = rows[(rows["metric"] == "linear_accuracy") & (rows["split"] == "test")]
    raw = test[(test["model"] == 1) & (test["representation"] == "raw")]["value"].iloc[0]
    ib = test[test["representation"] == "ib"]
    assert ib["dims"].iloc[0] == 4 and ib["value"].iloc[0] >= raw - 0.02
    # the class information lives in K - 1 = 3 directions: 3 small eigenvalues, then ~1
    eig = rows[rows["metric"] == "ib_eigenvalue"].sort_values("component")["value"].to_numpy()
    assert eig[2] < 0.5 < eig[4]


def test_ib_rows_equal_an_independent_recomputation():
    (x_train, y_train), (x_test, y_test) = clusters(spread=0.8, seed=1)
    rng = np.random.default_rng(2)
    partner_train = x_train @ rng.standard_normal((12, 12)) + rng.standard_normal(x_train.shape)
    partner_test = x_test @ rng.standard_normal((12, 12))
    pair = Pair((x_train, partner_train), (x_test, partner_test), y_train, y_test, 4)
    options = AnalysisOptions(ridge=1e-3)
    rows = rows_frame(analyse_own(pair, options, full=True))
    eig = rows[rows["metric"] == "ib_eigenvalue"].sort_values("component")["value"]
    z1, _ = rank_transform(x_train, x_test)
    (z2,) = rank_transform(partner_train)
    np.testing.assert_allclose(eig, gaussian_ib(z1, z2, ridge=1e-3).eigenvalues, rtol=1e-10)
    rho = rows[rows["metric"] == "cca_coefficient"].sort_values("component")["value"]
    np.testing.assert_allclose(rho, canonical_correlations(x_test, partner_test, ridge=1e-3))
    alpha = rows[rows["metric"] == "ib_alpha_relative"]["value"]
    assert len(alpha) == 4 and alpha.mean() == pytest.approx(1.0)


def test_only_accuracies_for_a_source_pair_and_the_zero_shot_plateau():
    (x_train, y_train), (x_test, y_test) = clusters(k=3, d=10, spread=1.2, seed=3)
    pair = Pair((x_train, x_train + 0.1), (x_test, x_test), y_train, y_test, 3)
    light = rows_frame(analyse_own(pair, AnalysisOptions(), full=False))
    assert set(light["metric"]) == {"representation_dim", "linear_accuracy", "both_correct"}
    rng = np.random.default_rng(4)
    partner = (
        x_train + 0.3 * rng.standard_normal(x_train.shape),
        x_test + 0.3 * rng.standard_normal(x_test.shape),
    )
    pair = Pair((x_train, partner[0]), (x_test, partner[1]), y_train, y_test, 3)
    rows = rows_frame(analyse_zero_shot(pair, AnalysisOptions(dims=(1, 2, 5, 10))))
    sweep = rows[(rows["metric"] == "linear_accuracy") & (rows["representation"] == "ib")]
    test = sweep[sweep["split"] == "test"].set_index("dims")["value"]
    assert sorted(test.index) == [1, 2, 3, 5, 10]  # the sweep plus K = 3
    kprime = rows[rows["metric"] == "kprime"]["value"].iloc[0]
    assert kprime == min(d for d in test.index if test[d] >= test.max() - 0.01)
    assert len(rows[rows["metric"] == "ib_alpha_relative"]) == kprime


def test_non_finite_representations_are_flagged_not_analysed():
    (x_train, y_train), (x_test, y_test) = clusters()
    bad = x_train.copy()
    bad[0, 0] = np.nan
    assert not Pair((bad, x_train), (x_test, x_test), y_train, y_test, 4).finite()


# ----------------------------------------------------------- tables and claims
def long_table(step_values: dict, experiment_of_runs: dict) -> pd.DataFrame:
    """A study table built from analysis rows: {(run, step): rows}."""
    frames = []
    for (run, step), rows in step_values.items():
        frame = pd.DataFrame(rows)
        for experiment, (dataset, paper, task) in experiment_of_runs[run].items():
            frames.append(
                frame.assign(
                    run=run,
                    step=step,
                    epoch=step / 10,
                    experiment=experiment,
                    dataset=dataset,
                    paper_dataset=paper,
                    eval_dataset=dataset if task == "own" else "synth10_easy",
                    task=task,
                    probe=PAIR_PROBE,
                )
            )
    return pd.concat(frames, ignore_index=True)


def synthetic_table():
    (x_train, y_train), (x_test, y_test) = clusters(k=10, d=24, spread=0.4, seed=5)
    rng = np.random.default_rng(6)
    partner = (x_train @ rng.standard_normal((24, 24)), x_test @ rng.standard_normal((24, 24)))
    values = {}
    for step, spread in ((10, 3.0), (20, 1.5), (30, 0.5)):
        noise = np.random.default_rng(step)
        train = x_train + spread * noise.standard_normal(x_train.shape)
        test = x_test + spread * noise.standard_normal(x_test.shape)
        pair = Pair((train, partner[0]), (test, partner[1]), y_train, y_test, 10)
        values[("r1", step)] = analyse_own(pair, AnalysisOptions(), full=True)
    pair = Pair((x_train, partner[0]), (x_test, partner[1]), y_train, y_test, 10)
    values[("r1z", 30)] = analyse_zero_shot(pair, AnalysisOptions(dims=(2, 5, 20)))
    runs_of = {
        "r1": {"in_domain": ("synth10_easy", "CIFAR-10", "own")},
        "r1z": {"zero_shot": ("synth20_easy", "ImageNet32", "zero_shot")},
    }
    table = long_table(values, runs_of)
    # the zero-shot source pair's own accuracies (Table 1's ImageNet32 column)
    own = long_table(
        {("r1z", 30): values[("r1", 30)]},
        {"r1z": {"zero_shot": ("synth20_easy", "ImageNet32", "own")}},
    )
    return pd.concat([table, own], ignore_index=True)


def test_tables_put_published_values_beside_reproduced_ones(quick, repo):
    table = synthetic_table()
    config = {**quick, "inputs": {"published": repo / "published/ib_supcon.csv"}}
    t1 = table1(table, config).frame
    cifar = t1[t1["column"] == "CIFAR-10"].set_index("row")
    assert cifar.loc["model 1", "published"] == 95.4
    rows = sel.pair_rows(table, "in_domain")
    expected = 100 * sel.value(rows, "r1", 30, "both_correct")
    assert cifar.loc["both", "reproduced"] == pytest.approx(expected)
    assert cifar.loc["both", "difference"] == pytest.approx(expected - 93)
    imagenet = t1[t1["column"] == "ImageNet32"].set_index("row")
    assert imagenet.loc["model 2", "published"] == 56.5 and not math.isnan(
        imagenet.loc["model 2", "reproduced"]
    )
    t2 = table2(table, config).frame.set_index(["column", "row"])
    assert t2.loc[("CIFAR-10", "ranked K-IB"), "dims (paper)"] == "10"
    assert t2.loc[("CIFAR-10", "ranked K-IB"), "dims (this run)"] == "10"
    assert t2.loc[("CIFAR-100", "raw"), "published"] == 75.9
    assert math.isnan(t2.loc[("CIFAR-100", "raw"), "reproduced"])  # no CIFAR-100 pair here
    t3 = table3(table, config).frame.set_index("column")
    assert t3.loc["IB", "dims (paper)"] == "70"
    zs = sel.pair_rows(table, "zero_shot", "zero_shot")
    kprime = sel.value(zs, "r1z", 30, "kprime", representation="ib")
    assert t3.loc["IB", "dims (this run)"] == str(int(kprime))


def test_claims_follow_their_criteria(quick):
    table = synthetic_table()
    frame = claims_module.claims(table, quick).set_index("claim_id")
    assert list(frame.index) == [c.claim_id for c in claims_module.ALL_CLAIMS]
    rows = sel.pair_rows(table, "in_domain")
    a1 = sel.value(rows, "r1", 30, "linear_accuracy", model=1, representation="raw")
    a2 = sel.value(rows, "r1", 30, "linear_accuracy", model=2, representation="raw")
    # two datasets (the in-domain pair and the source pair's own rows, the same numbers)
    assert frame.loc["models_same_accuracy", "value"] == pytest.approx(100 * abs(a1 - a2))
    # NC1 falls as the clusters tighten while model 2 stays fixed: rho over 3 checkpoints
    assert frame.loc["identifiability_improves_with_nc1", "n"] == 3
    zs = sel.pair_rows(table, "zero_shot", "zero_shot")
    kprime = sel.value(zs, "r1z", 30, "kprime", representation="ib")
    verdict = "supported" if kprime > 10 else "not supported"
    assert frame.loc["zero_shot_needs_more_dims", "verdict"] == verdict
    off = copy.deepcopy(quick)
    off["ib_supcon"]["zero_shot"]["enabled"] = False
    frame = claims_module.claims(table, off).set_index("claim_id")
    assert frame.loc["zero_shot_needs_more_dims", "verdict"] == "not testable at this scale"


# ------------------------------------------------------------- the smoke run itself
def test_smoke_numbers_recomputed_from_the_kept_representations(smoke_run):
    work = smoke_run
    table = pd.read_parquet(work / "results/smoke/tables/ib_supcon.parquet")
    rows = table[(table["probe"] == PAIR_PROBE) & (table["task"] == "own")]
    assert len(rows) and set(rows["experiment"]) == {"in_domain", "zero_shot"}
    run = rows[rows["experiment"] == "in_domain"]["run"].iloc[0]
    step = int(rows[rows["run"] == run]["step"].max())
    folder = work / f"results/smoke/representations/ib_supcon/{run}/own/step{step}"
    data = {
        (m, s): np.load(folder / f"model{m}_{s}.npz") for m in (1, 2) for s in ("train", "test")
    }
    ridge = float(rows["cca_ridge"].iloc[0])
    at = rows[(rows["run"] == run) & (rows["step"] == step)]
    rho = canonical_correlations(
        data[1, "test"]["features"], data[2, "test"]["features"], ridge=ridge
    )
    mine = at[at["metric"] == "cca_coefficient"].drop_duplicates("component")
    np.testing.assert_allclose(mine.sort_values("component")["value"], rho, atol=1e-9)
    z1, _ = rank_transform(data[1, "train"]["features"], data[1, "test"]["features"])
    (z2,) = rank_transform(data[2, "train"]["features"])
    lam = gaussian_ib(z1, z2, ridge=float(rows["ib_ridge"].iloc[0])).eigenvalues
    mine = at[at["metric"] == "ib_eigenvalue"].drop_duplicates("component")
    np.testing.assert_allclose(mine.sort_values("component")["value"], lam, atol=1e-9)
    for name in ("table1", "table2", "table3", "claims"):
        assert (work / f"results/smoke/tables/ib_supcon/{name}.md").stat().st_size > 200
    for fig in ("fig2", "fig3", "fig4"):
        assert (work / f"results/smoke/figures/ib_supcon/{fig}.png").stat().st_size > 10_000
