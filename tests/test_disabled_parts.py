"""Switching off an optional part of a study (an `enabled: false` below the study's own
switch) skips exactly the runs that need it; every other output is still made, and the
figures and claims of the part say that it is disabled (they do not crash on a join of
no runs, nor read as "not supported"). Smoke preset, one study at a time."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from pipeline import REPO, job_counts, snakemake, workflow_copy

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
    """The texts on the figure's axes, wrapped lines joined."""
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts).replace("\n", " ")


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


def renderer_config(tmp_path, key: str, override: dict) -> dict:
    """What `key`'s renderers see (`study_config`) under the smoke preset plus `override`."""
    from ncrepro.config import load_config
    from ncrepro.studies import study_config

    (tmp_path / "override.yaml").write_text(yaml.safe_dump(override))
    config = load_config(
        REPO / "config.yaml", REPO / "presets/smoke.yaml", tmp_path / "override.yaml"
    )
    return study_config(config, key)


ZERO_SHOT_OFF = (
    "experiment 'zero_shot' is disabled in this configuration (ib_supcon.zero_shot.enabled: false)"
)


def test_ib_supcon_zero_shot_off_says_so_in_fig4_and_tables(tmp_path):
    """zero_shot off: fig4's panels A and C and its caption, Table 3's and Table 1's notes
    and both zero-shot claims say it is disabled, by which key; with it on, none does."""
    from ncrepro.studies.ib_supcon import claims, figures, tables

    off = renderer_config(tmp_path, "ib_supcon", {"ib_supcon": {"zero_shot": {"enabled": False}}})
    on = renderer_config(tmp_path, "ib_supcon", {})
    empty = pd.DataFrame(columns=[*KEY_COLUMNS, "probe", "task"])

    fig, rows, caption = figures.fig4(empty, off)
    axes = fig.axes
    assert rows.empty
    for panel, ax in (("A", axes[0]), ("C", axes[2])):
        text = " ".join(t.get_text() for t in ax.texts).replace("\n", " ")
        assert text == f"{panel} is not drawn: {ZERO_SHOT_OFF}"
    assert not axes[1].texts  # B (in-domain) is not about the switch
    assert f"A and C are not drawn: {ZERO_SHOT_OFF}; their claims are not testable." in caption
    # on, but no zero-shot rows (e.g. a diverged run): A says that, nothing about a switch
    fig_on, _, caption_on = figures.fig4(empty, on)
    text_on = caption_on + figure_texts(fig_on)
    assert "disabled" not in text_on and "A is not drawn: the table has no zero-shot" in text_on

    note3 = tables.table3(empty, off).note
    assert note3.startswith(f"Not filled in this run (every cell): {ZERO_SHOT_OFF};")
    source = off["ib_supcon"]["zero_shot"]["source"]["paper"]
    assert tables.table1(empty, off).note.startswith(
        f"Not filled in this run (the zero-shot source column {source}): {ZERO_SHOT_OFF};"
    )
    assert "Not filled" not in tables.table3(empty, on).note + tables.table1(empty, on).note

    ids = {"zero_shot_needs_more_dims", "ib_scalings_equal_zero_shot"}
    rows = claims._zero_shot(empty, off)  # the zero-shot rows of the claims table
    assert {r["claim_id"] for r in rows} == ids
    assert all(r["verdict"] == NOT_TESTABLE and r["detail"] == ZERO_SHOT_OFF for r in rows)


def _sweep_table() -> pd.DataFrame:
    """A gc_transfer long table of one sweep, fig1's lr at three values: end GC and CDNV
    both rise with the LR (so its two claims are judged)."""
    rows = []
    for i, lr in enumerate((0.01, 0.05, 0.1)):
        for metric, probe, value in (("gc", "geometric", 1.0 + i), ("cdnv", None, 0.1 * (i + 1))):
            rows.append(
                {
                    "experiment": "fig1_lr",
                    "run": f"r{i}",
                    "pair": "fig1",
                    "dataset": "digits",
                    "sweep_value": lr,
                    "step": 10,
                    "metric": metric,
                    "split": "train",
                    "probe": probe,
                    "value": value,
                    "status": "completed",
                }
            )
    return pd.DataFrame(rows)


def test_gc_transfer_disabled_pair_claims(tmp_path):
    """fig11 off: its sweep claims are rows, not testable, with the switch as reason; the
    other rows are the same as with fig11 on (and without its runs)."""
    from ncrepro.studies.gc_transfer.claims import claims

    on = renderer_config(tmp_path, "gc_transfer", {})
    off = renderer_config(
        tmp_path, "gc_transfer", only("gc_transfer", pairs={"fig11": {"enabled": False}})
    )
    judged = claims(_sweep_table(), on).set_index("claim_id")
    frame = claims(_sweep_table(), off).set_index("claim_id")
    new = frame.loc[frame.index.difference(judged.index)]
    assert sorted(new.index) == ["gc_cdnv_fig11_penalty", "penalty_lowers_gc_fig11"]
    reason = (
        "pair 'fig11' is disabled in this configuration (gc_transfer.pairs.fig11.enabled: false)"
    )
    assert (new["verdict"] == NOT_TESTABLE).all() and (new["detail"] == reason).all()
    assert (new["n"] == 0).all() and new["value"].isna().all()
    pd.testing.assert_frame_equal(frame.loc[judged.index], judged)
    # fig1's lr sweep: rho(end GC, end CDNV) = +1 and rho(lr, end GC) = +1 (not < 0)
    assert judged.loc["gc_cdnv_fig1_lr", "value"] == 1.0
    assert judged.loc["lr_lowers_gc_fig1", "verdict"] == "not supported"


def test_gc_transfer_bound_pair_off(tmp_path):
    """fig1 off while `bound.pair` names it: the config is valid, fig3 is built in one job
    and says fig1 is disabled (no caption about its run); the claims on fig3's run, fig2's
    probe and fig1's Poincare constant give that reason."""
    from ncrepro.studies.gc_transfer.claims import claims

    override = only("gc_transfer", pairs={"fig1": {"enabled": False}})
    work, result = run_with(tmp_path, override, f"{RESULTS}/figures/gc_transfer/fig3.pdf")
    assert job_counts(result.stderr) == {"gc_transfer_figure": 1, "total": 1}
    record = provenance(work, "figures/gc_transfer/fig3")
    reason = "pair 'fig1' is disabled in this configuration (gc_transfer.pairs.fig1.enabled: false)"
    assert (
        record["caption"]
        == f"Figure 3 is not drawn: {reason}. Its claims are not testable in this run."
    )
    assert record["rows"]["count"] == 0 and record["runs"] == []

    config = renderer_config(tmp_path, "gc_transfer", override)
    assert config["gc_transfer"]["bound"]["pair"] == "fig1"
    frame = claims(_sweep_table().assign(experiment="fig4_lr", pair="fig4"), config)
    frame = frame.set_index("claim_id")
    fig3_run = ["bound_above_ncc_error", "bound_non_vacuous", "cdnv_below_geometric_collapse"]
    fig3_run += [f"sampled_gc_{e}" for e in ("batch", "entries", "outputs", "projections")]
    fig3_run += ["gc_cdnv_fig1_lr", "lr_lowers_gc_fig1"]
    assert (frame.loc[fig3_run, "detail"] == reason).all()
    assert frame.loc["gc_cdnv_fig4_lr", "value"] == 1.0  # the enabled pair is judged
