"""Numbers the papers report (published/*.csv) and published-vs-reproduced tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "published"
COLUMNS = ["paper_file", "table", "row", "column", "value", "unit"]


def load_published(study: str, directory: Path = PUBLISHED_DIR) -> pd.DataFrame:
    """The published numbers of one study (empty when the paper reports none)."""
    path = directory / f"{study}.csv"
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.read_csv(path, dtype={"row": str, "column": str})
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}")
    return frame[COLUMNS]


def side_by_side(reproduced: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Join reproduced values (columns table, row, column, value) with the published ones.

    Every cell of either side appears once, with `published`, `reproduced` and
    `difference` (reproduced − published; NaN where one side is missing).
    """
    keys = ["table", "row", "column"]
    left = published[[*keys, "value", "unit"]].rename(columns={"value": "published"})
    right = reproduced[[*keys, "value"]].rename(columns={"value": "reproduced"})
    merged = left.merge(right, on=keys, how="outer")
    merged["difference"] = merged["reproduced"] - merged["published"]
    return merged.sort_values(keys).reset_index(drop=True)
