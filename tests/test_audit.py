"""`ncrepro audit`: verifies a fresh run, names a tampered file, lists a cell's sources."""

import shutil
import subprocess
import sys

import pytest


def audit(work, *args):
    return subprocess.run(
        [sys.executable, "-m", "ncrepro", "audit", *args], cwd=work, capture_output=True, text=True
    )


@pytest.fixture
def smoke_copy(smoke_run, tmp_path):
    """A private copy of the smoke results (tampering must not leak into other tests)."""
    work = tmp_path / "work"
    shutil.copytree(smoke_run / "results", work / "results")
    return work


@pytest.mark.slow
def test_audit_verifies_every_figure_and_table(smoke_run):
    targets = [f"results/smoke/figures/nc_limits/{f}.pdf" for f in ("fig1", "fig2", "fig3")]
    targets += [
        f"results/smoke/figures/class_encoding/{f}.pdf" for f in ("fig1", "transition", "encodings")
    ]
    targets += [
        "results/smoke/tables/nc_limits.parquet",
        "results/smoke/tables/class_encoding/encodings.csv",
    ]
    for target in targets:
        result = audit(smoke_run, target)
        assert result.returncode == 0, (target, result.stdout, result.stderr)
        assert "audit ok" in result.stdout and "MISMATCH" not in result.stdout
    fig3 = audit(smoke_run, "results/smoke/figures/nc_limits/fig3.pdf").stdout
    assert fig3.count("checkpoint ") == 6  # 2 runs x 3 checkpoints
    assert "data manifest results/smoke/data/digits/manifest.json" in fig3


@pytest.mark.slow
def test_audit_catches_a_tampered_checkpoint(smoke_copy):
    ckpt = next(
        (smoke_copy / "results/smoke/runs/nc_limits").glob("resnet18-synth10-*/ckpt/step10.pt")
    )
    with open(ckpt, "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = audit(smoke_copy, "results/smoke/figures/nc_limits/fig2.pdf")
    assert result.returncode == 1
    assert "MISMATCH checkpoint" in result.stdout
    assert str(ckpt.relative_to(smoke_copy)) in result.stderr


@pytest.mark.slow
def test_audit_catches_tampered_data_and_missing_provenance(smoke_copy):
    (smoke_copy / "results/smoke/data/digits/test.npz").write_bytes(b"not the data")
    result = audit(smoke_copy, "results/smoke/figures/nc_limits/fig3.pdf")
    assert result.returncode == 1 and "results/smoke/data/digits/test.npz" in result.stderr
    (smoke_copy / "results/smoke/figures/nc_limits/fig1.provenance.json").unlink()
    result = audit(smoke_copy, "results/smoke/figures/nc_limits/fig1.pdf")
    assert result.returncode == 2 and "has no provenance record" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_audit_cell_lists_sources(smoke_run):
    table = "results/smoke/tables/class_encoding/encodings.csv"
    result = audit(smoke_run, table, "--cell", "0", "nc3_prime_value")
    assert result.returncode == 0, result.stderr
    assert "metric=nc3_prime" in result.stdout and "encoding=one_hot" in result.stdout
    bad = audit(smoke_run, table, "--cell", "0", "no_such_column")
    assert bad.returncode == 2 and "columns:" in bad.stderr
