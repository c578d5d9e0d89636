"""Study-specific stages through one generic entry: the table of a study without runs,
computed directly (`compute_table`), and the stages only one study has (`stages`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ncrepro.atomic import write_parquet
from ncrepro.provenance import write_provenance
from ncrepro.stages.sheet import read_sheet
from ncrepro.studies import get, load


def compute_study_table(sheet_path: Path, out: Path) -> pd.DataFrame:
    """The long table of a study without runs, from its `compute_table(block)`."""
    key, config, _sheet = read_sheet(sheet_path)
    study = get(key)
    if study.compute_table is None:
        raise ValueError(f"study {key} has runs: its table comes from the aggregate stage")
    table = load(study.compute_table)(config[key])
    write_parquet(out, table)
    write_provenance(
        out,
        inputs=[],
        rows=table,
        caption=f"{key}: the study table, computed directly ({study.compute_table})",
        outputs=[out],
        extra={"config": config[key]},
    )
    return table


def run_study_stage(name: str, sheet_path: Path, inputs: list[Path], out: Path) -> pd.DataFrame:
    """The study stage `name` (`Study.stages`): `fn(config, inputs) -> DataFrame`,
    written to `out` (Parquet) with provenance (every input hashed)."""
    key, config, _sheet = read_sheet(sheet_path)
    study = get(key)
    if name not in study.stages:
        raise KeyError(f"study {key} has no stage {name!r} ({', '.join(study.stages) or 'none'})")
    inputs = [Path(p) for p in inputs]
    table = load(study.stages[name])(config, inputs)
    write_parquet(out, table)
    write_provenance(
        out,
        inputs=inputs,
        rows=table,
        caption=f"{key}: study stage {name} ({study.stages[name]})",
        outputs=[out],
    )
    return table
