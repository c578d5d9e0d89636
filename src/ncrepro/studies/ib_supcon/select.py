"""Reading the ib_supcon long table: the pair analysis rows of each experiment, per pair
and checkpoint, in the shapes the tables, figures and claims use (one place, so a table
and a claim about the same number read it the same way)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ncrepro.studies.ib_supcon.runs import (
    IB,
    IN_DOMAIN,
    OWN,
    PAIR_PROBE,
    RANKED,
    RAW,
    TARGET,
    ZERO_SHOT,
)

__all__ = ["IN_DOMAIN", "ZERO_SHOT", "OWN", "TARGET", "RAW", "RANKED", "IB"]


def pair_rows(table: pd.DataFrame, experiment: str, task: str = OWN) -> pd.DataFrame:
    """The pair-analysis rows (probe ib_pair) of `experiment`'s pairs for `task`."""
    if "probe" not in table or "task" not in table:
        return table.iloc[0:0]
    rows = table[
        (table["experiment"] == experiment)
        & (table["probe"] == PAIR_PROBE)
        & (table["task"] == task)
    ]
    return rows.copy()


def pairs(rows: pd.DataFrame) -> list[dict]:
    """One dict per pair (model-1 run) in the rows, in first-appearance order: run,
    dataset, paper_dataset, eval_dataset, final_step, d (the representation's width)."""
    out = []
    for run, group in rows.groupby("run", sort=False):
        dim = group.loc[group["metric"] == "representation_dim", "value"]
        final = int(group["step"].max())
        out.append(
            {
                "run": run,
                "dataset": group["dataset"].iloc[0],
                "paper_dataset": group["paper_dataset"].iloc[0]
                if "paper_dataset" in group
                else group["dataset"].iloc[0],
                "eval_dataset": group["eval_dataset"].iloc[0],
                "final_step": final,
                "d": int(dim.iloc[0]) if len(dim) else -1,
            }
        )
    return out


def _match(rows, metric, split, model, representation, dims):
    keep = (rows["metric"] == metric) & (rows["split"] == split)
    if model is not None:
        keep &= rows["model"] == model
    if representation is not None:
        keep &= rows["representation"] == representation
    if dims is not None:
        keep &= rows["dims"] == dims
    return rows[keep]


def value(rows, run, step, metric, *, split="test", model=None, representation=None, dims=None):
    """The one value of `metric` for (run, step) (NaN if absent)."""
    sub = _match(
        rows[(rows["run"] == run) & (rows["step"] == step)],
        metric,
        split,
        model,
        representation,
        dims,
    )
    return float(sub["value"].iloc[0]) if len(sub) else math.nan


def series(rows, run, metric, *, split="test", model=None, representation=None, dims=None):
    """`metric` of one pair over its checkpoints: a frame step, epoch, value, dims."""
    sub = _match(rows[rows["run"] == run], metric, split, model, representation, dims)
    return sub.sort_values("step")[["step", "epoch", "value", "dims"]].reset_index(drop=True)


def components(rows, run, step, metric, *, split="train", dims=None) -> np.ndarray:
    """Per-component values (cca_coefficient, ib_eigenvalue, ib_alpha_relative) of one
    checkpoint, in component order."""
    sub = rows[(rows["run"] == run) & (rows["step"] == step) & (rows["metric"] == metric)]
    sub = sub[sub["split"] == split]
    if dims is not None:
        sub = sub[sub["dims"] == dims]
    return sub.sort_values("component")["value"].to_numpy(float)


def ib_dims(rows, run, step) -> float:
    """The dimension count of the K-dim IB scored at a checkpoint (min(K, rank))."""
    sub = rows[
        (rows["run"] == run)
        & (rows["step"] == step)
        & (rows["metric"] == "linear_accuracy")
        & (rows["representation"] == IB)
    ]
    return float(sub["dims"].max()) if len(sub) else math.nan


def num_classes(config: dict, dataset: str) -> int | None:
    """K of a dataset key, from its params (synth) or the registry."""
    from ncrepro.data.registry import DATASETS

    entry = config["datasets"].get(dataset, {})
    if entry.get("source") == "synth":
        return int(entry.get("params", {}).get("num_classes", 10))
    info = DATASETS.get(entry.get("source"))
    return None if info is None else info.num_classes
