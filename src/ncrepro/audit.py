"""`ncrepro audit FILE`: walk a figure's or table's provenance back to data and checkpoints.

Every file on the way is re-hashed and compared with the sha256 recorded when it was
written: the figure/table itself, its inputs (metric files, study tables, recursively
through their own provenance), each run's run.json, checkpoints and data manifest,
and the prepared data files the manifest lists. A mismatch is reported by path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ncrepro.provenance import sha256_file


class AuditError(ValueError):
    """The file has no provenance, or a requested cell does not exist."""


@dataclass
class Audit:
    lines: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    checked: int = 0
    seen: set = field(default_factory=set)

    def check(self, path: Path, expected: str | None, depth: int, label: str = "") -> bool:
        indent = "  " * depth
        name = f"{label}{path}"
        if expected is None:
            self.lines.append(f"{indent}? {name} (no hash recorded)")
            return True
        if not path.exists():
            self.mismatches.append(str(path))
            self.lines.append(f"{indent}MISSING {name}")
            return False
        self.checked += 1
        actual = sha256_file(path)
        if actual != expected:
            self.mismatches.append(str(path))
            self.lines.append(
                f"{indent}MISMATCH {name} (recorded {expected[:12]}, now {actual[:12]})"
            )
            return False
        self.lines.append(f"{indent}ok {name}")
        return True


def provenance_file(path: Path) -> Path:
    candidate = path.with_suffix(".provenance.json")
    if path.name.endswith(".provenance.json"):
        return path
    if not candidate.exists():
        raise AuditError(f"{path} has no provenance record ({candidate} not found)")
    return candidate


def _audit_data(manifest_path: Path, manifest_sha: str | None, audit: Audit, depth: int):
    if manifest_path in audit.seen:
        audit.lines.append(f"{'  ' * depth}(data {manifest_path.parent} checked above)")
        return
    audit.seen.add(manifest_path)
    if not audit.check(manifest_path, manifest_sha, depth, "data manifest "):
        return
    manifest = json.loads(manifest_path.read_text())
    for split in manifest["splits"].values():
        audit.check(manifest_path.parent / split["file"], split["sha256"], depth + 1)


def _audit_run(entry: dict, audit: Audit, depth: int) -> None:
    run_json = Path(entry["run_json"])
    audit.lines.append(f"{'  ' * depth}run {entry['run']} ({entry['status']})")
    if not audit.check(run_json, entry.get("run_json_sha256"), depth + 1):
        return
    record = json.loads(run_json.read_text())
    for ckpt in record["checkpoints"]:
        audit.check(run_json.parent / ckpt["file"], ckpt["sha256"], depth + 1, "checkpoint ")
    data = record.get("data")
    if data:
        _audit_data(Path(data["manifest"]), data["manifest_sha256"], audit, depth + 1)


def _audit_file(path: Path, audit: Audit, depth: int) -> None:
    prov_path = provenance_file(path)
    prov = json.loads(prov_path.read_text())
    audit.lines.append(f"{'  ' * depth}{path}  [provenance: {prov_path}]")
    for output in prov.get("outputs", []):
        audit.check(Path(output["path"]), output["sha256"], depth + 1, "output ")
    for item in prov.get("inputs", []):
        item_path = Path(item["path"])
        audit.check(item_path, item["sha256"], depth + 1, "input ")
        if item_path.with_suffix(".provenance.json").exists() and item_path not in audit.seen:
            audit.seen.add(item_path)
            _audit_file(item_path, audit, depth + 2)
    for run in prov.get("runs", []):
        if run["run"] in audit.seen:
            continue
        audit.seen.add(run["run"])
        _audit_run(run, audit, depth + 1)


def audit(path: str | Path) -> Audit:
    result = Audit()
    _audit_file(Path(path), result, 0)
    return result


def cell_sources(path: str | Path, row: int, column: str) -> list[dict]:
    """The raw rows (per seed / per solve) that one table cell aggregates."""
    prov = json.loads(provenance_file(Path(path)).read_text())
    cells = prov.get("cells")
    if cells is None:
        raise AuditError(f"{path} records no per-cell sources (not a table?)")
    key = f"{row}|{column}"
    if key not in cells:
        columns = sorted({k.split("|", 1)[1] for k in cells})
        raise AuditError(f"no cell row {row}, column {column!r} in {path}; columns: {columns}")
    return cells[key]
