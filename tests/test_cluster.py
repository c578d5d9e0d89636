"""The smoke preset on a real single-node SLURM cluster, through `--profile slurm`.

Needs root plus Debian's slurm-wlm and munge (`.ci/run` installs them); skips otherwise.
"""

import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline import job_counts, snakemake, workflow_copy
from slurm_cluster import slurm_cluster

from ncrepro.studies import study_keys

GPU_RULES = {"train", "features", "finetune", "probe"}
CPU_RULES = {"prepare_data", "metrics", "class_encoding_solve"}
LOCAL_RULES = {
    "aggregate",
    "nc_limits_figure",
    "nc_limits_table",
    "class_encoding_figure",
    "class_encoding_table",
    "all",
}
# the counts and rules below describe these studies; the others are switched off here
COVERED = ("nc_limits", "class_encoding")
ONLY_COVERED = "covered_only.yaml"  # written into the copy by `_copy`
SMOKE = ("--configfile", "presets/smoke.yaml", ONLY_COVERED)  # last: takes every next word
RUN_TIMEOUT = 900  # seconds: catches a hung run (e.g. sacct status checks), tolerates a busy host
# a metric value is identified by (run, step, split, metric), within an experiment and view
# where the table has them (a run shared by curves and grid appears once in each)
KEYS = ["run", "step", "split", "metric"]
OPTIONAL_KEYS = ["experiment", "view", "probe", "probe_lr"]  # probes: one row per LR


@pytest.fixture
def cluster():
    with slurm_cluster() as running:
        yield running


def _copy(tmp_path: Path) -> Path:
    """A workflow copy whose smoke run has only the COVERED studies on."""
    work = workflow_copy(tmp_path)
    off = {key: {"enabled": False} for key in study_keys() if key not in COVERED}
    (work / ONLY_COVERED).write_text(yaml.safe_dump(off))
    return work


def _rule_of(comment: str) -> str:
    """The plugin submits with `--comment rule_<name>[_wildcards_<...>]`."""
    match = re.fullmatch(r"rule_(.+?)(_wildcards_.*)?", comment)
    assert match, comment
    return match.group(1)


def _slurm_log_ids(work: Path) -> dict[str, str]:
    """SLURM job id -> rule, from .snakemake/slurm_logs/rule_<name>/<wildcards>/<id>.log."""
    ids = {}
    for log in (work / ".snakemake" / "slurm_logs").rglob("*.log"):
        rule_dir = next(p for p in log.relative_to(work).parts if p.startswith("rule_"))
        ids[log.stem] = rule_dir.removeprefix("rule_")
    return ids


def _table(work: Path) -> pd.DataFrame:
    table = pd.read_parquet(work / "results/smoke/tables/nc_limits.parquet")
    keys = [k for k in OPTIONAL_KEYS if k in table.columns] + KEYS
    assert not table.duplicated(keys).any()
    return table.set_index(keys)["value"].sort_index()


@pytest.mark.cluster
def test_smoke_preset_on_slurm_matches_local_run(smoke_run, cluster, tmp_path):
    work = _copy(tmp_path)

    dry = snakemake(work, "-n", "--cores", "all", "--profile", "slurm", *SMOKE)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = job_counts(dry.stdout)
    assert set(counts) - {"total"} == GPU_RULES | CPU_RULES | LOCAL_RULES, counts
    remote = {rule: n for rule, n in counts.items() if rule in GPU_RULES | CPU_RULES}
    # 2 grid runs + 2 fig4 subset runs + 1 fig5 pretraining (2 checkpoints x 2 LRs fine-tuned)
    assert remote == {
        "prepare_data": 2,
        "train": 5,
        "features": 5,
        "metrics": 5,
        "finetune": 4,
        "probe": 1,
        "class_encoding_solve": 1,
    }

    # (a) the run finishes, exit 0, without hanging. The plugin checks job states 40 s after
    # a submission by default (then +10 s per check that finds nothing finished); starting
    # at 1 s keeps this chain of short jobs quick (squeue is still used: MinJobAge=600 is
    # above the plugin's 3 x 1 s threshold for falling back to sacct, which would hang).
    command = [
        "snakemake",
        "--cores",
        "all",
        "--profile",
        "slurm",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-keep-successful-logs",  # the read-back below lists them
        *SMOKE,
    ]
    start = time.perf_counter()
    try:
        result = subprocess.run(
            command,
            cwd=work,
            env=cluster.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
    except subprocess.TimeoutExpired as hung:
        squeue = cluster.run("squeue", "--states=all", check=False)
        pytest.fail(
            f"snakemake --profile slurm still running after {RUN_TIMEOUT} s\n{squeue}\n"
            f"{(hung.stderr or b'')[-3000:]!r}\n{cluster.log_tails()}"
        )
    elapsed = time.perf_counter() - start
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:] + "\n" + cluster.log_tails()
    print(f"cluster run: {elapsed:.0f} s")

    # (b) every non-local job went through sbatch, exactly once (no retries): the ids
    # slurmctld knows, the plugin's per-job log files and Snakemake's log agree.
    jobs = {job["JobId"]: job for job in cluster.jobs()}
    assert len({job["JobName"] for job in jobs.values()}) == 1  # the run's uuid
    rules = {job_id: _rule_of(job["Comment"]) for job_id, job in jobs.items()}
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    assert set(jobs) == submitted == set(_slurm_log_ids(work)), (jobs.keys(), submitted)
    assert rules == _slurm_log_ids(work)
    per_rule = {rule: list(rules.values()).count(rule) for rule in set(rules.values())}
    assert per_rule == remote
    for job_id, job in jobs.items():
        assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), (job_id, job)
        assert job["NodeList"] == cluster.host
    for job_id in sorted(jobs, key=int):  # shown with -s / on failure
        times = " ".join(jobs[job_id][t][11:] for t in ("SubmitTime", "StartTime", "EndTime"))
        print(f"SLURM job {job_id:>3} {rules[job_id]:<13} submit/start/end {times}")
    for rule in LOCAL_RULES - {"all"}:
        assert re.search(rf"^localrule {rule}:", log, re.M), rule

    # (c) GPU rules asked SLURM for one GPU and CPU rules for none, as slurmctld recorded
    # it: the plugin's `--gpus=1` shows in `scontrol show job` as TresPerJob=gres:gpu:1
    # (22.05; gres/gpu:1 in later releases). The node has a single (fake) GPU.
    for job_id, rule in rules.items():
        tres = {key: value for key, value in jobs[job_id].items() if key.startswith("Tres")}
        if rule in GPU_RULES:
            assert re.fullmatch(r"gres[:/]gpu:1", tres.get("TresPerJob", "")), (rule, tres)
        else:
            assert not any("gpu" in value for value in tres.values()), (rule, tres)

    # (d) the same numbers as the local run of the preset (CPU training is deterministic)
    on_slurm, local = _table(work), _table(smoke_run)
    assert on_slurm.index.equals(local.index)
    assert np.allclose(on_slurm, local, rtol=1e-9, atol=0, equal_nan=True), pd.concat(
        {"slurm": on_slurm, "local": local}, axis=1
    )[~np.isclose(on_slurm, local, rtol=1e-9, atol=0, equal_nan=True)]
