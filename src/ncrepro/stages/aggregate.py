"""Aggregation stage: per-run metric/probe files + run records -> one tidy long table per
study (results/tables/<study>.parquet).

Schema (DESIGN.md): study, experiment, run, dataset, arch, loss, seed, view, n_train,
step, epoch, split, metric, value, hyper-parameter columns, code_version, plus
`status` (completed / diverged / ...) and the metric conventions of each number.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

KEY_COLUMNS = [
    "study",
    "experiment",
    "run",
    "dataset",
    "arch",
    "loss",
    "seed",
    "view",
    "n_train",
    "step",
    "epoch",
    "split",
    "metric",
    "value",
]


def aggregate_study(sheet: pd.DataFrame, metric_files: list[Path], runs_dir: Path) -> pd.DataFrame:
    """Join every run's metric rows with the run sheet (one copy per experiment)."""
    metrics = pd.concat([pd.read_parquet(path) for path in metric_files], ignore_index=True)
    records = {}
    for run in sheet["run"].unique():
        record = json.loads((runs_dir / run / "run.json").read_text())
        records[run] = {
            "run": run,
            "n_train_data": record["n_train"],
            "status": record["status"],
            "final_step": record["final_step"],
            "code_version_train": record["code_version"],
        }
    run_info = pd.DataFrame(list(records.values()))
    table = sheet.merge(run_info, on="run", how="left").merge(metrics, on="run", how="inner")
    table["n_train"] = table["n_train"].where(table["n_train"] >= 0, table["n_train_data"])
    table["epoch"] = table["step"] * table["batch_size"] / table["n_train"]
    table = table.drop(columns=["n_train_data"])
    other = [c for c in table.columns if c not in KEY_COLUMNS]
    table = table[KEY_COLUMNS + other]
    # a stable sort on keys that identify a row (probes: one row per LR), so the row
    # order does not depend on the order the files were read in
    order = ["experiment", "run", "step", "split", "metric"]
    order += [c for c in ("probe", "probe_lr") if c in table]
    return table.sort_values(order, kind="stable").reset_index(drop=True)


def write_study_table(
    study: str,
    sheet: pd.DataFrame,
    metric_files: list[Path],
    runs_dir: Path,
    out: Path,
    *,
    code_version: str,
) -> pd.DataFrame:
    """The study table from `metric_files` (the metric and probe files of the sheet's
    runs, `ncrepro.stages.sheet.read_result_files`) and its provenance (inputs hashed)."""
    from ncrepro.atomic import write_parquet
    from ncrepro.provenance import write_provenance

    table = aggregate_study(sheet, metric_files, runs_dir)
    table["code_version"] = code_version
    write_parquet(out, table)
    write_provenance(
        out,
        inputs=metric_files,
        rows=table,
        runs_dir=runs_dir,
        caption=f"{study}: every metric of every checkpoint of every run",
        outputs=[out],
    )
    return table
