"""A researcher's first hour off the happy path, end to end on the smoke preset: stopped
and killed training, deleted and damaged files, command-line overrides, and presets that
live side by side. Each test asserts the outcome: a finished run with identical results,
or one clear message and nothing else lost."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from pipeline import job_counts, snakemake, workflow_copy

from ncrepro.config import load_config
from ncrepro.data import prepare
from ncrepro.runspec import run_id
from ncrepro.studies import study_keys
from ncrepro.studies.nc_limits.runs import run_spec

SMOKE = ("--configfile", "presets/smoke.yaml")  # last: --configfile takes every next word
RESULTS = "results/smoke"
# runs of the workflow made here only need one trained study (time): the others are off
ONLY_NC_LIMITS = {key: {"enabled": False} for key in study_keys() if key != "nc_limits"}


def copy_of(smoke_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished smoke workflow (results and Snakemake's records)."""
    work = tmp_path / "work"
    shutil.copytree(smoke_run, work, symlinks=True)
    return work


def digest(folder: Path) -> dict[str, str]:
    """sha256 and mtime of every file under `folder`."""
    return {
        str(
            p.relative_to(folder)
        ): f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.stat().st_mtime_ns}"
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def weights(run_dir: Path) -> dict[int, dict]:
    record = json.loads((run_dir / "run.json").read_text())
    return {
        c["step"]: torch.load(run_dir / c["file"], weights_only=True)["model"]
        for c in record["checkpoints"]
    }


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert list(wa) == list(wb)
    for step in wa:
        assert all(torch.equal(wa[step][k], wb[step][k]) for k in wa[step]), step


# --------------------------------------------------------------------------- training


