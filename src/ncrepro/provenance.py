"""Provenance helpers: hashes, code versions, environment facts, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parents[1]
FILE_MODE = 0o644  # mkstemp creates 0600 files; results are meant to be shared
TRACKED_PACKAGES = [
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "matplotlib",
    "seaborn",
    "snakemake",
]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def code_version(*modules: str) -> str:
    """Hash of the library source a stage depends on.

    `modules` are paths relative to the package ("train", "models", "config.py");
    a folder means every .py file under it. Snakemake's code trigger does not see
    edits to an imported package, so every rule passes this as a param.
    """
    digest = hashlib.sha256()
    for module in sorted(modules):
        target = PACKAGE_DIR / module
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for path in files:
            digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def git_state() -> dict:
    """Commit and dirty flag of the repository, or nulls outside a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return {"commit": commit, "dirty": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def slurm_state() -> dict:
    return {
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "node": os.environ.get("SLURMD_NODENAME") or os.environ.get("SLURM_NODELIST"),
    }


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_path(path: str | Path):
    """A temp path beside `path`; call `os.replace(tmp, path)` when written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    return Path(tmp)


ROW_KEYS = ["experiment", "run", "seed", "step", "split", "metric", "value"]


def write_provenance(
    out_path: Path,
    *,
    inputs: list[Path],
    rows,
    caption: str = "",
    runs_dir: Path | None = None,
    outputs: list[Path] = (),
    cells: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """`<out>.provenance.json` beside a figure or table: sha256 of the outputs and every
    input, the rows used (key columns), the runs they came from (run.json hash and
    checkpoints) and, for tables, the source rows of every cell. `ncrepro audit` reads it.
    """
    runs = sorted(rows["run"].unique()) if runs_dir is not None and "run" in rows else []
    run_entries = []
    for run in runs:
        run_json = Path(runs_dir) / run / "run.json"
        record = json.loads(run_json.read_text())
        run_entries.append(
            {
                "run": run,
                "run_json": str(run_json),
                "run_json_sha256": sha256_file(run_json),
                "status": record["status"],
                "checkpoints": record["checkpoints"],
            }
        )
    path = Path(out_path).with_suffix(".provenance.json")
    atomic_write_json(
        path,
        {
            "output": str(out_path),
            "caption": caption,
            "outputs": [{"path": str(p), "sha256": sha256_file(p)} for p in outputs],
            "inputs": [{"path": str(p), "sha256": sha256_file(p)} for p in inputs],
            "rows": {
                "count": int(len(rows)),
                "runs": runs,
                "metrics": sorted(rows["metric"].unique()) if "metric" in rows else [],
                "values": rows[[c for c in ROW_KEYS if c in rows]].to_dict("records"),
            },
            "runs": run_entries,
            **({"cells": cells} if cells is not None else {}),
            **(extra or {}),
        },
    )
    return path
