"""Aggregation: per-run metric files + run records -> one tidy long table per study.

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


def aggregate_study(
    study: str, sheet: pd.DataFrame, metric_files: list[Path], runs_dir: Path
) -> pd.DataFrame:
    """Join every run's metric rows with the run sheet (one copy per experiment)."""
    frames = []
    for path in metric_files:
        frame = pd.read_parquet(path)
        frames.append(frame)
    metrics = pd.concat(frames, ignore_index=True)
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
    return table.sort_values(["experiment", "run", "step", "split", "metric"]).reset_index(
        drop=True
    )
