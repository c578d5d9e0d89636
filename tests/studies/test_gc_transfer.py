"""gc_transfer (Munn, Dherin, Gonzalvo 2024): run specs and config checks, the metric
set, the bound stage, the claims (on tables built here) and every figure renderer."""

from __future__ import annotations

import copy
import importlib

import numpy as np
import pandas as pd
import pytest

from ncrepro.config import load_config, validate_config
from ncrepro.metrics import geometric as G
from ncrepro.runspec import run_id

runs_module = importlib.import_module("ncrepro.studies.gc_transfer.runs")
claims_module = importlib.import_module("ncrepro.studies.gc_transfer.claims")
figures = importlib.import_module("ncrepro.studies.gc_transfer.figures")
bound = importlib.import_module("ncrepro.studies.gc_transfer.bound")
metric_set = importlib.import_module("ncrepro.studies.gc_transfer.metric_set")


@pytest.fixture
def quick(repo):
    config = load_config(repo / "config.yaml")
    config["gc_transfer"]["enabled"] = True
    validate_config(config)
    return config


def _ids(runs):
    return {run_id(r.spec) for r in runs}


def test_quick_runs_share_their_common_settings(quick):
    runs = runs_module.runs(quick)
    by_experiment = {}
    for r in runs:
        by_experiment.setdefault(r.experiment, set()).add(run_id(r.spec))
    # three rows of three values share the default point: 7 runs per pair
    fig1 = set().union(
        *(by_experiment[f"fig1_{row}"] for row in ("lr", "batch_size", "weight_decay"))
    )
    assert len(fig1) == 7
    assert len(by_experiment["fig1_lr"] & by_experiment["fig1_batch_size"]) == 1
    # quick draws fig6/fig9/fig10 from fig4's runs and fig8 from fig7's
    assert by_experiment["fig6_lr"] == by_experiment["fig4_lr"] == by_experiment["fig10_lr"]
    assert by_experiment["fig9_weight_decay"] == by_experiment["fig4_weight_decay"]
    assert by_experiment["fig8_lr"] == by_experiment["fig7_lr"]
    assert "fig8_batch_size" not in by_experiment  # the paper's fig8 has no batch row
    # fig11: rate 0 is fig1's unregularized run, the others a gc_penalty objective
    penalty = [r for r in runs if r.experiment == "fig11_penalty"]
    assert {r.spec["objective"]["name"] for r in penalty} == {"cross_entropy", "gc_penalty"}
    zero = next(r for r in penalty if r.extra["sweep_value"] == 0)
    assert run_id(zero.spec) in by_experiment["fig1_weight_decay"]
    rated = next(r for r in penalty if r.extra["sweep_value"] > 0)
    assert rated.spec["objective"]["on"] == "logits" and "output" not in rated.spec["objective"]
    assert len(_ids(runs)) == 23


def test_probes_follow_from_what_a_run_is(quick):
    runs = runs_module.runs(quick)
    bounded = {run_id(r.spec) for r in runs if "gc_bound" in r.spec["probes"]}
    assert len(bounded) == 1
    run = next(r for r in runs if run_id(r.spec) in bounded)
    assert run.spec["training"]["weight_decay"] == 0 and run.spec["lr"] == 0.05
    assert run.spec["probes"]["gc_bound"] == {"pair": "fig1"}
    assert "gc_sampling" in run.spec["probes"]
    for r in runs:
        assert r.spec["probes"]["geometric"] == quick["gc_transfer"]["geometric"]
        assert ("fewshot" in r.spec["probes"]) == (
            r.spec.get("view", {}).get("kind") == "class_split"
        )
        assert (
            r.spec["training"]["momentum"] == 0 and r.spec["training"]["lr_schedule"] == "constant"
        )


def test_setting_of_a_row_uses_its_fixed_values(quick):
    config = copy.deepcopy(quick)
    fig1 = config["gc_transfer"]["pairs"]["fig1"]
    fig1["sweeps"]["lr"]["fixed"] = {"batch_size": 64}
    runs = [r for r in runs_module.runs(config) if r.experiment == "fig1_lr"]
    assert {r.spec["training"]["batch_size"] for r in runs} == {64}
    assert sorted(r.spec["lr"] for r in runs) == [0.02, 0.05, 0.1]


