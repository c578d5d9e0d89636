"""`ncrepro audit` on the smoke run: every file a figure or table was made from is
re-hashed (its own outputs, its inputs recursively, each run's record, train index,
checkpoints, data manifest and prepared data); a changed, missing or unrecorded file
fails by name, a damaged record is one readable message."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ncrepro.provenance import sha256_file
from ncrepro.stages.sheet import read_sheet

RESULTS = "results/smoke"
GRID_RUN = f"{RESULTS}/runs/nc_limits/resnet18-digits-s0-*"  # a fig3 cell, digits


def audit(work, *args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "ncrepro", "audit", *args],
        cwd=cwd or work,
        capture_output=True,
        text=True,
    )


def verified(stdout: str) -> set[str]:
    """Paths of the `ok` lines (the path is each line's last word)."""
    return {line.split()[-1] for line in stdout.splitlines() if line.strip().startswith("ok ")}


def one(work: Path, pattern: str) -> str:
    """The one file matching `pattern`, relative to `work` (as provenance records it)."""
    matches = sorted(work.glob(pattern))
    assert matches, pattern
    return str(matches[0].relative_to(work))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def smoke_copy(smoke_run, tmp_path):
    """A private copy of the smoke results (tampering must not leak into other tests);
    without the feature files, logs and benchmarks, which no provenance names."""
    work = tmp_path / "work"
    skip = shutil.ignore_patterns("features", "logs", "benchmarks")
    shutil.copytree(smoke_run / "results", work / "results", ignore=skip)
    return work


def run_files(work: Path, study: str, runs) -> set[str]:
    """What the run records hold a hash of, listed from disk: run.json, train_index.npy,
    every checkpoint, and the data manifest and split files of the run's dataset."""
    files = set()
    for run in runs:
        run_dir = work / RESULTS / "runs" / study / run
        files |= {
            str((run_dir / name).relative_to(work)) for name in ("run.json", "train_index.npy")
        }
        files |= {str(p.relative_to(work)) for p in (run_dir / "ckpt").glob("*.pt")}
        data = Path(json.loads((run_dir / "run.json").read_text())["data"]["dir"])
        files |= {str(data / name) for name in ("manifest.json", "train.npz", "test.npz")}
    return files


def result_files(work: Path, study: str, runs) -> set[str]:
    files = set()
    for run in runs:
        files.add(f"{RESULTS}/metrics/{study}/{run}.parquet")
        probes = work / RESULTS / "probes" / study / run
        files |= {str(p.relative_to(work)) for p in probes.rglob("*.parquet")}
    return files


@pytest.mark.slow
def test_audit_verifies_every_file_of_every_figure_and_table(smoke_run):
    records = sorted(
        p
        for folder in ("figures", "tables")
        for p in (smoke_run / RESULTS / folder).rglob("*.provenance.json")
    )
    assert len(records) >= 20  # every study's figures, tables and study tables
    for record in records:
        result = audit(smoke_run, str(record.relative_to(smoke_run)))
        assert result.returncode == 0, (record, result.stdout[-2000:], result.stderr)
        assert "audit ok" in result.stdout
        assert not {"MISMATCH", "MISSING", "UNVERIFIED"} & set(result.stdout.split())

    # fig3 (grid): exactly its outputs, its runs' metric files and what their records hash
    _key, _config, sheet = read_sheet(smoke_run / RESULTS / "sheets/nc_limits.json")
    grid = sorted(sheet.loc[sheet["experiment"] == "grid", "run"].unique())
    fig3 = audit(smoke_run, f"{RESULTS}/figures/nc_limits/fig3.pdf").stdout
    expected = {f"{RESULTS}/figures/nc_limits/fig3.{ext}" for ext in ("pdf", "png")}
    expected |= result_files(smoke_run, "nc_limits", grid) | run_files(smoke_run, "nc_limits", grid)
    assert verified(fig3) == expected and f"audit ok: {len(expected)} files verified" in fig3
    assert fig3.count("ok train index ") == len(grid) == 2

    # the claims table: its CSV and Markdown, the study table and, through the study
    # table's own provenance, every metric and probe file and run file of the study
    claims = audit(smoke_run, f"{RESULTS}/tables/nc_limits/claims.csv").stdout
    runs = sorted(sheet["run"].unique())
    expected = {f"{RESULTS}/tables/nc_limits/claims.{ext}" for ext in ("csv", "md")}
    expected |= {f"{RESULTS}/tables/nc_limits.parquet"}
    expected |= result_files(smoke_run, "nc_limits", runs) | run_files(smoke_run, "nc_limits", runs)
    assert verified(claims) == expected
    assert any("/probes/" in path for path in expected)  # the transfer runs' probes


# (file audited, file damaged): every kind of file the audit walks through
TAMPERED = {
    "figure_pdf": ("figures/nc_limits/fig3.pdf", "figures/nc_limits/fig3.pdf"),
    "figure_png": ("figures/nc_limits/fig3.pdf", "figures/nc_limits/fig3.png"),
    "table_csv": ("tables/nc_limits/claims.csv", "tables/nc_limits/claims.csv"),
    "table_markdown": ("tables/nc_limits/claims.md", "tables/nc_limits/claims.md"),
    "study_table": ("tables/nc_limits/claims.csv", "tables/nc_limits.parquet"),
    "computed_study_table": ("figures/class_encoding/fig1.pdf", "tables/class_encoding.parquet"),
    "metric_parquet": ("figures/nc_limits/fig3.pdf", "metrics/nc_limits/resnet18-digits-s0-*"),
    "probe_parquet": ("figures/nc_limits/fig5.pdf", "probes/nc_limits/*/step*/finetune_lr*"),
    "linear_probe_parquet": ("figures/nc_limits/fig5.pdf", "probes/nc_limits/*/linear.parquet"),
    "run_record": ("figures/nc_limits/fig3.pdf", "runs/nc_limits/resnet18-digits-s0-*/run.json"),
    "train_index": (
        "figures/nc_limits/fig3.pdf",
        "runs/nc_limits/resnet18-digits-s0-*/train_index.npy",
    ),
    "checkpoint": ("figures/nc_limits/fig3.pdf", "runs/nc_limits/resnet18-digits-s0-*/ckpt/*.pt"),
    "data_manifest": ("figures/nc_limits/fig3.pdf", "data/digits/manifest.json"),
    "prepared_data": ("figures/nc_limits/fig3.pdf", "data/digits/train.npz"),
    "checkpoint_via_table": ("tables/nc_limits/claims.csv", "runs/nc_limits/mlp-*/ckpt/*.pt"),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", TAMPERED)
def test_a_tampered_file_fails_the_audit_by_name(smoke_copy, kind):
    target, pattern = TAMPERED[kind]
    damaged = one(smoke_copy, f"{RESULTS}/{pattern}")
    flip_byte(smoke_copy / damaged)
    result = audit(smoke_copy, f"{RESULTS}/{target}")
    assert result.returncode == 1, result.stdout[-2000:]
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert any(line.startswith("MISMATCH") and damaged in line for line in lines)
    # exactly that file, by the path its provenance records
    assert result.stderr.strip() == f"audit FAILED: 1 file(s) not verified: {damaged} (changed)"


@pytest.mark.slow
def test_missing_files_are_named(smoke_copy):
    ckpt = one(smoke_copy, f"{GRID_RUN}/ckpt/step10.pt")
    metric = one(smoke_copy, f"{RESULTS}/metrics/nc_limits/resnet18-synth10-s0-*.parquet")
    (smoke_copy / ckpt).unlink()
    (smoke_copy / metric).unlink()
    result = audit(smoke_copy, f"{RESULTS}/figures/nc_limits/fig3.pdf")
    assert result.returncode == 1
    assert (
        f"MISSING checkpoint {ckpt}" in result.stdout and f"MISSING input {metric}" in result.stdout
    )
    assert result.stderr.count("(missing)") == 2
    assert f"{ckpt} (missing)" in result.stderr and f"{metric} (missing)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_run_record_without_a_hash_is_unverified_not_ok(smoke_copy):
    """A run record that holds no sha256 for its train index (re-recorded consistently,
    so only the missing hash is wrong) fails: nothing to compare with is not a pass."""
    record_path = smoke_copy / one(smoke_copy, f"{GRID_RUN}/run.json")
    record = json.loads(record_path.read_text())
    del record["train_index_sha256"]
    record_path.write_text(json.dumps(record))
    prov_path = smoke_copy / RESULTS / "figures/nc_limits/fig3.provenance.json"
    prov = json.loads(prov_path.read_text())
    for entry in prov["runs"]:
        if entry["run"] == record["run"]:
            entry["run_json_sha256"] = sha256_file(record_path)
    prov_path.write_text(json.dumps(prov))
    result = audit(smoke_copy, f"{RESULTS}/figures/nc_limits/fig3.pdf")
    index = str(record_path.parent.relative_to(smoke_copy) / "train_index.npy")
    assert result.returncode == 1
    assert f"UNVERIFIED train index {index}" in result.stdout
    assert result.stderr.strip().endswith(f"{index} (no hash recorded)")


@pytest.mark.slow
def test_audit_from_another_folder_names_recorded_paths(smoke_copy, tmp_path):
    """An absolute path from anywhere: the recorded (relative) paths are found from
    where the provenance file lies, and failures still name them as recorded."""
    target = smoke_copy / RESULTS / "figures/nc_limits/fig3.pdf"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ok = audit(smoke_copy, str(target), cwd=elsewhere)
    assert ok.returncode == 0, ok.stdout[-2000:]
    index = one(smoke_copy, f"{GRID_RUN}/train_index.npy")
    flip_byte(smoke_copy / index)
    bad = audit(smoke_copy, str(target), cwd=elsewhere)
    assert bad.returncode == 1
    assert bad.stderr.strip() == f"audit FAILED: 1 file(s) not verified: {index} (changed)"


@pytest.mark.slow
def test_missing_or_damaged_provenance_is_one_readable_message(smoke_copy):
    fig1 = smoke_copy / RESULTS / "figures/nc_limits/fig1.provenance.json"
    fig1.write_text('{"outputs": [')
    result = audit(smoke_copy, f"{RESULTS}/figures/nc_limits/fig1.pdf")
    assert result.returncode == 2 and "cannot be read" in result.stderr
    assert "Traceback" not in result.stderr
    fig1.unlink()
    result = audit(smoke_copy, f"{RESULTS}/figures/nc_limits/fig1.pdf")
    assert result.returncode == 2 and "has no provenance record" in result.stderr
    assert "Traceback" not in result.stderr
    # a damaged provenance of an input (the study table's, under the claims table) is a
    # failure of the audit, named, not a crash
    nested = f"{RESULTS}/tables/nc_limits.provenance.json"
    (smoke_copy / nested).write_text("not json")
    result = audit(smoke_copy, f"{RESULTS}/tables/nc_limits/claims.csv")
    assert result.returncode == 1 and f"{nested} (unreadable)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_audit_cell_lists_sources(smoke_run):
    table = "results/smoke/tables/class_encoding/encodings.csv"
    result = audit(smoke_run, table, "--cell", "0", "nc3_prime_value")
    assert result.returncode == 0, result.stderr
    assert "metric=nc3_prime" in result.stdout and "encoding=one_hot" in result.stdout
    bad = audit(smoke_run, table, "--cell", "0", "no_such_column")
    assert bad.returncode == 2 and "columns:" in bad.stderr
