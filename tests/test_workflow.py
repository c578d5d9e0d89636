"""The workflow itself: paper-scale DAG, lint/format, and the smoke pipeline end to end."""

import json
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline import job_counts, params_changed_outputs, snakemake, workflow_copy


def test_paper_dry_run_job_counts(tmp_path):
    """nc_limits and class_encoding at paper scale (the other studies count their own)."""
    from ncrepro.studies import study_keys

    work = workflow_copy(tmp_path)
    off = {k: {"enabled": False} for k in study_keys() if k not in ("nc_limits", "class_encoding")}
    (work / "covered_only.yaml").write_text(yaml.safe_dump(off))
    start = time.perf_counter()
    result = snakemake(
        work, "-n", "--cores", "all", "--configfile", "presets/paper.yaml", "covered_only.yaml"
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # runs: 5 datasets x 3 architectures = 15 (fig1/fig2 reuse the CIFAR-10/ResNet18 cell)
    # + fig4: 2 grids x 5 subset sizes x 5 seeds = 50 + fig5: 2 pretrainings x 5 seeds = 10;
    # fine-tuning: one job per (pretraining run, checkpoint, LR) = 10 x 8 x 7 = 560
    assert counts == {
        "prepare_data": 5,
        "train": 75,
        "features": 75,
        "metrics": 75,
        "finetune": 560,
        "probe": 10,  # the linear probe of each fig5 pretraining
        "aggregate": 1,
        "nc_limits_figure": 5,
        "nc_limits_table": 1,  # claims
        "class_encoding_solve": 1,
        "class_encoding_figure": 3,
        "class_encoding_table": 2,  # encodings, claims
        "all": 1,
        "total": 814,
    }
    assert elapsed < 60


def test_lint_and_format(repo):
    lint = snakemake(repo, "--lint", "--cores", "1")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Congratulations" in lint.stdout + lint.stderr
    import subprocess

    fmt = subprocess.run(
        ["snakefmt", "--check", "Snakefile", "workflow"], cwd=repo, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stderr


@pytest.mark.slow
def test_smoke_pipeline_outputs(smoke_run):
    work = smoke_run
    for fig in ("fig1", "fig2", "fig3", "fig4", "fig5"):
        for ext in ("pdf", "png", "provenance.json"):
            path = work / f"results/smoke/figures/nc_limits/{fig}.{ext}"
            assert path.exists() and path.stat().st_size > 0, path
    for fig in ("fig1", "transition", "encodings"):
        assert (work / f"results/smoke/figures/class_encoding/{fig}.png").stat().st_size > 10_000
    ufm = pd.read_parquet(work / "results/smoke/tables/class_encoding.parquet")
    exact = ufm[ufm["theory"].notna()]
    assert len(exact) > 500 and exact["residual"].abs().max() < 1e-6
    encodings = (work / "results/smoke/tables/class_encoding/encodings.md").read_text()
    assert "label smoothing" in encodings
    for dataset in ("digits", "synth10"):
        manifest = json.loads((work / f"results/smoke/data/{dataset}/manifest.json").read_text())
        assert manifest["dataset"] == {"digits": "digits", "synth10": "synth"}[dataset]
        assert len(manifest["splits"]["train"]["sha256"]) == 64
    table = pd.read_parquet(work / "results/smoke/tables/nc_limits.parquet")
    for column in [
        "study",
        "experiment",
        "run",
        "dataset",
        "arch",
        "loss",
        "seed",
        "view",
        "n_train",
        "step",
        "epoch",
        "split",
        "metric",
        "value",
        "code_version",
    ]:
        assert column in table.columns, column
    runs = table.loc[table["experiment"].isin(["grid", "curves"]), "run"].unique()
    assert len(runs) == 2  # digits/resnet18 and synth10/resnet18 (shared with fig1/fig2)
    steps = sorted(table.loc[table["run"].isin(runs), "step"].unique())
    assert steps == [4, 10, 24]  # presets/smoke.yaml: log schedule, 3 checkpoints, 24 steps
    per_run = table[table["experiment"] == "grid"].groupby("run")
    for _, rows in per_run:
        metrics = set(rows["metric"])
        assert {"train_variance", "strong_test_variance", "weak_test_variance"} <= metrics
        assert np.isfinite(rows["value"]).all()
    curves = table[table["experiment"] == "curves"]
    assert curves["dataset"].unique().tolist() == ["synth10"]
    for run in runs:
        record = json.loads((work / f"results/smoke/runs/nc_limits/{run}/run.json").read_text())
        assert record["status"] == "completed"
        assert [c["step"] for c in record["checkpoints"]] == steps

    # fig4: one run per (N, seed) on its own balanced subset, stopped by loss or cap
    sizes = table[table["experiment"] == "train_size"]
    assert sorted(sizes["n_train"].unique()) == [100, 200]
    for run, rows in sizes.groupby("run"):
        record = json.loads((work / f"results/smoke/runs/nc_limits/{run}/run.json").read_text())
        assert record["status"] in ("stopped_on_loss", "capped")
        index = np.load(work / f"results/smoke/runs/nc_limits/{run}/train_index.npy")
        assert len(index) == record["n_train"] == rows["n_train"].iloc[0]
        assert len(set(index.tolist())) == len(index)
        assert [c["step"] for c in record["checkpoints"]] == [record["final_step"]]

    # fig5: a fine-tune per (checkpoint, LR) and a linear probe per checkpoint, in the table
    transfer = table[table["experiment"] == "transfer"]
    tuned = transfer[(transfer["metric"] == "finetune_accuracy") & (transfer["split"] == "test")]
    assert len(tuned) == 4  # 2 checkpoints x 2 LRs (presets/smoke.yaml)
    assert sorted(tuned["probe_lr"].unique()) == [0.01, 0.1]
    assert tuned["value"].between(0, 1).all()
    linear = transfer[transfer["metric"] == "linear_probe_accuracy"]
    assert len(linear[linear["split"] == "test"]) == 2
    [run] = transfer["run"].unique()
    record = json.loads((work / f"results/smoke/runs/nc_limits/{run}/run.json").read_text())
    assert record["n_train"] == 200  # the pretraining pool of presets/smoke.yaml


def test_single_figure_runs_only_what_it_needs(tmp_path):
    """fig2 (one ResNet18/CIFAR-10 run) does not pull in the rest of the paper grid."""
    work = workflow_copy(tmp_path)
    # the target goes first: --configfile takes every following word
    result = snakemake(
        work,
        "results/paper/figures/nc_limits/fig2.pdf",
        "-n",
        "--cores",
        "all",
        "--configfile",
        "presets/paper.yaml",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert job_counts(result.stdout) == {
        "prepare_data": 1,
        "train": 1,
        "features": 1,
        "metrics": 1,
        "nc_limits_figure": 1,
        "total": 5,
    }


@pytest.mark.slow
def test_report_has_every_figure_with_its_caption(smoke_run):
    import zipfile

    result = snakemake(
        smoke_run, "--configfile", "presets/smoke.yaml", "--report", "results/report.zip"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    archive = zipfile.ZipFile(smoke_run / "results/report.zip")
    names = [n.rsplit("/", 1)[-1] for n in archive.namelist()]
    for name in (
        "fig1.png",
        "fig2.png",
        "fig3.png",
        "fig4.png",
        "fig5.png",
        "transition.png",
        "encodings.png",
        "encodings.csv",
        "claims.csv",
    ):
        assert name in names, name
    assert names.count("fig1.png") >= 2  # nc_limits, class_encoding (and later studies')
    html = archive.read("report/report.html").decode()
    for caption in (
        "Failure of test collapse",
        "Neural collapse on CIFAR-10",
        "Train vs test collapse across train-set sizes",
        "Collapsed features transfer worse",
        "Bias transition of Theorem III.1",
    ):
        assert caption in html


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edited", "expected"),
    [
        # the metrics stage: every metric file (all studies), nothing else
        ("stages/metrics.py", {"results/smoke/metrics/"}),
        # fig4/fig5's module: those two figures and the claims table that reuses their
        # points; not fig1-3 (another module), no run, feature or metric file
        (
            "studies/nc_limits/transfer_figures.py",
            {
                "results/smoke/figures/nc_limits/fig4.pdf",
                "results/smoke/figures/nc_limits/fig5.pdf",
                "results/smoke/tables/nc_limits/claims.csv",
            },
        ),
    ],
)
def test_library_edit_reruns_exactly_the_jobs_it_affects(smoke_run, tmp_path, edited, expected):
    """A library edit changes the code version (a param) of exactly the jobs whose stage
    imports the edited file: a dry run plans them with reason "Params have changed"."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(smoke_run, work, symlinks=True)
    unchanged = snakemake(work, "-n", "--configfile", "presets/smoke.yaml")
    assert unchanged.returncode == 0, unchanged.stderr[-3000:]
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr
    with (work / "src/ncrepro" / edited).open("a") as f:
        f.write("\n# an edit\n")
    changed = snakemake(work, "-n", "--configfile", "presets/smoke.yaml")
    assert changed.returncode == 0, changed.stderr[-3000:]
    listed = params_changed_outputs(changed.stdout)
    assert listed, changed.stdout
    assert all(any(p.startswith(e) for e in expected) for p in listed), listed
    assert all(any(p.startswith(e) for p in listed) for e in expected), listed
