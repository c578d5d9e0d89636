"""The run sheet file of a study, results/sheets/<study>.json: the study's part of the
config and its run sheet. Stages whose input grows with the grid (aggregate, figures,
tables) read it instead of a command-line argument (Linux caps one at 128 KiB)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def sheet_document(
    study: str, config: dict, sheet: pd.DataFrame, files: dict[str, list[str]]
) -> dict:
    """What the sheet file holds: {"study", "config", "runs": [sheet rows], "files": {run:
    [its result files (metric, probe), relative to the results root]}}. Aggregation reads
    exactly these files: a file left over from other settings is never read."""
    rows = sheet[sheet["study"] == study].dropna(axis=1, how="all").to_dict("records")
    return {"study": study, "config": config, "runs": rows, "files": files}


def sheet_text(document: dict) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def read_sheet(path: str | Path) -> tuple[str, dict, pd.DataFrame]:
    """(study, config, sheet) from a sheet file."""
    document = json.loads(Path(path).read_text())
    return document["study"], document["config"], pd.DataFrame(document["runs"])


def read_result_files(path: str | Path, results: str | Path, runs) -> list[Path]:
    """The result files of `runs` listed in a sheet file, under `results`."""
    files = json.loads(Path(path).read_text())["files"]
    return [Path(results) / name for run in sorted(set(runs)) for name in files[run]]
