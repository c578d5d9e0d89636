"""`ncrepro audit FILE`: walk a figure's or table's provenance back to data and checkpoints.

Every file on the way is re-hashed and compared with the sha256 recorded when it was
written: the figure/table itself and the other files its job wrote, its inputs (metric
and probe files, study tables, recursively through their own provenance), and every
hash the run records (run.json) hold: the run record itself, train_index.npy, the
checkpoints, the data manifest and the prepared data files the manifest lists. A file
that changed, is missing or has no recorded hash is a failure, named by the path its
provenance records (relative to the folder the workflow ran in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ncrepro.provenance import sha256_file

PROVENANCE_SUFFIX = ".provenance.json"


class AuditError(ValueError):
    """The file has no (readable) provenance, or a requested cell does not exist."""


@dataclass
class Audit:
    root: Path = Path(".")  # the folder the recorded (relative) paths start from
    lines: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (recorded path, why)
    verified: set = field(default_factory=set)  # recorded paths whose hash matched
    seen: set = field(default_factory=set)

    @property
    def checked(self) -> int:
        return len(self.verified)

    def path(self, recorded: str | Path) -> Path:
        return self.root / recorded  # an absolute recorded path stays as it is

    def fail(self, recorded, why: str, depth: int, line: str) -> bool:
        if str(recorded) not in {path for path, _ in self.failures}:  # e.g. input and output
            self.failures.append((str(recorded), why))
        self.lines.append(f"{'  ' * depth}{line}")
        return False

    def check(self, recorded: str | Path, expected: str | None, depth: int, label="") -> bool:
        name = f"{label}{recorded}"
        path = self.path(recorded)
        if not path.is_file():
            return self.fail(recorded, "missing", depth, f"MISSING {name}")
        if not expected:  # nothing to compare with: unverified is not ok
            return self.fail(recorded, "no hash recorded", depth, f"UNVERIFIED {name}")
        actual = sha256_file(path)
        if actual != expected:
            line = f"MISMATCH {name} (recorded {expected[:12]}, now {actual[:12]})"
            return self.fail(recorded, "changed", depth, line)
        self.verified.add(str(recorded))
        self.lines.append(f"{'  ' * depth}ok {name}")
        return True


def provenance_file(path: Path) -> Path:
    if path.name.endswith(PROVENANCE_SUFFIX):
        return path
    candidate = path.with_suffix(PROVENANCE_SUFFIX)
    if not candidate.exists():
        raise AuditError(f"{path} has no provenance record ({candidate} not found)")
    return candidate


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AuditError(f"{what} {path} cannot be read ({exc})") from None


def _root(given: Path, prov: dict) -> Path:
    """The folder the provenance's relative paths start from: where the workflow ran.
    Found from where the provenance file is now, so the audit runs from any folder."""
    recorded = prov.get("output")
    if not recorded or Path(recorded).is_absolute():
        return Path(".")
    recorded = Path(recorded).with_suffix(PROVENANCE_SUFFIX)
    here = given.resolve()
    if here.parts[-len(recorded.parts) :] != recorded.parts:
        return Path(".")
    root = here.parents[len(recorded.parts) - 1]
    return Path(".") if root == Path.cwd().resolve() else root


def _audit_data(manifest: str, manifest_sha: str | None, audit: Audit, depth: int) -> None:
    if manifest in audit.seen:
        audit.lines.append(f"{'  ' * depth}(data {Path(manifest).parent} checked above)")
        return
    audit.seen.add(manifest)
    if not audit.check(manifest, manifest_sha, depth, "data manifest "):
        return
    record = _read_json(audit.path(manifest), "data manifest")
    for split in record["splits"].values():
        split_file = Path(manifest).parent / split["file"]
        audit.check(split_file, split.get("sha256"), depth + 1, "prepared data ")


def _audit_run(entry: dict, audit: Audit, depth: int) -> None:
    """The run record and every hash it holds."""
    run_json = entry["run_json"]
    audit.lines.append(f"{'  ' * depth}run {entry['run']} ({entry['status']})")
    if not audit.check(run_json, entry.get("run_json_sha256"), depth + 1, "run record "):
        return
    record = _read_json(audit.path(run_json), "run record")
    run_dir = Path(run_json).parent
    index = run_dir / "train_index.npy"
    audit.check(index, record.get("train_index_sha256"), depth + 1, "train index ")
    for ckpt in record.get("checkpoints", []):
        audit.check(run_dir / ckpt["file"], ckpt.get("sha256"), depth + 1, "checkpoint ")
    data = record.get("data")
    if not data:
        audit.fail(run_json, "no data manifest recorded", depth + 1, "UNVERIFIED data (none)")
        return
    _audit_data(data["manifest"], data.get("manifest_sha256"), audit, depth + 1)


def _audit_file(prov_path: Path, prov: dict, audit: Audit, depth: int) -> None:
    audit.lines.append(f"{'  ' * depth}{prov.get('output', prov_path)}  [provenance: {prov_path}]")
    for output in prov.get("outputs", []):
        audit.check(output["path"], output.get("sha256"), depth + 1, "output ")
    for item in prov.get("inputs", []):
        recorded = item["path"]
        audit.check(recorded, item.get("sha256"), depth + 1, "input ")
        nested = Path(recorded).with_suffix(PROVENANCE_SUFFIX)
        if recorded in audit.seen or not audit.path(nested).exists():
            continue  # metric and probe files have no provenance of their own
        audit.seen.add(recorded)
        try:
            nested_prov = _read_json(audit.path(nested), "provenance record")
        except AuditError as exc:
            audit.fail(nested, "unreadable", depth + 2, f"UNREADABLE {exc}")
            continue
        _audit_file(nested, nested_prov, audit, depth + 2)
    for run in prov.get("runs", []):
        if run["run"] in audit.seen:
            continue
        audit.seen.add(run["run"])
        _audit_run(run, audit, depth + 1)


def audit(path: str | Path) -> Audit:
    """Verify `path` (a figure, table or study table, or its .provenance.json) and
    everything its provenance names; the result lists each check and every failure."""
    path = Path(path)
    prov_path = provenance_file(path)
    prov = _read_json(prov_path, "provenance record")
    result = Audit(root=_root(prov_path, prov))
    _audit_file(prov_path, prov, result, 0)
    if path != prov_path:  # the file asked about is among the hashed outputs
        outputs = {result.path(o["path"]).resolve() for o in prov.get("outputs", [])}
        if path.resolve() not in outputs:
            result.fail(path, "no hash recorded", 1, f"UNVERIFIED {path} (not in its provenance)")
    return result


def cell_sources(path: str | Path, row: int, column: str) -> list[dict]:
    """The raw rows (per seed / per solve) that one table cell aggregates."""
    prov = _read_json(provenance_file(Path(path)), "provenance record")
    cells = prov.get("cells")
    if cells is None:
        raise AuditError(f"{path} records no per-cell sources (not a table?)")
    key = f"{row}|{column}"
    if key not in cells:
        columns = sorted({k.split("|", 1)[1] for k in cells})
        raise AuditError(f"no cell row {row}, column {column!r} in {path}; columns: {columns}")
    return cells[key]
