"""A run whose loss becomes NaN/inf (an absurd learning rate) is a result, not a crash:
training and the workflow exit 0, run.json says `diverged`, the metric file has its
"diverged" row, its figure marks it, and no mean over seeds or runs includes it (hand-made
tables with a diverged run next to completed ones: each mean is the completed runs' mean).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline import snakemake, workflow_copy
from studies.test_nc_limits_claims import CONFIG, curve_rows, frame, size_rows, transfer_rows
from test_recovery import ONLY_NC_LIMITS, SMOKE, train_command

from ncrepro.config import load_config
from ncrepro.data import prepare
from ncrepro.figures import LABELS
from ncrepro.runspec import run_id
from ncrepro.studies import get, load
from ncrepro.studies.nc_limits import claims as nl
from ncrepro.studies.nc_limits.runs import run_spec
from ncrepro.studies.nc_limits.transfer_figures import fig4, fig4_points, fig5_points

matplotlib.use("Agg")

ABSURD_LR = 1e30  # the first update makes the weights ~1e30: the loss overflows at once
STEPS = [10, 100, 1000]


def _config(repo):
    return load_config(repo / "config.yaml", repo / "presets/smoke.yaml")


def _diverged_mark(run: str, step: int, **extra) -> dict:
    """The row the metrics stage writes for a diverged run (stages/metrics.py)."""
    return curve_rows(run, [1.0], None, None, None, steps=[step], status="diverged", **extra)[0] | {
        "metric": "diverged"
    }


# ------------------------------------------------------------------------- training CLI
def test_train_cli_exits_0_and_records_a_diverged_run(tmp_path, repo):
    config = _config(repo)
    spec = run_spec(config, "digits", "resnet18", 0, lr=ABSURD_LR)
    run = run_id(spec)
    data = tmp_path / "data"
    prepare("digits", config["datasets"]["digits"]["params"], "data", False, data)
    out = tmp_path / "run"
    job = subprocess.run(
        train_command(spec, run, data, out, tmp_path / "scratch", 1000),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr
    assert "run recorded as diverged" in job.stdout
    record = json.loads((out / "run.json").read_text())
    total = spec["training"]["steps"]
    assert record["status"] == "diverged" and 0 < record["final_step"] < total
    # only checkpoints from before the divergence, each present with its hash
    assert all(c["step"] < record["final_step"] for c in record["checkpoints"])
    assert all((out / c["file"]).is_file() for c in record["checkpoints"])
    log = pd.read_parquet(out / "train_log.parquet")
    assert log["step"].iloc[-1] == record["final_step"] and not np.isfinite(log["loss"].iloc[-1])
    assert not (tmp_path / "scratch").exists()  # a finished run, even a diverged one


# ------------------------------------------------------------------- means (hand-made)
def test_fig4_points_average_only_completed_runs():
    """Per (dataset, arch, N) the mean over the completed seeds: a diverged seed with
    finite last-checkpoint values (9.0, 90.0) and one that diverged before its checkpoint
    (only its "diverged" row) are listed as diverged, in no point."""
    sizes = [100, 200, 400]
    table = frame(
        size_rows(sizes, [0.1, 0.2, 0.3], [3.0, 2.0, 1.0], [0.5, 0.6, 0.7], seeds=(0, 1)),
        size_rows(sizes, [9.0] * 3, [90.0] * 3, [0.1] * 3, seeds=(2,), status="diverged"),
        [_diverged_mark("resnet18-synth10-n100-s3", 7, experiment="train_size", seed=3)],
    )
    table["dataset"] = "synth10"
    per_run, points, rows = fig4_points(table)
    status = per_run.set_index("run")["status"]
    assert (status == "diverged").sum() == 4 and len(status) == 10
    points = points.set_index("n_train")
    # size_rows adds 0.001 x seed: seeds 0 and 1 average to +0.0005
    np.testing.assert_allclose(points["x"], [0.1005, 0.2005, 0.3005])
    np.testing.assert_allclose(points["y"], [3.0005, 2.0005, 1.0005])
    np.testing.assert_allclose(points["acc"], [0.5, 0.6, 0.7])
    np.testing.assert_allclose(points["x_std"], np.std([0.0, 0.001], ddof=1))
    assert (points["n_seeds"] == 2).all()
    assert "resnet18-synth10-n100-s3" in set(rows["run"])  # listed in the provenance rows
    _fig, _rows, caption = fig4(table, {})
    assert "4 diverged" in caption
    # the claims use the same points and say what they left out
    got = {r["claim_id"]: r for _, r in nl.claims(table, CONFIG).iterrows()}
    detail = got["train_test_anticorrelated"]["detail"]
    assert "4 diverged runs left out" in detail and got["train_test_anticorrelated"]["n"] == 3


def test_fig5_points_leave_out_a_diverged_pretraining_run():
    """The earlier checkpoints of a pretraining run that diverged later (x = 50, fine-tuned
    accuracy 0.1) are not averaged with the completed seeds."""
    table = frame(
        transfer_rows(STEPS, [3.0, 2.0, 1.0], [0.6, 0.7, 0.8], seeds=(0, 1)),
        transfer_rows(STEPS[:2], [50.0, 50.0], [0.1, 0.1], seeds=(2,), status="diverged"),
    )
    per_ckpt, points, used = fig5_points(table)
    assert set(per_ckpt["seed"]) == {0, 1}
    points = points.set_index("step")
    np.testing.assert_allclose(points["x"], [3.0, 2.0, 1.0])
    np.testing.assert_allclose(points["y"], [0.6, 0.7, 0.8])  # best LR: shift 0 at lr 0.1
    assert (points["n_seeds"] == 2).all()
    assert "mlp-digits-super-s2" in set(used["run"])  # still in the provenance rows


def _curves_table(experiment: str) -> pd.DataFrame:
    """Seeds 0 and 1 completed; seed 2 diverged after two checkpoints (huge variances
    there); seed 3 diverged before its first checkpoint."""
    cell = {"experiment": experiment, "dataset": "synth10", "grid_arch": "resnet18"}
    return frame(
        curve_rows("a", [1.0, 0.1, 0.01], [3, 2, 1], [4, 3, 2], [1, 0.1, 0.01], seed=0, **cell),
        curve_rows("b", [2.0, 0.3, 0.05], [5, 4, 3], [6, 5, 4], [1, 0.1, 0.01], seed=1, **cell),
        curve_rows(
            "c",
            [1e3, 1e4],
            [1e3, 1e4],
            [1e3, 1e4],
            [1e3, 1e4],
            steps=STEPS[:2],
            seed=2,
            status="diverged",
            **cell,
        ),  # fmt: skip
        [_diverged_mark("c", 150, seed=2, **cell), _diverged_mark("d", 3, seed=3, **cell)],
    )


@pytest.mark.parametrize("fig_id", ["fig1", "fig2", "fig3"])
def test_curve_figures_mark_diverged_runs_and_average_the_others(repo, fig_id):
    import matplotlib.pyplot as plt

    experiment = "grid" if fig_id == "fig3" else "curves"
    config = _config(repo)
    config["nc_limits"]["grid"] = {**config["nc_limits"]["grid"], "datasets": ["synth10"]}
    render = load(get("nc_limits").figures[fig_id].render)
    fig, rows, caption = render(_curves_table(experiment), config)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    train = lines[LABELS["train_variance"]]
    np.testing.assert_array_equal(train.get_xdata(), STEPS)
    np.testing.assert_allclose(train.get_ydata(), [1.5, 0.2, 0.03])  # seeds 0 and 1 only
    strong = lines[LABELS["strong_test_variance"]]
    np.testing.assert_allclose(strong.get_ydata(), [4.0, 3.0, 2.0])
    band = ax.collections[0].get_paths()[0].vertices[:, 1]  # TrainVariance min-max band
    assert band.max() == pytest.approx(2.0)  # seed 1 at step 10
    assert [t.get_text() for t in ax.texts] == ["diverged (2 runs)"]
    assert "2 diverged run(s)" in caption
    assert {"c", "d"} <= set(rows["run"])  # in the provenance rows, with their status
    plt.close(fig)


def test_claims_leave_diverged_runs_out_of_the_median():
    """Train collapse: the median of the completed runs' factors (100 and 40); the run
    with checkpoints (factor 1e3 -> 1e4) and the one without are counted as left out."""
    table = _curves_table("grid")
    got = {r["claim_id"]: r for _, r in nl.claims(table, CONFIG).iterrows()}
    collapse = got["train_collapse"]
    assert collapse["value"] == pytest.approx(70.0) and collapse["n"] == 2
    assert "2 diverged runs left out" in collapse["detail"]
    only_diverged = table[table["run"] == "d"]
    got = {r["claim_id"]: r for _, r in nl.claims(only_diverged, CONFIG).iterrows()}
    assert "all 1 curves/grid runs diverged" in got["train_collapse"]["detail"]


# ------------------------------------------------------------------------- the workflow
@pytest.mark.slow
def test_a_diverged_run_goes_through_the_workflow(tmp_path):
    """nc_limits on smoke with ResNet18 at an absurd LR: the curves/grid run, a train-size
    run next to a capped one (its own LR), and the transfer pretraining (whose fine-tuning
    jobs were planned for checkpoints it never wrote) all diverge; the workflow ends."""
    work = workflow_copy(tmp_path / "work")
    transfer = yaml.safe_load((work / "presets/smoke.yaml").read_text())["nc_limits"]["transfer"]
    transfer["settings"][0]["lr"] = ABSURD_LR
    transfer["finetune"]["lrs"] = [0.1]
    setting = {"dataset": "digits", "arch": "resnet18", "n_train": [100]}
    overrides = {
        **ONLY_NC_LIMITS,
        "nc_limits": {
            "lr": {"resnet18": ABSURD_LR},
            "grid": {"datasets": ["synth10"]},
            "train_size": {"settings": [setting, {**setting, "lr": 0.1}]},
            "transfer": transfer,
        },
    }
    (work / "diverge.yaml").write_text(yaml.safe_dump(overrides))
    result = snakemake(work, "--cores", "2", *SMOKE, "diverge.yaml")
    assert result.returncode == 0, result.stderr[-5000:]

    results = work / "results/smoke"
    records = {
        p.parent.name: json.loads(p.read_text())
        for p in (results / "runs/nc_limits").glob("*/run.json")
    }
    status = {run: r["status"] for run, r in records.items()}
    assert sorted(status.values()) == ["capped", "diverged", "diverged", "diverged"], status
    for run, record in records.items():
        if record["status"] != "diverged":
            continue
        log = (results / f"logs/train/nc_limits/{run}.log").read_text()
        assert "run recorded as diverged" in log and "Traceback" not in log
        metrics = pd.read_parquet(results / f"metrics/nc_limits/{run}.parquet")
        mark = metrics[metrics["metric"] == "diverged"]
        assert mark[["step", "value"]].values.tolist() == [[record["final_step"], 1.0]]
    table = pd.read_parquet(results / "tables/nc_limits.parquet")
    assert table.groupby("run")["status"].first().to_dict() == status

    transfer_run = table.loc[table["experiment"] == "transfer", "run"].iloc[0]
    tuned = table[(table["run"] == transfer_run) & (table["metric"] == "finetune_accuracy")]
    assert len(tuned) == 4 and set(tuned["probe_status"]) == {"diverged"}  # 2 ckpts x 2 splits
    assert tuned["value"].isna().all()

    # fig1 (the curves run) and fig3 mark it; fig4's point is the capped run alone
    curves_run = table.loc[table["experiment"] == "curves", "run"].iloc[0]
    for fig_id in ("fig1", "fig2", "fig3"):
        prov = json.loads((results / f"figures/nc_limits/{fig_id}.provenance.json").read_text())
        assert "1 diverged run(s)" in prov["caption"], fig_id
        assert [(r["run"], r["status"]) for r in prov["runs"]] == [(curves_run, "diverged")]
    per_run, points, _ = fig4_points(table)
    capped = per_run[per_run["status"] == "capped"].iloc[0]
    assert len(points) == 1 and points.iloc[0]["x"] == capped["x"]
    assert points.iloc[0]["y"] == capped["y"] and points.iloc[0]["n_seeds"] == 1
    prov = json.loads((results / "figures/nc_limits/fig4.provenance.json").read_text())
    assert "1 diverged" in prov["caption"] and "1 capped" in prov["caption"]

    claims = pd.read_csv(results / "tables/nc_limits/claims.csv").set_index("claim_id")
    assert "all 1 curves/grid runs diverged" in claims.loc["train_collapse", "detail"]
    assert "1 diverged runs left out" in claims.loc["train_test_anticorrelated", "detail"]
    assert math.isnan(claims.loc["collapsed_transfer_worse", "value"])

    # the records of a diverged run are audited like any other
    audit = subprocess.run(
        [sys.executable, "-m", "ncrepro", "audit", "results/smoke/figures/nc_limits/fig1.pdf"],
        cwd=work, capture_output=True, text=True,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr
    assert f"ok train index results/smoke/runs/nc_limits/{curves_run}/train_index.npy" in (
        audit.stdout
    )
