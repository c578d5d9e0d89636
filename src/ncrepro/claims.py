"""Claims tables: each claim of a paper, the statistic this run computed for it, and a verdict.

A study's ``claims(table, config)`` returns one row per claim with the columns ``COLUMNS``:

``claim_id``   short slug (lower case, digits, ``_``), unique within the study
``claim``      the paper's claim in one sentence
``paper_ref``  where the paper makes it (section / figure / theorem)
``statistic``  what exactly is computed, in words, with its convention
``value``      the statistic (float; NaN when it could not be computed)
``criterion``  the rule that turns the value into a verdict
``verdict``    one of ``VERDICTS``
``n``          number of values / runs the statistic uses
``detail``     short text: per-dataset values, the reason a claim is not testable, ...

A study declares each claim once as a ``Claim`` (the fixed text) and turns it into a row with
``Claim.judged`` (a rule decided pass / fail) or ``Claim.untestable`` (the data are absent);
``claims_frame`` assembles and validates the rows; ``note`` is the text the rendered table
shows above it; ``disabled_reason`` says why a switched-off part of a study has no rows (its
claims' detail, its figures' and tables' captions). Nothing here knows about any study.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

__all__ = [
    "SUPPORTED",
    "NOT_SUPPORTED",
    "NOT_TESTABLE",
    "VERDICTS",
    "COLUMNS",
    "Claim",
    "claims_frame",
    "check_claims",
    "note",
    "fmt",
    "disabled_reason",
]

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_TESTABLE = "not testable at this scale"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE)

COLUMNS = [
    "claim_id",
    "claim",
    "paper_ref",
    "statistic",
    "value",
    "criterion",
    "verdict",
    "n",
    "detail",
]
_TEXT_COLUMNS = ["claim_id", "claim", "paper_ref", "statistic", "criterion", "verdict", "detail"]
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass(frozen=True)
class Claim:
    """The fixed text of one claim; ``judged`` / ``untestable`` make its row for a run."""

    claim_id: str
    claim: str
    paper_ref: str
    statistic: str
    criterion: str

    def row(self, value: float, verdict: str, n: int, detail: str = "") -> dict:
        return {
            "claim_id": self.claim_id,
            "claim": self.claim,
            "paper_ref": self.paper_ref,
            "statistic": self.statistic,
            "value": float(value),
            "criterion": self.criterion,
            "verdict": verdict,
            "n": int(n),
            "detail": detail,
        }

    def judged(self, value: float, passed: bool, n: int, detail: str = "") -> dict:
        """Row whose verdict the criterion decided: ``passed`` -> supported, else not."""
        return self.row(value, SUPPORTED if passed else NOT_SUPPORTED, n, detail)

    def untestable(self, reason: str, *, value: float = math.nan, n: int = 0) -> dict:
        """Row for a claim the run cannot decide; ``reason`` goes to ``detail``."""
        return self.row(value, NOT_TESTABLE, n, reason)


def claims_frame(rows: Iterable[Mapping]) -> pd.DataFrame:
    """DataFrame of claim rows with the columns ``COLUMNS`` in order, validated."""
    frame = pd.DataFrame.from_records(list(rows), columns=COLUMNS)
    frame["value"] = frame["value"].astype("float64")
    frame["n"] = frame["n"].astype("int64")
    for col in _TEXT_COLUMNS:
        frame[col] = frame[col].fillna("").astype(str)
    check_claims(frame)
    return frame


def check_claims(frame: pd.DataFrame) -> None:
    """Raise ValueError if ``frame`` is not a valid claims table.

    Checks: the columns are exactly ``COLUMNS`` in that order; claim ids are unique slugs;
    no text contains '|' (the table is also written as Markdown, where it splits a cell);
    every verdict is in ``VERDICTS``; a supported / not supported verdict has a value (not
    NaN; +-inf is allowed, e.g. a ratio over an exactly collapsed variance) and a criterion;
    ``n`` is a non-negative integer; a not-testable row says why (detail).
    """
    cols = list(frame.columns)
    if cols != COLUMNS:
        missing = [c for c in COLUMNS if c not in cols]
        extra = [c for c in cols if c not in COLUMNS]
        raise ValueError(
            f"claims table columns must be {COLUMNS} in this order; "
            f"missing {missing}, unexpected {extra}, got {cols}"
        )
    bad_ids = [i for i in frame["claim_id"] if not (isinstance(i, str) and _SLUG.match(i))]
    if bad_ids:
        raise ValueError(f"claim_id must be a slug ([a-z0-9_]); got {bad_ids}")
    dupes = frame["claim_id"][frame["claim_id"].duplicated()].tolist()
    if dupes:
        raise ValueError(f"duplicate claim_id: {dupes}")
    for col in _TEXT_COLUMNS:
        piped = [i for i, v in zip(frame["claim_id"], frame[col], strict=True) if "|" in str(v)]
        if piped:
            raise ValueError(f"'|' in column {col!r} of {piped} would break the Markdown table")
    bad = sorted({str(v) for v in frame["verdict"] if v not in VERDICTS})
    if bad:
        raise ValueError(f"unknown verdict(s) {bad}; expected one of {list(VERDICTS)}")
    for _, r in frame.iterrows():
        where = f"claim {r['claim_id']!r}"
        n = r["n"]
        if isinstance(n, bool) or not isinstance(n, numbers.Real) or not n >= 0 or n != int(n):
            raise ValueError(f"{where}: n must be a non-negative integer, got {n!r}")
        if r["verdict"] == NOT_TESTABLE:
            if not str(r["detail"]).strip():
                raise ValueError(f"{where}: a not-testable verdict needs its reason in detail")
            continue
        value = r["value"]
        if not isinstance(value, numbers.Real) or math.isnan(value):
            raise ValueError(f"{where}: verdict {r['verdict']!r} needs a value (not NaN)")
        if not str(r["criterion"]).strip():
            raise ValueError(f"{where}: verdict {r['verdict']!r} needs a criterion")


def note(config: dict | None, module: str) -> str:
    """The text above a rendered claims table: preset, vocabulary, where the rules live."""
    preset = (config or {}).get("preset", "?")
    return (
        f"Preset '{preset}'. Verdicts: {SUPPORTED} / {NOT_SUPPORTED} / {NOT_TESTABLE} "
        "(detail says why). `value` is the `statistic`; `criterion` turns it into the verdict. "
        f"The thresholds are constants in `{module}`, fixed from the paper's wording."
    )


def disabled_reason(config: dict | None, study: str, *path: str, part: str = "experiment"):
    """Why study `study`, or its part at config path `path` (e.g. "pairs", "fig11"), has no
    runs: it, or a block on the way, is switched off (`enabled: false`) in this
    configuration; else None. `part` names what the last key is (experiment, pair). A
    block without the key (a test's partial config) switches nothing off."""
    node = (config or {}).get(study) or {}
    if not node.get("enabled", True):
        return f"{study} is disabled in this configuration ({study}.enabled: false)"
    for depth, key in enumerate(path, start=1):
        node = node.get(key) or {}
        if not node.get("enabled", True):
            return (
                f"{part} '{key}' is disabled in this configuration "
                f"({'.'.join((study, *path[:depth]))}.enabled: false)"
            )
    return None


def fmt(x: float, digits: int = 3) -> str:
    """Compact number for ``detail`` texts: ``digits`` significant digits; 'nan', 'inf'."""
    if x is None or math.isnan(float(x)):
        return "nan"
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.{digits}g}"
    return f"{x:.{max(digits - 1, 0)}e}"
