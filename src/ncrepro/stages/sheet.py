"""The run sheet file of a study, results/sheets/<study>.json: the study's part of the
config and its run sheet. Stages whose input grows with the grid (aggregate, figures,
tables) read it instead of a command-line argument (Linux caps one at 128 KiB)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def sheet_document(study: str, config: dict, sheet: pd.DataFrame) -> dict:
    """What the sheet file holds: {"study", "config", "runs": [sheet rows]}."""
    rows = sheet[sheet["study"] == study].dropna(axis=1, how="all").to_dict("records")
    return {"study": study, "config": config, "runs": rows}


def sheet_text(document: dict) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def read_sheet(path: str | Path) -> tuple[str, dict, pd.DataFrame]:
    """(study, config, sheet) from a sheet file."""
    document = json.loads(Path(path).read_text())
    return document["study"], document["config"], pd.DataFrame(document["runs"])
