"""Provenance helpers: hashes, code versions, environment facts, provenance files."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from ncrepro.atomic import write_json

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parents[1]
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


def _module_file(name: str) -> Path | None:
    """The source file of module `name` (dotted, under ncrepro), or None."""
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _imported_modules(path: Path, name: str) -> set[str]:
    """ncrepro modules that the file of module `name` imports anywhere (top level or inside
    functions); `from pkg import x` counts pkg and, where it is a module, pkg.x."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return {m for m in found if m == "ncrepro" or m.startswith("ncrepro.")}


def module_closure(*modules: str) -> list[Path]:
    """Source files of `modules` and of every ncrepro module they import, transitively,
    including the packages' __init__ files that importing them runs. Static (ast): a
    module named only in a string (the study registry's lazy references) is not followed."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            if name in modules:
                raise ValueError(f"no module {name!r} in the ncrepro package")
            continue  # `from pkg import function`: not a module
        seen[name] = path
        parents = [name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)]
        todo += parents + sorted(_imported_modules(path, name))
    return sorted(set(seen.values()))


def code_version(*modules: str) -> str:
    """Hash of the library source that `modules` (dotted names) run: the files of
    `module_closure`. Snakemake's code trigger does not see edits to an imported package,
    so every rule passes this as a param; an edit reruns exactly the rules that import
    the edited file."""
    digest = hashlib.sha256()
    for path in module_closure(*modules):
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
    write_json(
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
