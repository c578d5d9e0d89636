"""Switching off an optional part of a study (an `enabled: false` below the study's own
switch) skips exactly the runs that need it; every other output is still made, and the
figures and claims of the part say that it is disabled (they do not crash on a join of
no runs, nor read as "not supported"). Smoke preset, one study at a time."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from pipeline import job_counts, snakemake, workflow_copy

from ncrepro.claims import NOT_TESTABLE
from ncrepro.stages.aggregate import KEY_COLUMNS
from ncrepro.stages.sheet import read_sheet
from ncrepro.studies import study_keys

RESULTS = "results/smoke"


def only(key: str, **block) -> dict:
    """Every other study off; `block` updates `key`'s config block."""
    return {**{k: {"enabled": False} for k in study_keys() if k != key}, key: block}


def run_with(tmp_path, override: dict, *args: str):
    """Snakemake in a fresh copy with the smoke preset plus `override` (targets first:
    --configfile takes every next word)."""
    work = workflow_copy(tmp_path)
    (work / "override.yaml").write_text(yaml.safe_dump(override))
    result = snakemake(
        work, *args, "--cores", "2", "--configfile", "presets/smoke.yaml", "override.yaml"
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return work, result


def provenance(work, path: str) -> dict:
    """The provenance record of an output (`path` under the results root, no suffix)."""
    return json.loads((work / RESULTS / f"{path}.provenance.json").read_text())


def figure_texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


@pytest.mark.slow
def test_nc_limits_without_train_size_and_transfer(tmp_path):
    """fig4 (train_size) and fig5 (transfer) off: one run left (fig1-3 share the digits
    cell here), fig1-3 drawn from it, fig4/fig5 say they are not drawn and why, and the
    claims table marks exactly their three claims as disabled."""
    override = only(
        "nc_limits",
        curves={"dataset": "digits", "arch": "resnet18"},
        grid={"datasets": ["digits"]},
        train_size={"enabled": False},
        transfer={"enabled": False},
    )
    work, result = run_with(tmp_path, {**override, "fuse_stages": True})
    counts = job_counts(result.stderr)  # a real run prints its job stats there
    assert counts["train"] == 1 and counts["nc_limits_figure"] == 5

    _key, _config, sheet = read_sheet(work / RESULTS / "sheets/nc_limits.json")
    assert set(sheet["experiment"]) == {"curves", "grid"} and sheet["run"].nunique() == 1
    run = sheet["run"].iloc[0]
    assert [p.name for p in (work / RESULTS / "runs/nc_limits").iterdir()] == [run]

    for fig in ("fig1", "fig2", "fig3"):
        record = provenance(work, f"figures/nc_limits/{fig}")
        assert record["rows"]["count"] > 0 and record["rows"]["runs"] == [run], fig
    for fig, section in (("fig4", "train_size"), ("fig5", "transfer")):
        record = provenance(work, f"figures/nc_limits/{fig}")
        assert (work / RESULTS / f"figures/nc_limits/{fig}.png").stat().st_size > 1000
        assert record["rows"]["count"] == 0 and record["runs"] == []
        switch = f"(nc_limits.{section}.enabled: false)"
        assert (
            f"experiment '{section}' is disabled in this configuration {switch}"
            in (record["caption"])
        )

    claims = pd.read_csv(work / RESULTS / "tables/nc_limits/claims.csv").set_index("claim_id")
    disabled = {
        "train_test_anticorrelated": "train_size",
        "train_collapse_worse_accuracy": "train_size",
        "collapsed_transfer_worse": "transfer",
    }
    for claim_id, section in disabled.items():
        row = claims.loc[claim_id]
        assert row["verdict"] == NOT_TESTABLE and row["n"] == 0 and pd.isna(row["value"])
        assert row["detail"] == (
            f"experiment '{section}' is disabled in this configuration "
            f"(nc_limits.{section}.enabled: false)"
        )
    others = claims.drop(index=list(disabled))
    assert len(others) == 4 and not others["detail"].str.contains("disabled").any()
    # the run's own claim is judged from its two checkpoints' variances
    assert claims.loc["train_collapse", "n"] == 1 and pd.notna(
        claims.loc["train_collapse", "value"]
    )
    assert (work / RESULTS / "tables/nc_limits/claims.md").read_text().count("disabled") == 3

    # the report keeps all five figures; the captions of fig4 and fig5 open with why
    report = snakemake(
        work, "--report", "report.html", "--configfile", "presets/smoke.yaml", "override.yaml"
    )
    assert report.returncode == 0, report.stderr[-3000:]
    html = (work / "report.html").read_text()
    assert html.count("Not drawn in this run") == 2
    for part in ("train_size", "transfer"):
        assert f"nc_limits.{part}.enabled: false" in html
    assert "Failure of test collapse" in html


def test_gc_transfer_disabled_pair_figure(tmp_path):
    """A gc_transfer pair off: its runs leave the sheet, its figure (no runs to join) is
    still made, in one job, and says the pair is disabled."""
    from ncrepro.config import load_config
    from ncrepro.studies import build_run_sheet, get, load, targets

    override = only("gc_transfer", pairs={"fig11": {"enabled": False}})
    work, result = run_with(tmp_path, override, f"{RESULTS}/figures/gc_transfer/fig11.pdf")
    assert job_counts(result.stderr) == {"gc_transfer_figure": 1, "total": 1}
    record = provenance(work, "figures/gc_transfer/fig11")
    assert record["rows"]["count"] == 0 and record["runs"] == []

    config = load_config(work / "config.yaml", work / "presets/smoke.yaml", work / "override.yaml")
    sheet, _specs = build_run_sheet(config)
    assert not sheet["experiment"].str.startswith("fig11_").any()
    assert "results/figures/gc_transfer/fig11.pdf" in targets(config)
    _key, block, _sheet = read_sheet(work / RESULTS / "sheets/gc_transfer.json")
    fig, rows, _caption = load(get("gc_transfer").figures["fig11"].render)(
        pd.DataFrame(columns=KEY_COLUMNS), block
    )
    assert rows.empty
    assert "disabled in this configuration (gc_transfer.pairs.fig11.enabled: false)" in (
        figure_texts(fig)
    )


def test_ib_supcon_without_zero_shot_plans(tmp_path):
    """ib_supcon's zero_shot off: no zero-shot pair is planned, every figure and table
    still is (their renderers handle the missing part: the claims say it is disabled)."""
    on, _ = run_with(tmp_path / "on", only("ib_supcon"), "-n")
    off, result = run_with(tmp_path / "off", only("ib_supcon", zero_shot={"enabled": False}), "-n")
    counts = job_counts(result.stdout)
    assert counts["ib_supcon_figure"] == 3 and counts["ib_supcon_table"] == 4
    _key, _config, sheet_on = read_sheet(on / RESULTS / "sheets/ib_supcon.json")
    _key, _config, sheet_off = read_sheet(off / RESULTS / "sheets/ib_supcon.json")
    assert "zero_shot" in set(sheet_on["experiment"])
    assert set(sheet_off["experiment"]) == {"in_domain"}
