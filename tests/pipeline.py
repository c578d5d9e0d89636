"""Helpers to run the workflow in an isolated copy of the repository."""

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = [
    "Snakefile",
    "config.yaml",
    "presets",
    "profiles",
    "workflow",
    "envs",
    "src",
    "slurm",
    "published",
]


def workflow_copy(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy(source, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Snakemake in `workdir`; its jobs import the library of that copy (PYTHONPATH comes
    before the editable install), so a test can add or edit library files there."""
    env = {**os.environ, "PYTHONPATH": str(Path(workdir).resolve() / "src")}
    return subprocess.run(
        ["snakemake", *args], cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env
    )


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table (job, count) from a dry run."""
    counts, in_table = {}, False
    for line in dry_run_output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table:
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
            elif parts and not set(line.replace(" ", "")) <= {"-"}:
                break
    return counts


def params_changed_outputs(dry_run_output: str) -> set[str]:
    """First output of every job a dry run plans because its params changed (the code
    version is a param). Read from the dry run's `reason:` lines: Snakemake 9.27's
    `--list-changes params` also lists the last output of every unchanged job."""
    changed, output = set(), None
    for line in dry_run_output.splitlines():
        text = line.strip()
        if text.startswith("output:"):
            output = text.removeprefix("output:").split(",")[0].strip()
        elif text.startswith("reason:") and "Params have changed" in text:
            changed.add(output)
    return changed