def train_command(spec, run, data, out, scratch, resume_every):
    return [
        sys.executable, "-m", "ncrepro", "train", "--spec", json.dumps(spec), "--run", run,
        "--data", str(data), "--out", str(out), "--scratch", str(scratch), "--device", "cpu",
        "--threads", "1", "--resume-every", str(resume_every),
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_loses_at_most_the_resume_interval_and_the_rerun_is_identical(tmp_path, repo):
    """A loss-threshold run (fig4: checkpoint only at the end) killed with SIGKILL resumes
    from its periodic resume state, not from step 0, and ends bit-identical."""
    config = load_config(repo / "config.yaml", repo / "presets/smoke.yaml")
    training = {"steps": 300, "stop_loss": 1e-9, "checkpoints": {"schedule": "final"}}
    view = {"kind": "subset", "n_train": 200, "seed": 0}
    spec = run_spec(config, "digits", "resnet18", 0, view=view, training=training)
    run = run_id(spec)
    data = tmp_path / "data"
    prepare("digits", config["datasets"]["digits"]["params"], "data", False, data)

    reference = subprocess.run(
        train_command(spec, run, data, tmp_path / "a", tmp_path / "sa", 1000),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert reference.returncode == 0, reference.stderr

    job = subprocess.Popen(
        train_command(spec, run, data, tmp_path / "b", tmp_path / "sb", 0.1),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while not (tmp_path / "sb/resume.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.communicate(timeout=60)
    assert job.returncode == -signal.SIGKILL
    saved = torch.load(tmp_path / "sb/resume.pt", weights_only=True)["step"]
    assert 0 < saved < 300

    rerun = subprocess.run(
        train_command(spec, run, data, tmp_path / "b", tmp_path / "sb", 0.1),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stdout
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    assert not (tmp_path / "sb").exists()  # a finished run leaves no scratch folder


@pytest.mark.slow
def test_sigint_to_the_workflow_then_a_plain_rerun_finishes_identically(tmp_path):
    """Ctrl-C during training (SIGINT to Snakemake's process group), then the plain main
    command: the runs resume where they stopped and end with the checkpoints of
    uninterrupted runs."""
    slow = {**ONLY_NC_LIMITS, "nc_limits": {"training": {"steps": 300}}, "resume_every_s": 0.3}
    runs = {}
    for name in ("interrupted", "reference"):
        work = workflow_copy(tmp_path / name)
        (work / "slow.yaml").write_text(yaml.safe_dump(slow))
        runs[name] = work
    args = ["--cores", "1", "--configfile", "presets/smoke.yaml", "slow.yaml"]

    work = runs["interrupted"]
    env = {**os.environ, "PYTHONPATH": str(work / "src")}
    job = subprocess.Popen(
        ["snakemake", *args], cwd=work, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.time() + 300
    while not list(work.glob(f"{RESULTS}/scratch/nc_limits/*/resume.pt")):
        assert time.time() < deadline and job.poll() is None, "training never saved its state"
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGINT)
    _, err = job.communicate(timeout=120)
    assert job.returncode != 0
    assert "Traceback" not in err
    logs = "".join(p.read_text() for p in work.glob(f"{RESULTS}/logs/train/nc_limits/*.log"))
    assert "SIGINT at step" in logs and "KeyboardInterrupt" not in logs

    resumed = snakemake(work, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    logs = "".join(p.read_text() for p in work.glob(f"{RESULTS}/logs/train/nc_limits/*.log"))
    assert "resuming" in logs
    # the same runs trained without interruption (only them: their run records)
    run_dirs = sorted((work / RESULTS / "runs/nc_limits").iterdir())
    targets = [f"{RESULTS}/runs/nc_limits/{d.name}/run.json" for d in run_dirs]
    reference = snakemake(runs["reference"], *targets, *args)
    assert reference.returncode == 0, reference.stderr[-3000:]
    for run_dir in run_dirs:
        assert_same_weights(run_dir, runs["reference"] / RESULTS / "runs/nc_limits" / run_dir.name)


# ------------------------------------------------------------ deleted and damaged files


@pytest.mark.slow
def test_a_deleted_run_record_is_rebuilt_by_a_plain_rerun(smoke_run, tmp_path):
    work = copy_of(smoke_run, tmp_path)
    before = pd.read_parquet(work / RESULTS / "tables/nc_limits.parquet")
    record = next((work / RESULTS / "runs/nc_limits").glob("resnet18-digits-s0-*/run.json"))
    record.unlink()
    result = snakemake(work, "--cores", "2", *SMOKE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert record.exists()
    after = pd.read_parquet(work / RESULTS / "tables/nc_limits.parquet")
    keys = ["experiment", "run", "step", "split", "metric", "probe_lr"]
    pd.testing.assert_series_equal(
        before.set_index(keys)["value"].sort_index(), after.set_index(keys)["value"].sort_index()
    )


@pytest.mark.slow
def test_appended_checkpoint_bytes_stop_with_the_file_and_the_fix(smoke_run, tmp_path):
    work = copy_of(smoke_run, tmp_path)
    run_dir = next((work / RESULTS / "runs/nc_limits").glob("resnet18-digits-s0-*"))
    with open(run_dir / "ckpt/step10.pt", "ab") as f:
        f.write(b"appended")
    # the smoke fixture kept its feature files (--notemp): remove them with the metrics, so
    # the features job, which loads the checkpoints, has to run again
    (work / RESULTS / f"metrics/nc_limits/{run_dir.name}.parquet").unlink()
    shutil.rmtree(work / RESULTS / f"features/nc_limits/{run_dir.name}")
    figures = digest(work / RESULTS / "figures")
    result = snakemake(work, "--cores", "1", *SMOKE)
    assert result.returncode != 0
    console = result.stdout + result.stderr
    assert "step10.pt changed since training wrote it" in console  # the job's own message
    assert f"delete the folder {RESULTS}/runs/nc_limits/{run_dir.name}" in console
    assert digest(work / RESULTS / "figures") == figures  # nothing else lost


@pytest.mark.slow
def test_a_truncated_data_file_is_reported_before_anything_reruns(smoke_run, tmp_path):
    work = copy_of(smoke_run, tmp_path)
    path = work / RESULTS / "data/digits/train.npz"
    path.write_bytes(path.read_bytes()[:1000])
    runs = digest(work / RESULTS / "runs")
    result = snakemake(work, "--cores", "1", *SMOKE)
    assert result.returncode != 0
    console = result.stdout + result.stderr
    assert f"{RESULTS}/data/digits/train.npz" in console and "truncated" in console
    assert f"delete the folder '{RESULTS}/data/digits' and rerun" in console
    assert "Traceback" not in console
    assert digest(work / RESULTS / "runs") == runs  # no downstream output deleted
    shutil.rmtree(work / RESULTS / "data/digits")  # the fix the message gives
    fixed = snakemake(work, "--cores", "1", *SMOKE)
    assert fixed.returncode == 0, fixed.stderr[-3000:]


# ---------------------------------------------------------------- overrides and presets


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "nothing_to_do"),
    [
        ("device=cpu", True),  # `auto` resolves to cpu here: nothing retrains
        ("data={root: some/other/folder}", True),  # digits and synth never read the root
        ("data={download: true}", True),  # likewise
        ("threads=2", True),  # an execution setting too
        ("nc_limits={seeds: [0, 1]}", False),  # integers from the map form: a second seed
    ],
)
def test_documented_config_forms_work(smoke_run, tmp_path, override, nothing_to_do):
    work = copy_of(smoke_run, tmp_path)
    result = snakemake(work, "-n", "--cores", "1", "--config", override, *SMOKE)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    output = result.stdout + result.stderr
    if nothing_to_do:
        assert "Nothing to be done" in output, output[-2000:]
    if override.startswith("nc_limits"):
        assert job_counts(result.stdout)["train"] == 2  # the seed-1 grid runs


def test_config_errors_are_one_readable_message(repo, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nc_limits: {seeds: [0, 1\n")
    check = subprocess.run(
        [sys.executable, "-m", "ncrepro", "check-config", str(repo / "config.yaml"), str(bad)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 2 and "is not valid YAML" in check.stderr
    assert "Traceback" not in check.stderr
    cell = subprocess.run(
        [sys.executable, "-m", "ncrepro", "audit", "x.csv", "--cell", "one-hot", "nc3_value"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert cell.returncode == 2 and "ROW is the 0-based row number" in cell.stderr
    assert "Traceback" not in cell.stderr


@pytest.mark.slow
def test_presets_keep_their_results_apart(smoke_run, tmp_path):
    """Another preset (here: smoke under another name) runs beside smoke without touching
    a single smoke file; smoke stays complete."""
    work = copy_of(smoke_run, tmp_path)
    smoke_files = digest(work / RESULTS)
    (work / "other.yaml").write_text(yaml.safe_dump({"preset": "smoke_copy", **ONLY_NC_LIMITS}))
    other = snakemake(work, "--cores", "2", "--configfile", "presets/smoke.yaml", "other.yaml")
    assert other.returncode == 0, other.stderr[-3000:]
    assert (work / "results/smoke_copy/figures/nc_limits/fig1.pdf").exists()
    assert digest(work / RESULTS) == smoke_files
    again = snakemake(work, "-n", *SMOKE)
    assert "Nothing to be done" in again.stdout + again.stderr
