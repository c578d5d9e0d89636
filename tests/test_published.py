"""published/*.csv: well-formed, and joined with reproduced numbers side by side."""

import numpy as np
import pandas as pd
import pytest

from ncrepro.published import COLUMNS, load_published, side_by_side


def test_published_files_are_well_formed(repo):
    for path in (repo / "published").glob("*.csv"):
        frame = pd.read_csv(path)
        assert list(frame.columns) == COLUMNS, path
        # finite numbers; signed (LPC Table 4 has negative log-likelihood scores)
        assert frame["value"].notna().all() and np.isfinite(frame["value"]).all()
        assert frame["paper_file"].str.fullmatch(r"\d{3}_[0-9a-f]{16}\.txt").all(), path
        assert not frame.duplicated(["table", "row", "column"]).any(), path


def test_ib_supcon_numbers():
    published = load_published("ib_supcon")
    table1 = published[published["table"] == "Table 1"].set_index(["row", "column"])["value"]
    assert table1[("model 1", "CIFAR-10")] == 95.4 and table1[("both", "CIFAR-100")] == 69.2
    assert len(published) == 18
    assert load_published("nc_limits").empty


def test_lpc_table4_numbers():
    """Table 4 of the LPC paper, one row per number: 2 datasets x 5 models x 7 columns."""
    published = load_published("lpc")
    assert len(published) == 70 and set(published["table"]) == {"Table 4"}
    cells = published.set_index(["row", "column"])["value"]
    assert cells[("CIFAR-10 LPC", "score")] == 0.181
    assert cells[("CIFAR-10 LPC", "min peak distance")] == 11.468
    assert cells[("CIFAR-100 LinPen", "score std")] == 0.0
    assert cells[("CIFAR-100 LPC-Narrow", "peak distance")] == 44.379


def test_side_by_side():
    published = load_published("ib_supcon")
    reproduced = pd.DataFrame(
        [
            {"table": "Table 2", "row": "raw (2048D)", "column": "CIFAR-10", "value": 94.9},
            {"table": "Table 9", "row": "extra", "column": "x", "value": 1.0},
        ]
    )
    merged = side_by_side(reproduced, published)
    row = merged[
        (merged["table"] == "Table 2")
        & (merged["row"] == "raw (2048D)")
        & (merged["column"] == "CIFAR-10")
    ].iloc[0]
    assert row["published"] == 95.9 and row["reproduced"] == 94.9
    assert row["difference"] == pytest.approx(-1.0)
    assert len(merged) == 19  # every published cell plus the unmatched reproduced one
    assert merged["reproduced"].notna().sum() == 2
