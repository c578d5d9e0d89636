"""The lpc study: run specs of the eleven models, config checks, the metric set on
constructed features, best-LR selection, Table 4's pooled statistics, the claims' rules on
constructed tables, the fig1 toy, and every renderer on a constructed long table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ncrepro.config import load_config
from ncrepro.studies import get
from ncrepro.studies.lpc import claims as lpc_claims
from ncrepro.studies.lpc.metric_set import compute
from ncrepro.studies.lpc.models import BINARITY_MODELS, MODELS, NAMES
from ncrepro.studies.lpc.report import select_runs
from ncrepro.studies.lpc.runs import check_config, runs, steps_for
from ncrepro.studies.lpc.tables import table4_values
from ncrepro.studies.lpc.toy import StackedToy, _model, gamma_schedule, hypercube_clusters
from ncrepro.train import build_for_spec
from ncrepro.train.schedules import epoch_at


@pytest.fixture
def quick(repo):
    config = load_config(repo / "config.yaml")
    config["lpc"]["enabled"] = True
    return config


# ------------------------------------------------------------------------------ runs
def test_the_eleven_models_as_run_specs(quick):
    specs = {run.extra["model"]: run.spec for run in runs(quick)}
    assert list(specs) == list(NAMES) and len(NAMES) == 11
    widths = quick["lpc"]["datasets"][0]["head_widths"]
    for model in MODELS:
        spec = specs[model.name]
        assert spec["classifier"] == {"bias": False}
        assert spec["arch_params"] == {"activation": "silu"}
        assert spec["probes"]["deepfool"]["overshoot"] == 0.02
        groups = spec["training"]["param_groups"]
        assert groups == [
            {"params": ["classifier"], "name": "classifier", "lr_schedule": "constant"}
        ]
        head = spec.get("head")
        if model.head is None:
            assert head is None
        else:
            assert head["width"] == widths[model.width]
            assert head["kind"] == model.head
    objective = {name: spec["objective"] for name, spec in specs.items()}
    assert objective["LPC"]["name"] == "feature_penalty" and objective["LPC-NoPen"]["gamma"] == 0.01
    assert objective["LPC-SCL"]["name"] == "supcon_ce" and objective["LPC-SCL"]["gamma"] == 0.01
    assert objective["SCL"] == {
        "name": "supcon_ce",
        "on": "backbone",
        "temperature": 0.05,
        "weight": 1.0,
    }
    assert objective["NoPen"] == objective["LinPen"] == {"name": "cross_entropy"}
    assert objective["ArcFace"]["name"] == "arcface" and objective["CosFace"]["margin_max"] == 0.25
    assert specs["NonlinPen"]["head"]["activation"] == "silu"


def test_epochs_become_steps_and_checkpoints_end_epochs(quick):
    spec = runs(quick)[0].spec
    t = spec["training"]
    n_train = 10 * 50  # synth10_16px: 50 train images per class
    assert (
        t["steps"] == steps_for(t["epochs"], n_train, t["batch_size"]) == math.ceil(48 * 500 / 32)
    )
    every = quick["lpc"]["training"]["checkpoint_every"]
    for i, step in enumerate(spec["checkpoint_steps"], 1):
        # the checkpoint at `step` follows the last update of epoch every * i - 1
        assert epoch_at(step - 1, t["batch_size"], n_train) == every * i - 1
        assert epoch_at(step, t["batch_size"], n_train) == every * i


def test_models_build_as_the_paper_describes(quick):
    specs = {run.extra["model"]: run.spec for run in runs(quick)}
    lpc = build_for_spec(specs["LPC"], 10, (3, 16, 16))
    assert lpc.classifier.bias is None and lpc.feature_dim == 8
    assert isinstance(lpc.embedding[0], torch.nn.Linear) and len(lpc.embedding) == 1
    nonlin = build_for_spec(specs["NonlinPen"], 10, (3, 16, 16))
    assert isinstance(nonlin.embedding[1], torch.nn.SiLU)
    nopen = build_for_spec(specs["NoPen"], 10, (3, 16, 16))
    assert nopen.embedding is None and nopen.feature_dim == 32  # 512 x 0.0625
    assert not any(isinstance(m, torch.nn.ReLU) for m in nopen.modules())  # SiLU everywhere


def test_paper_preset_is_the_full_grid(repo):
    config = load_config(repo / "config.yaml", repo / "presets/paper.yaml")
    config["lpc"]["enabled"] = True
    grid = runs(config)
    assert len(grid) == 11 * 2 * 4 * 5 == 440
    cifar100 = [r for r in grid if r.extra["paper_dataset"] == "CIFAR-100"]
    assert {r.spec["arch"] for r in cifar100} == {"resnet50"}
    lpc = next(r for r in cifar100 if r.extra["model"] == "LPC-Wide")
    assert lpc.spec["head"]["width"] == 256 and lpc.spec["training"]["steps"] == 312_500
    assert not check_config(config)


def test_check_config_names_the_problem(quick):
    quick["lpc"]["penalty"]["gamma_factor"] = 1.05
    quick["lpc"]["datasets"][0]["head_widths"].pop("narrow")
    problems = check_config(quick)
    assert any("gamma reaches only" in p for p in problems)
    assert any("head_widths lacks narrow" in p for p in problems)
    quick["lpc"]["datasets"][0]["dataset"] = "nope"
    assert any("'nope'" in p for p in check_config(quick))


def test_every_preset_passes_the_study_checks(repo):
    """(Schema validation of every preset: tests/studies/test_registry.py.)"""
    for presets in ([], ["presets/smoke.yaml"], ["presets/paper.yaml"]):
        config = load_config(repo / "config.yaml", *(repo / p for p in presets))
        config["lpc"]["enabled"] = True
        assert get("lpc").check_config(config) == []


# ------------------------------------------------------------------------ metric set
def _split(z, y, K):
    logits = np.eye(K)[y] * 5.0
    return {"features": z, "labels": y, "logits": logits}


def test_metric_set_on_collapsed_and_spread_features():
    rng = np.random.default_rng(0)
    K, n, d = 4, 50, 3
    y = np.repeat(np.arange(K), n)
    vertices = np.array([[1, 1, -1], [1, -1, 1], [-1, 1, 1], [-1, -1, -1]], float)
    collapsed = vertices[y] + 1e-4 * rng.normal(size=(K * n, d))
    spread = vertices[y] + 1.0 * rng.normal(size=(K * n, d))
    rows = {}
    for name, z in (("collapsed", collapsed), ("spread", spread)):
        out = compute(_split(z, y, K), _split(z, y, K), K, seed=0, binarity_max_dim=3)
        rows[name] = {(r["split"], r["metric"]): r for r in out}
    c, s = rows["collapsed"], rows["spread"]
    assert c[("train", "nc1_per_dim")]["value"] < 1e-6 < s[("train", "nc1_per_dim")]["value"]
    assert c[("train", "nc1_per_dim")]["value"] == pytest.approx(c[("train", "nc1")]["value"] / d)
    assert (
        c[("train", "separation_ratio")]["value"] > 1e3 * s[("train", "separation_ratio")]["value"]
    )
    assert c[("train", "norm_cv")]["value"] < 1e-3  # the vertices are at equal norms
    assert c[("test", "entropy")]["value"] < s[("test", "entropy")]["value"] - 3
    assert ("train", "entropy") not in c  # entropy_splits default: test only
    # every coordinate is +-1: binary; peaks far apart
    assert c[("train", "binarity_peak_distance_min")]["value"] > 100
    assert s[("train", "binarity_peak_distance_min")]["value"] < 4
    assert ("test", "binarity_score_mean") not in c
    row = c[("train", "nc1")]
    assert row["grouping"] == "true_labels" and row["train_images"] == "clean"
    assert row["sigma_w"] == "pooled" and row["sb_pinv"] == "top_k_minus_1"
    # binarity is skipped above binarity_max_dim
    wide = compute(_split(spread, y, K), _split(spread, y, K), K, seed=0, binarity_max_dim=2)
    assert not any(r["metric"].startswith("binarity") for r in wide)


def test_metric_set_predicted_label_grouping():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 30)
    z = np.eye(3)[y] + 0.1 * rng.normal(size=(90, 3))
    data = {"features": z, "labels": (y + 1) % 3, "logits": np.eye(3)[y]}  # labels all wrong
    true = {(r["split"], r["metric"]): r["value"] for r in compute(data, data, 3, seed=0)}
    pred = compute(data, data, 3, seed=0, grouping="predicted_labels")
    pred = {(r["split"], r["metric"]): r["value"] for r in pred}
    assert true[("train", "accuracy")] == 0.0
    # grouping by the network's predictions recovers the clusters
    assert pred[("train", "separation_ratio")] == pytest.approx(true[("train", "separation_ratio")])


# ------------------------------------------------------------------ constructed table
def _long_table(values: dict, *, sections=("CIFAR-10",), seeds=(0,), lrs=(0.001,), best=None):
    """A long table: `values[(model, metric, split)] = value` at the last step (100), the
    same at step 50 divided by 2; test accuracy 0.5 + 0.1 * (lr == best) for selection."""
    rows = []
    for section in sections:
        for model in NAMES:
            for seed in seeds:
                for lr in lrs:
                    run = f"{section}-{model}-s{seed}-lr{lr}"
                    base = {
                        "run": run,
                        "paper_dataset": section,
                        "dataset": "synth",
                        "model": model,
                        "seed": seed,
                        "lr": lr,
                        "status": "completed",
                        "experiment": "grid",
                    }
                    acc = 0.5 + (0.1 if lr == best else 0.0)
                    entries = {("accuracy", "test"): acc, ("accuracy", "train"): 1.0}
                    for (m, metric, split), v in values.items():
                        if m == model:
                            entries[(metric, split)] = v
                    for (metric, split), v in entries.items():
                        for step in (50, 100):
                            value = v if step == 100 or metric == "accuracy" else v / 2
                            rows.append(
                                {
                                    **base,
                                    "step": step,
                                    "epoch": step / 10,
                                    "metric": metric,
                                    "split": split,
                                    "value": value,
                                }
                            )
    return pd.DataFrame(rows)


def test_best_lr_per_seed_by_final_test_accuracy():
    table = _long_table({}, seeds=(0, 1), lrs=(0.001, 0.002), best=0.002)
    diverged = table["run"].str.contains("LPC-s1-lr0.002") & (table["model"] == "LPC")
    table.loc[diverged, "status"] = "diverged"
    chosen = select_runs(table)
    assert len(chosen) == 11 * 2
    lpc = chosen[chosen["model"] == "LPC"].set_index("seed")
    assert lpc.loc[0, "lr"] == 0.002 and lpc.loc[1, "lr"] == 0.001  # a diverged run never wins
    assert (chosen["n_lrs"] == 2).all()


def test_table4_pooled_statistics():
    """Two seeds with per-node means 1 and 3 and per-node stds 1 and 1 (population): the
    pooled std over all nodes is sqrt(mean(s^2) + var(m)) = sqrt(1 + 1)."""
    values = {}
    table = _long_table(values, seeds=(0, 1))
    rows = []
    for seed, mean in ((0, 1.0), (1, 3.0)):
        for metric, v in (
            ("binarity_score_mean", mean),
            ("binarity_score_std", 1.0),
            ("binarity_score_min", mean - 2),
            ("binarity_peak_distance_mean", 10 * mean),
            ("binarity_peak_distance_std", 0.0),
            ("binarity_peak_distance_min", 10 * mean),
            ("abs_cv", 0.1 * mean),
        ):
            rows.append(
                {
                    **table[(table["model"] == "LPC") & (table["seed"] == seed)].iloc[0].to_dict(),
                    "metric": metric,
                    "split": "train",
                    "value": v,
                    "step": 100,
                }
            )
    out = table4_values(pd.concat([table, pd.DataFrame(rows)], ignore_index=True))
    lpc = out[out["model"] == "LPC"].set_index("column")["value"]
    assert lpc["score"] == 2.0 and lpc["score std"] == pytest.approx(math.sqrt(2))
    assert lpc["min score"] == -1.0 and lpc["min peak distance"] == 10.0
    assert lpc["peak distance std"] == pytest.approx(10.0)  # sqrt(0 + var(10, 30))
    assert lpc["abs cv"] == pytest.approx(0.2)
    assert set(out["model"]) == {"LPC"}  # only models with binarity rows
    assert set(BINARITY_MODELS) >= set(out["model"])


def _paper_like():
    """Per-model final values that satisfy every claim (train/test as the claims read)."""
    v = {}
    for m in NAMES:
        pen = m.startswith("LPC")
        v[(m, "nc1_per_dim", "train")] = 1e-4 if pen else 0.05
        v[(m, "separation_ratio", "train")] = 500.0 if pen else 1.5
        v[(m, "norm_cv", "train")] = 0.05 if pen else 0.3
        v[(m, "entropy", "test")] = -3.0 if pen else 1.0
        v[(m, "deepfool_robustness", "test")] = 1.0 if pen and m != "LPC-NoPen" else 0.005
    v[("NoPen", "separation_ratio", "train")] = 1.0
    v[("LPC-Narrow", "deepfool_robustness", "test")] = 2.0
    v[("LPC-NoPen", "deepfool_robustness", "test")] = 0.02
    for i, m in enumerate(BINARITY_MODELS):
        v[(m, "binarity_peak_distance_mean", "train")] = 2.0 if m == "LinPen" else 20.0 + i
        v[(m, "binarity_peak_distance_min", "train")] = 0.5 if m == "LinPen" else 9.0
    return v


def _verdicts(table):
    frame = lpc_claims.claims(table, {"lpc": {"enabled": True, "lrs": [0.001]}, "preset": "test"})
    return frame.set_index("claim_id")


def test_claims_supported_on_paper_like_numbers():
    table = _long_table(_paper_like())
    # accuracies: LPC best of the three and above NoPen
    for model, acc in (("LPC", 0.9), ("LPC-Wide", 0.85), ("LPC-Narrow", 0.8), ("NoPen", 0.84)):
        table.loc[
            (table["model"] == model)
            & (table["metric"] == "accuracy")
            & (table["split"] == "test"),
            "value",
        ] = acc
    frame = _verdicts(table)
    assert (frame["verdict"] == "supported").all(), frame[frame["verdict"] != "supported"][
        ["value", "detail"]
    ]
    assert frame.loc["separation_two_orders", "value"] == pytest.approx(500.0)
    assert frame.loc["narrow_most_robust", "value"] == pytest.approx(2.0)
    assert frame.loc["binarity_lpc", "value"] == pytest.approx(9.0)


def test_claims_not_supported_and_untestable():
    values = _paper_like()
    values[("LPC-Wide", "separation_ratio", "train")] = 50.0  # only 50x NoPen
    values[("ArcFace", "separation_ratio", "train")] = 20.0  # 20x: more than one order
    values[("LPC", "norm_cv", "train")] = 0.5
    values[("LinPen", "binarity_peak_distance_mean", "train")] = 8.0
    table = _long_table(values)
    frame = _verdicts(table)
    assert frame.loc["separation_two_orders", "verdict"] == "not supported"
    assert frame.loc["separation_two_orders", "value"] == pytest.approx(50.0)
    assert frame.loc["separation_baselines_within_one_order", "verdict"] == "not supported"
    assert frame.loc["collapse_points_equal_norms", "verdict"] == "not supported"
    assert frame.loc["binarity_not_linpen", "verdict"] == "not supported"
    # a model that did not reach the terminal phase makes its claims untestable
    below = table.copy()
    lpc_train = (
        (below["model"] == "LPC") & (below["metric"] == "accuracy") & (below["split"] == "train")
    )
    below.loc[lpc_train, "value"] = 0.5
    frame = _verdicts(below)
    row = frame.loc["separation_two_orders"]
    assert row["verdict"] == "not testable at this scale" and row["value"] == pytest.approx(50.0)
    assert "CIFAR-10/LPC 0.500" in row["detail"]
    assert frame.loc["separation_baselines_within_one_order", "verdict"] == "not supported"
    # without DeepFool rows the robustness claims cannot be judged
    no_deepfool = table[table["metric"] != "deepfool_robustness"]
    frame = _verdicts(no_deepfool)
    for claim in ("robustness_two_orders", "narrow_most_robust", "separation_robustness_correlate"):
        assert frame.loc[claim, "verdict"] == "not testable at this scale"


# ------------------------------------------------------------------------------- toy
def test_toy_data_schedule_and_stacked_network():
    x, y = hypercube_clusters(10, 4, 20, 0.8, seed=4242)
    assert x.shape == (40, 20) and x.dtype == np.float32 and np.bincount(y).tolist() == [10] * 4
    x2, _ = hypercube_clusters(10, 4, 20, 0.8, seed=4242)
    assert np.array_equal(x, x2)
    # the notebook's schedule: 1e-4 * 2^(e-1), rounded down to a decade; cap at gamma_max
    assert gamma_schedule(1, 1e-4, 2.0, 100.0) == (1e-4, 1e-4)
    cont, used = gamma_schedule(15, 1e-4, 2.0, 100.0)
    assert cont == pytest.approx(1.6384) and used == 1.0
    assert gamma_schedule(21, 1e-4, 2.0, 100.0) == (100.0, 100.0)
    # one copy of the stacked network computes exactly the template MLP
    toy = {"num_classes": 4, "input_dim": 20, "hidden": [32, 32]}
    template = _model(toy, seed=0)
    stacked = StackedToy(template, 2)
    xt = torch.from_numpy(x)
    expected = template.outputs(xt)
    for out in stacked.outputs(xt):
        torch.testing.assert_close(out.features, expected.features)
        torch.testing.assert_close(out.logits, expected.logits)


# -------------------------------------------------------------------------- renderers
def test_every_figure_and_table_renders_from_a_long_table(tmp_path, quick):
    from ncrepro.studies.lpc import figures, tables

    values = _paper_like()
    table = _long_table(values, seeds=(0, 1))
    for model in BINARITY_MODELS:
        for metric in (
            "binarity_score_mean",
            "binarity_std_mean",
            "binarity_score_std",
            "binarity_score_min",
            "binarity_peak_distance_std",
            "abs_cv",
        ):
            values[(model, metric, "train")] = 0.5
    table = _long_table(values, seeds=(0, 1))
    for metric in ("nc2_equinorm", "nc2_equiangularity", "nc2_max_angle"):
        extra = table[table["metric"] == "nc1_per_dim"].assign(metric=metric)
        table = pd.concat([table, extra], ignore_index=True)
    rng = np.random.default_rng(0)
    toy = pd.DataFrame(
        {
            "gamma": np.repeat([0.0, 1.0], 8),
            "epoch": 3,
            "gamma_used": np.repeat([0.0, 1.0], 8),
            "index": np.tile(np.arange(8), 2),
            "label": np.tile(np.arange(4), 4),
            "z1": rng.normal(size=16),
            "z2": rng.normal(size=16),
            "train_accuracy": 1.0,
        }
    )
    toy_path = tmp_path / "toy.parquet"
    toy.to_parquet(toy_path)
    config = {**quick, "inputs": {"toy": toy_path}}
    import matplotlib.pyplot as plt

    for name in ("fig1", "fig3", "fig4", "fig5"):
        fig, rows, caption = getattr(figures, name)(table, config)
        assert caption and len(rows)
        plt.close(fig)
    for name in ("table1", "table2", "table4"):
        out = getattr(tables, name)(table, {**quick, "inputs": {}})
        assert len(out.frame)
    t1 = tables.table1(table, quick).frame.set_index("model")
    assert t1.loc["LPC", "separation_ratio_mean"] == 500.0
    assert t1.loc["LPC", "n_seeds"] == 2 and t1.loc["LPC", "separation_ratio_std"] == 0.0
