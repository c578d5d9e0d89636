"""A training job killed with SIGTERM (as SLURM does) saves its state; the rerun resumes
and ends bit-identical to an uninterrupted run."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from ncrepro.config import load_config
from ncrepro.data import prepare
from ncrepro.runspec import run_id
from ncrepro.studies.nc_limits.runs import run_spec


def train_cmd(spec, run, data, out, scratch):
    return [
        sys.executable,
        "-m",
        "ncrepro",
        "train",
        "--spec",
        json.dumps(spec),
        "--run",
        run,
        "--data",
        str(data),
        "--out",
        str(out),
        "--scratch",
        str(scratch),
        "--device",
        "cpu",
        "--threads",
        "1",
    ]


@pytest.mark.slow
def test_sigterm_then_rerun_is_identical(tmp_path, repo):
    config = load_config(repo / "config.yaml", repo / "presets/smoke.yaml")
    config["nc_limits"]["training"].update(
        steps=400, checkpoints={"schedule": "linear", "every": 20}, log_every=20
    )
    spec = run_spec(config, "digits", "resnet18", 0)
    run = run_id(spec)
    data = tmp_path / "data"
    prepare("digits", config["datasets"]["digits"]["params"], "data", False, data)

    reference = subprocess.run(
        train_cmd(spec, run, data, tmp_path / "a", tmp_path / "sa"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr

    job = subprocess.Popen(
        train_cmd(spec, run, data, tmp_path / "b", tmp_path / "sb"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (tmp_path / "sb/resume.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 143, err
    assert "interrupted" in err and (tmp_path / "sb/resume.pt").exists()
    assert not (tmp_path / "b/run.json").exists()

    rerun = subprocess.run(
        train_cmd(spec, run, data, tmp_path / "b", tmp_path / "sb"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stdout
    a = json.loads((tmp_path / "a/run.json").read_text())
    b = json.loads((tmp_path / "b/run.json").read_text())
    assert [c["step"] for c in a["checkpoints"]] == [c["step"] for c in b["checkpoints"]]
    for ca, cb in zip(a["checkpoints"], b["checkpoints"], strict=True):
        wa = torch.load(tmp_path / "a" / ca["file"], weights_only=True)["model"]
        wb = torch.load(tmp_path / "b" / cb["file"], weights_only=True)["model"]
        assert all(torch.equal(wa[k], wb[k]) for k in wa), ca["step"]
