"""The workflow itself: paper-scale DAG, lint/format, and the smoke pipeline end to end."""

import json
import time

import numpy as np
import pandas as pd
import pytest
from pipeline import job_counts, snakemake, workflow_copy


def test_paper_dry_run_job_counts(tmp_path):
    work = workflow_copy(tmp_path)
    start = time.perf_counter()
    result = snakemake(work, "-n", "--cores", "all", "--configfile", "presets/paper.yaml")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # 5 datasets x 3 architectures = 15 runs; fig1/fig2 reuse the CIFAR-10/ResNet18 cell
    assert counts == {
        "prepare_data": 5,
        "train": 15,
        "features": 15,
        "metrics": 15,
        "aggregate": 1,
        "figure": 3,
        "ufm_solve": 1,
        "ufm_figure": 3,
        "ufm_encoding_table": 1,
        "all": 1,
        "total": 60,
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
    for fig in ("fig1", "fig2", "fig3"):
        for ext in ("pdf", "png", "provenance.json"):
            path = work / f"results/figures/nc_limits/{fig}.{ext}"
            assert path.exists() and path.stat().st_size > 0, path
    for fig in ("fig1", "transition", "encodings"):
        assert (work / f"results/figures/class_encoding/{fig}.png").stat().st_size > 10_000
    ufm = pd.read_parquet(work / "results/tables/class_encoding.parquet")
    exact = ufm[ufm["theory"].notna()]
    assert len(exact) > 500 and exact["residual"].abs().max() < 1e-6
    encodings = (work / "results/tables/class_encoding/encodings.md").read_text()
    assert "label smoothing" in encodings
    for dataset in ("digits", "synth10"):
        manifest = json.loads((work / f"results/data/{dataset}/manifest.json").read_text())
        assert manifest["dataset"] == {"digits": "digits", "synth10": "synth"}[dataset]
        assert len(manifest["splits"]["train"]["sha256"]) == 64
    table = pd.read_parquet(work / "results/tables/nc_limits.parquet")
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
    runs = table["run"].unique()
    assert len(runs) == 2  # digits/resnet18 and synth10/resnet18 (shared with fig1/fig2)
    steps = sorted(table["step"].unique())
    assert steps == [4, 10, 24]  # presets/smoke.yaml: log schedule, 3 checkpoints, 24 steps
    per_run = table[table["experiment"] == "grid"].groupby("run")
    for _, rows in per_run:
        metrics = set(rows["metric"])
        assert {"train_variance", "strong_test_variance", "weak_test_variance"} <= metrics
        assert np.isfinite(rows["value"]).all()
    curves = table[table["experiment"] == "curves"]
    assert curves["dataset"].unique().tolist() == ["synth10"]
    for run in runs:
        record = json.loads((work / f"results/runs/nc_limits/{run}/run.json").read_text())
        assert record["status"] == "completed"
        assert [c["step"] for c in record["checkpoints"]] == steps


@pytest.mark.slow
def test_metrics_recomputed_from_kept_features_match_table(smoke_run):
    """An independent numpy computation of TrainVariance/StrongTestVariance from the
    --notemp feature files equals the Parquet values."""
    work = smoke_run
    table = pd.read_parquet(work / "results/tables/nc_limits.parquet")
    checked = 0
    for (run, step), rows in table.groupby(["run", "step"]):
        for split, metric in (("train", "train_variance"), ("test", "strong_test_variance")):
            with np.load(work / f"results/features/nc_limits/{run}/step{step}/{split}.npz") as f:
                h, y = f["features"].astype(np.float64), f["labels"]
            means = np.stack([h[y == c].mean(0) for c in np.unique(y)])
            within = np.mean(np.sum((h - means[np.searchsorted(np.unique(y), y)]) ** 2, axis=1))
            between = np.mean(np.sum((means - means.mean(0)) ** 2, axis=1))
            value = rows.loc[(rows["split"] == split) & (rows["metric"] == metric), "value"]
            assert value.iloc[0] == pytest.approx(within / between, rel=1e-9)
            checked += 1
    assert checked == 12


def test_single_figure_runs_only_what_it_needs(tmp_path):
    """fig2 (one ResNet18/CIFAR-10 run) does not pull in the rest of the paper grid."""
    work = workflow_copy(tmp_path)
    # the target goes first: --configfile takes every following word
    result = snakemake(
        work,
        "results/figures/nc_limits/fig2.pdf",
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
        "figure": 1,
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
        "transition.png",
        "encodings.png",
        "encodings.csv",
    ):
        assert name in names, name
    assert names.count("fig1.png") == 2  # nc_limits and class_encoding
    html = archive.read("report/report.html").decode()
    for caption in (
        "Failure of test collapse",
        "Neural collapse on CIFAR-10",
        "Bias transition of Theorem III.1",
    ):
        assert caption in html