def test_check_config_names_the_problem(quick):
    config = copy.deepcopy(quick)
    pairs = config["gc_transfer"]["pairs"]
    pairs["fig1"]["dataset"] = "nope"
    pairs["fig8"]["sweeps"]["batch_size"] = {"values": [16]}
    pairs["fig4"]["view"]["target"] = [0, 1, 2]
    pairs["fig7"]["sweeps"]["lr"]["fixed"] = {"lr": 0.1}
    config["gc_transfer"]["bound"]["value"] = 0.123
    problems = "\n".join(runs_module.check_config(config))
    assert "fig1 uses dataset 'nope'" in problems
    assert "fig8 has no 'batch_size' row" in problems
    assert "overlap: [0]" in problems
    assert "'lr' is swept, it cannot be fixed too" in problems
    assert "weight_decay = 0.123" in problems
    del pairs["fig4"]["view"]
    assert "a few-shot pair needs view" in "\n".join(runs_module.check_config(config))


def test_paper_preset_is_the_papers_grid(repo):
    config = load_config(repo / "config.yaml", repo / "presets/paper.yaml")
    validate_config(config)
    block = config["gc_transfer"]
    assert block["enabled"] and block["seeds"] == [0, 1, 2, 3, 4]
    assert block["training"]["checkpoints"] == {"schedule": "linear", "every": 1000}
    pairs = block["pairs"]
    # the fixed values the text kept (appendix A.4-A.5)
    assert pairs["fig1"]["sweeps"]["lr"]["fixed"] == {"batch_size": 512}
    assert pairs["fig1"]["sweeps"]["batch_size"]["fixed"] == {"lr": 0.01}
    assert pairs["fig1"]["sweeps"]["weight_decay"]["fixed"] == {"lr": 0.01, "batch_size": 256}
    assert pairs["fig4"]["sweeps"]["batch_size"]["fixed"] == {"lr": 0.005}
    assert pairs["fig6"]["sweeps"]["batch_size"]["fixed"] == {"lr": 0.2}
    assert pairs["fig7"]["sweeps"]["weight_decay"]["fixed"] == {"lr": 0.02, "batch_size": 512}
    assert set(pairs["fig8"]["sweeps"]) == set(pairs["fig9"]["sweeps"]) == {"lr", "weight_decay"}
    assert pairs["fig11"]["seeds"] == [0]
    # CIFAR-FS: 64/16/20 classes of CIFAR-100; source 10 of the 64, target the 20
    view = pairs["fig4"]["view"]
    assert len(view["source"]) == 10 and len(view["target"]) == 20
    assert not set(view["source"]) & set(view["target"])
    runs = runs_module.runs(config)
    assert not runs_module.check_config(config)
    assert {r.spec["arch"] for r in runs} == {"vgg13", "resnet18", "vgg11", "resnet50", "vgg16"}
    # nothing of the quick preset's stand-ins leaks into the paper's pairs
    for r in runs:
        pair = r.extra["pair"]
        assert ("view" in r.spec) == (pair in ("fig4", "fig10")), pair
        assert r.spec["training"]["augment"] == "crop_flip", pair
        assert r.spec["width"] == 1.0 and r.spec["dataset"]["key"] in {
            "cifar10",
            "cifar_fs",
            "mnist",
            "fashion_mnist",
            "cifar100",
            "miniimagenet_fs",
        }
    assert all(
        not p.get("stands_in_note") and not p.get("arch_stands_in_for") for p in pairs.values()
    )
    # 309 runs: per pair the distinct (lr, batch, L2 / rate) settings x 5 seeds (fig11: 1)
    distinct = {
        pair: len({run_id(r.spec) for r in runs if r.extra["pair"] == pair}) for pair in pairs
    }
    assert distinct == {
        "fig1": 50,
        "fig4": 50,
        "fig6": 60,
        "fig7": 50,
        "fig8": 40,
        "fig9": 35,
        "fig10": 20,
        "fig11": 5,
    }
    assert len(_ids(runs)) == 309  # fig11's rate 0 is fig1's run


def test_paper_preset_dry_run_job_count(tmp_path):
    """The full paper grid plans (gc_transfer alone): 309 runs, 1332 jobs."""
    import yaml
    from pipeline import job_counts, snakemake, workflow_copy

    from ncrepro.studies import study_keys

    work = workflow_copy(tmp_path)
    off = {key: {"enabled": False} for key in study_keys() if key != "gc_transfer"}
    (work / "only.yaml").write_text(yaml.safe_dump(off))
    result = snakemake(
        work, "-n", "--cores", "all", "--configfile", "presets/paper.yaml", "only.yaml"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert job_counts(result.stdout) == {
        "prepare_data": 6,  # cifar10, cifar_fs, mnist, fashion_mnist, cifar100, miniimagenet_fs
        "train": 309,
        "features": 309,
        "metrics": 309,
        "probe": 380,  # geometric 309, fewshot 70 (fig4, fig10), gc_sampling 1
        "gc_transfer_bound": 5,  # fig3's run, 5 seeds
        "gc_transfer_figure": 11,
        "aggregate": 1,
        "gc_transfer_table": 1,
        "all": 1,
        "total": 1332,
    }


# ------------------------------------------------------------------------ metric set


def test_metric_set_values():
    rng = np.random.default_rng(0)
    k, n, d = 3, 20, 4
    labels = np.repeat(np.arange(k), n)
    centres = rng.normal(size=(k, d)) * 4
    train = {"features": centres[labels] + rng.normal(size=(k * n, d)), "labels": labels}
    test = {"features": centres[labels] + 3 * rng.normal(size=(k * n, d)), "labels": labels}
    train["logits"] = train["features"] @ centres.T
    test["logits"] = test["features"] @ centres.T
    rows = {(r["split"], r["metric"]): r for r in metric_set.compute(train, test, k, seed=0)}
    means = G.class_means(train["features"], labels, k)
    expected = G.ncc_error(test["features"], labels, means)
    assert rows["test", "ncc_test_error"]["value"] == expected
    assert 0 < rows["train", "cdnv"]["value"] < rows["test", "cdnv"]["value"]
    assert rows["train", "cdnv"]["cdnv_distance"] == "squared"
    assert {("train", "accuracy"), ("test", "loss")} <= set(rows)


# ----------------------------------------------------------------------- bound stage


def _geometric_rows(run, steps, gcol, k=10, m=100):
    rows = []
    for step, value in zip(steps, gcol, strict=True):
        for metric, v in (("geometric_collapse", value), ("gc", value / 2)):
            rows.append(
                {
                    "run": run,
                    "step": step,
                    "split": "train",
                    "metric": metric,
                    "value": v,
                    "num_classes": k,
                    "per_class": m,
                }
            )
    return pd.DataFrame(rows)


def _metric_rows(run, steps, cdnv):
    rows = [
        {"run": run, "step": s, "split": "train", "metric": "cdnv", "value": v}
        for s, v in zip(steps, cdnv, strict=True)
    ]
    return pd.DataFrame(rows)


def test_bound_stage_estimates_rho_on_the_calibration_runs(tmp_path):
    files = []
    for run, gcol, cdnv in (("a", [2.0, 1.0], [0.2, 0.3]), ("b", [4.0, 4.0], [0.4, 0.2])):
        folder = tmp_path / run
        folder.mkdir()
        _geometric_rows(run, [10, 20], gcol).to_parquet(folder / "geometric.parquet")
        _metric_rows(run, [10, 20], cdnv).to_parquet(folder / f"{run}.parquet")
        files += [folder / "geometric.parquet", folder / f"{run}.parquet"]
    out = bound.gc_bound_rows({}, files[:2] + files)
    rho = 0.3  # max of 0.1, 0.3, 0.1, 0.05
    gcb = out[out["metric"] == "gc_bound"].set_index("step")["value"]
    assert gcb[10] == pytest.approx(G.gc_bound(2.0, 10, 100, rho))
    assert gcb[20] == pytest.approx(12 * 9 * (1 + 2.5 / 100) * rho * 1.0)
    cdb = out[out["metric"] == "cdnv_bound"].set_index("step")["value"]
    assert cdb[20] == pytest.approx(G.ncc_error_bound(0.3, 10, 100))
    assert set(out["run"]) == {"a"} and (out["poincare_constant"] == rho).all()
    assert (out["poincare_checkpoints"] == 4).all() and (out["split"] == "test").all()


# ------------------------------------------------------------------ claims, figures


def _table(config, gc_of_value, cdnv_of_gc=lambda gc: gc / 10):
    """A long table for the quick grid in which end-of-training GC is `gc_of_value(row,
    value)` and CDNV a function of GC; few-shot and bound rows included."""
    rows = []
    for run in runs_module.runs(config):
        rid, row, value = run_id(run.spec), run.extra["sweep"], run.extra["sweep_value"]
        base = {
            "experiment": run.experiment,
            "run": rid,
            "seed": 0,
            "status": "completed",
            "dataset": run.spec["dataset"]["key"],
            **run.extra,
        }
        final_gc = gc_of_value(row, value)
        for step, scale in ((100, 2.0), (200, 1.0)):
            gc = final_gc * scale
            gcol = gc * 0.5
            common = {**base, "step": step}
            rows += [
                {**common, "split": "train", "metric": "gc", "value": gc, "probe": "geometric"},
                {
                    **common,
                    "split": "train",
                    "metric": "logit_gc",
                    "value": gc / 3,
                    "probe": "geometric",
                },
                {
                    **common,
                    "split": "train",
                    "metric": "geometric_collapse",
                    "value": gcol,
                    "probe": "geometric",
                },
                {
                    **common,
                    "split": "train",
                    "metric": "cdnv",
                    "value": cdnv_of_gc(gc),
                    "probe": None,
                },
                {
                    **common,
                    "split": "test",
                    "metric": "ncc_test_error",
                    "value": 0.2,
                    "probe": None,
                },
            ]
            for split in ("train", "test"):
                rows += [
                    {**common, "split": split, "metric": "accuracy", "value": 0.9, "probe": None},
                    {**common, "split": split, "metric": "loss", "value": 0.3, "probe": None},
                ]
            if "fewshot" in run.spec["probes"]:
                rows += [
                    {
                        **common,
                        "split": "test",
                        "metric": "target_cdnv",
                        "value": gc / 5,
                        "probe": "fewshot",
                    },
                    {
                        **common,
                        "split": "test",
                        "metric": "fewshot_accuracy",
                        "value": 1 - gc / 100,
                        "probe": "fewshot",
                    },
                ]
            if "gc_bound" in run.spec["probes"]:
                rows += [
                    {
                        **common,
                        "split": "test",
                        "metric": "gc_bound",
                        "value": 0.5,
                        "probe": "gc_bound",
                        "poincare_constant": 0.2,
                        "poincare_checkpoints": 14,
                    },
                    {
                        **common,
                        "split": "test",
                        "metric": "cdnv_bound",
                        "value": 0.4,
                        "probe": "gc_bound",
                    },
                ]
        if "gc_sampling" in run.spec["probes"]:
            sampling = {
                **base,
                "step": 200,
                "split": "train",
                "metric": "gc",
                "probe": "gc_sampling",
                "gc_samples": 64,
            }
            rows.append(
                {**sampling, "estimator": "exact", "gc_fraction": 1.0, "gc_draw": 0, "value": 10.0}
            )
            for est in ("batch", "entries", "outputs", "projections"):
                for f in (0.125, 0.25):
                    for d in range(4):
                        noise = 0.02 if est != "outputs" else 0.3
                        value = 10.0 * (1 + noise * (1 if d % 2 else -1))
                        rows.append(
                            {
                                **sampling,
                                "estimator": est,
                                "gc_fraction": f,
                                "gc_draw": d,
                                "value": value,
                            }
                        )
    return pd.DataFrame(rows)


def _paper_direction(row, value):
    """GC as the paper says: lower for higher LR / more L2 / penalty, smaller batch."""
    return {
        "lr": 10 / (1 + 20 * value),
        "batch_size": value / 4,
        "weight_decay": 10 / (1 + 50 * value),
        "penalty": 10 / (1 + 50 * value),
    }[row]


def test_claims_follow_the_numbers(quick):
    table = _table(quick, _paper_direction)
    frame = claims_module.claims(table, quick).set_index("claim_id")
    for pair in ("fig1", "fig4", "fig7"):
        assert frame.loc[f"lr_lowers_gc_{pair}", "verdict"] == "supported"
        assert frame.loc[f"batch_size_lowers_gc_{pair}", "verdict"] == "supported"
        assert frame.loc[f"gc_cdnv_{pair}_weight_decay", "value"] == pytest.approx(1.0)
    assert frame.loc["penalty_lowers_gc_fig11", "verdict"] == "supported"
    # fig6/fig9/fig10 are fig4's runs in quick: judged once, the note says so
    assert "gc_cdnv_fig6_lr" not in frame.index and "fig6" in frame.loc["gc_cdnv_fig4_lr", "detail"]
    assert frame.loc["source_gc_target_cdnv_lr", "verdict"] == "supported"
    assert frame.loc["source_gc_fewshot_lr", "value"] == pytest.approx(-1.0)
    assert frame.loc["bound_above_ncc_error", "verdict"] == "supported"
    assert frame.loc["bound_non_vacuous", "verdict"] == "supported"
    assert frame.loc["sampled_gc_batch", "verdict"] == "supported"
    assert frame.loc["sampled_gc_outputs", "verdict"] == "not supported"  # 30 % per draw
    # CDNV / GCol = 0.2 everywhere: rho = 0.2 holds on the held-out fig11 runs
    assert frame.loc["cdnv_below_geometric_collapse", "verdict"] == "supported"
    # the opposite ordering is reported as not supported
    flipped = claims_module.claims(_table(quick, lambda r, v: 1 / _paper_direction(r, v)), quick)
    flipped = flipped.set_index("claim_id")
    assert flipped.loc["lr_lowers_gc_fig1", "verdict"] == "not supported"
    assert flipped.loc["gc_cdnv_fig1_lr", "verdict"] == "supported"  # CDNV still follows GC


def test_claims_of_too_few_values_are_not_testable(quick):
    config = copy.deepcopy(quick)
    config["gc_transfer"]["pairs"]["fig1"]["sweeps"]["lr"]["values"] = [0.05, 0.1]
    frame = claims_module.claims(_table(config, _paper_direction), config).set_index("claim_id")
    assert frame.loc["lr_lowers_gc_fig1", "verdict"] == "not testable at this scale"
    assert "need 3" in frame.loc["lr_lowers_gc_fig1", "detail"]


@pytest.mark.parametrize("fig", [f"fig{i}" for i in range(1, 12)])
def test_every_figure_renders_with_a_caption(quick, fig):
    import matplotlib.pyplot as plt

    table = _table(quick, _paper_direction)
    figure, rows, caption = getattr(figures, fig)(table, quick)
    assert len(rows) > 0 and "Preset 'quick'" in caption
    if fig not in ("fig2", "fig3"):
        assert "stands in" in caption or "synth" in caption
    plt.close(figure)


def test_fig3_caption_reports_rho(quick):
    import matplotlib.pyplot as plt

    figure, rows, caption = figures.fig3(_table(quick, _paper_direction), quick)
    assert "rho = 0.2 = max CDNV / geometric collapse over the 14 checkpoints" in caption
    assert set(rows["metric"]) == {"gc_bound", "cdnv_bound", "ncc_test_error"}
    plt.close(figure)


# ------------------------------------------------------------- the smoke run's outputs


@pytest.mark.slow
def test_smoke_outputs_and_gc_recomputed_from_a_checkpoint(smoke_run):
    """Every figure and the claims table exist; the GC of a kept checkpoint, recomputed
    from its file and its data with plain autograd (not the library), agrees with the
    library's exact GC, and the probe's value is reproduced by the same estimator."""
    import json

    import torch

    from ncrepro.data import load_prepared
    from ncrepro.models import build_model
    from ncrepro.probes.geometric import gc_sample_rows
    from ncrepro.train.device_data import Normalizer

    work = smoke_run
    results = work / "results/smoke"
    for fig in [f"fig{i}" for i in range(1, 12)]:
        assert (results / f"figures/gc_transfer/{fig}.png").stat().st_size > 10_000, fig
    claims = pd.read_csv(results / "tables/gc_transfer/claims.csv")
    assert {"bound_above_ncc_error", "sampled_gc_projections"} <= set(claims["claim_id"])
    table = pd.read_parquet(results / "tables/gc_transfer.parquet")
    assert {
        "gc",
        "logit_gc",
        "cdnv",
        "geometric_collapse",
        "ncc_test_error",
        "gc_bound",
        "fewshot_accuracy",
        "target_cdnv",
        "accuracy",
        "loss",
    } <= set(table["metric"])
    assert set(table.loc[table["probe"] == "gc_sampling", "estimator"]) == {
        "exact",
        "batch",
        "entries",
        "outputs",
        "projections",
    }

    row = table[(table["metric"] == "gc") & (table["probe"] == "geometric")].iloc[0]
    run_dir = results / "runs/gc_transfer" / row["run"]
    record = json.loads((run_dir / "run.json").read_text())
    spec = record["spec"]
    entry = next(c for c in record["checkpoints"] if c["step"] == row["step"])
    state = torch.load(run_dir / entry["file"], map_location="cpu", weights_only=True)["model"]
    data = load_prepared(results / f"data/{spec['dataset']['key']}", "train")
    from ncrepro.data.views import apply_view, num_classes

    view = spec.get("view", {"kind": "full"})
    images, labels, _ = apply_view(view, "train", data)
    torch.manual_seed(0)
    model = build_model(
        spec["arch"],
        num_classes=num_classes(view, data.num_classes),
        in_channels=images.shape[1],
        image_size=images.shape[2],
        width=spec["width"],
        **spec["arch_params"],
    )
    model.load_state_dict(state)
    model.eval()
    settings = spec["probes"]["geometric"]
    rows = gc_sample_rows(len(labels), settings["samples"], settings["seed"])
    x = Normalizer.fit(images, spec["training"]["normalize"])(torch.from_numpy(images[rows]))
    # plain autograd, one output coordinate at a time (eval mode: samples independent)
    leaf = x.clone().requires_grad_(True)
    h = model.penultimate(leaf)
    total = 0.0
    for d in range(h.shape[1]):
        (g,) = torch.autograd.grad(h[:, d].sum(), leaf, retain_graph=True)
        total += float(g.double().pow(2).sum())
    by_hand = total / len(x)
    assert G.gc_exact(G.model_map(model), x) == pytest.approx(by_hand, rel=1e-6)
    # the probe's value: the same estimator with the same draws
    gen = torch.Generator().manual_seed(settings["seed"])
    again = G.gc_projections(
        G.model_map(model), x, 1.0, gen, chunk=settings["chunk"], draws=settings["projections"]
    )
    assert row["estimator"] == "projections"
    assert row["value"] == pytest.approx(again, rel=1e-6)
    assert abs(row["value"] - by_hand) / by_hand < 1.0  # an estimate of the same quantity


def test_bound_inputs_are_the_target_then_every_calibration_run(quick):
    from ncrepro.studies import build_run_sheet

    sheet, specs = build_run_sheet(quick)
    target = next(r for r, s in specs.items() if "gc_bound" in s.get("probes", {}))
    files = bound.bound_inputs(sheet, specs, target, "results/quick")
    assert files[:2] == [
        f"results/quick/probes/gc_transfer/{target}/geometric.parquet",
        f"results/quick/metrics/gc_transfer/{target}.parquet",
    ]
    fig1 = set(sheet.loc[sheet["pair"] == "fig1", "run"])
    assert len(files) == 2 + 2 * len(fig1) == 16
