"""lpc tables 1, 2 and 4 (the paper's numbering), from the study's long table.

Every cell is the mean ± sample std over seeds of the best-LR run per seed (see
`ncrepro.studies.lpc.report`) at its last checkpoint. The CSV keeps the means and stds
at full precision in their own columns; the Markdown shows "mean ± std". `cells` lets
`ncrepro audit --cell ROW COLUMN` list the per-seed values behind every mean column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncrepro.published import load_published, side_by_side
from ncrepro.studies import TableOutput
from ncrepro.studies.lpc.models import BINARITY_MODELS, NAMES
from ncrepro.studies.lpc.report import (
    final_values,
    mean_std_text,
    model_order,
    section_order,
    select_runs,
    settings_sentence,
    stand_in_sentence,
)

# (column, metric, split, header) of each table. Which split Table 1 reports is not
# stated in the paper (its code computes both): collapse quantities on the train
# features (where collapse is defined), entropy on the test features.
TABLE1 = [
    ("nc1_per_dim", "nc1_per_dim", "train", "NC1/d (train)"),
    ("separation_ratio", "separation_ratio", "train", "separation ratio (train)"),
    ("norm_cv", "norm_cv", "train", "CV of norms (train)"),
    ("entropy", "entropy", "test", "entropy/d (test)"),
]
TABLE2 = [
    ("robustness", "deepfool_robustness", "test", "DeepFool robustness"),
    ("accuracy", "accuracy", "test", "test accuracy"),
]


def _grid(table: pd.DataFrame, columns, models=None):
    """(frame with mean/std/n per column, raw values per cell, rows used)."""
    selected = select_runs(table)
    sections = section_order(table)
    models = model_order(models if models is not None else table["model"].unique())
    records, cells, used = [], {}, []
    values = {
        col: final_values(table, selected, metric, split) for col, metric, split, _ in columns
    }
    for section in sections:
        for model in models:
            record = {"dataset": section, "model": model}
            chosen = selected[(selected["paper_dataset"] == section) & (selected["model"] == model)]
            record["n_seeds"] = len(chosen)
            record["lrs"] = ", ".join(f"{lr:g}" for lr in sorted(chosen["lr"].unique()))
            row_index = len(records)
            for col, _metric, _split, header in columns:
                v = values[col]
                cell = v[(v["paper_dataset"] == section) & (v["model"] == model)]
                mean = float(cell["value"].mean()) if len(cell) else np.nan
                std = float(cell["value"].std(ddof=1)) if len(cell) > 1 else np.nan
                record[f"{col}_mean"], record[f"{col}_std"] = mean, std
                record[header] = mean_std_text(mean, std)
                cells[f"{row_index}|{col}_mean"] = cell[["run", "seed", "value"]].to_dict("records")
            records.append(record)
    for _col, metric, split, _ in columns:
        used.append(
            table[
                (table["metric"] == metric)
                & (table["split"] == split)
                & table["run"].isin(selected["run"])
            ]
        )
    rows = pd.concat(used, ignore_index=True) if used else table.iloc[:0]
    return pd.DataFrame(records), cells, rows


def _note(config: dict, extra: str) -> str:
    return extra + settings_sentence(config) + stand_in_sentence(config)


def table1(table: pd.DataFrame, config: dict) -> TableOutput:
    frame, cells, rows = _grid(table, TABLE1)
    note = _note(
        config,
        "Within-class variation NC1/d = Tr(Sigma_W Sigma_B^+)/(K d) (pooled Sigma_W, Sigma_B^+ "
        "from its top K-1 eigenpairs, true labels, clean train images); class separation "
        "ratio = mean over samples of (distance to the nearest other class mean)/(distance "
        "to its own); CV of ||z|| over samples; Kozachenko-Leonenko entropy (k = 20, "
        "standardized features) per dimension, in nats. The paper does not say which split "
        "Table 1 uses; both are in the long table. ",
    )
    return TableOutput(
        frame=frame,
        title="lpc Table 1: latent point collapse at the last checkpoint (mean ± std over seeds)",
        note=note,
        markdown_columns=["dataset", "model", *[c[3] for c in TABLE1], "lrs"],
        rows=rows,
        cells=cells,
    )


def table2(table: pd.DataFrame, config: dict) -> TableOutput:
    frame, cells, rows = _grid(table, TABLE2)
    d = config["lpc"]["deepfool"]
    note = _note(
        config,
        "Robustness: DeepFool minimal perturbation ||r||_2/||x||_2 on normalized inputs, "
        f"averaged over {d['n_images']} random test images at the last checkpoint "
        f"(overshoot {d['overshoot']}, at most {d['max_iter']} iterations, the "
        f"{d['num_candidates']} top classes as candidates, the predicted label). ",
    )
    return TableOutput(
        frame=frame,
        title="lpc Table 2: robustness and generalization (mean ± std over seeds)",
        note=note,
        markdown_columns=["dataset", "model", *[c[3] for c in TABLE2], "lrs"],
        rows=rows,
        cells=cells,
    )


# Table 4's columns: (published column, our statistic over (node, seed) pairs).
TABLE4_COLUMNS = [
    "score",
    "score std",
    "min score",
    "peak distance",
    "peak distance std",
    "min peak distance",
    "abs cv",
]


def _cell(values: pd.DataFrame, section: str, model: str) -> pd.DataFrame:
    return values[(values["paper_dataset"] == section) & (values["model"] == model)]


def _pooled(means: np.ndarray, stds: np.ndarray) -> float:
    """Population std over all (node, seed) values from each seed's mean and population
    std over its d nodes (equal d per seed): sqrt(mean(s²) + var(m))."""
    return float(np.sqrt(np.mean(stds**2) + np.var(means)))


def table4_values(table: pd.DataFrame) -> pd.DataFrame:
    """(section, model, column, value, seeds): Table 4's statistics over all nodes of the
    selected runs' last checkpoints (train split): mean and std over (node, seed) pairs,
    min over them, and the mean over seeds of the CV of |z|."""
    selected = select_runs(table)
    metrics = {
        "score_mean": "binarity_score_mean",
        "score_std": "binarity_score_std",
        "score_min": "binarity_score_min",
        "peak_mean": "binarity_peak_distance_mean",
        "peak_std": "binarity_peak_distance_std",
        "peak_min": "binarity_peak_distance_min",
        "abs_cv": "abs_cv",
    }
    finals = {k: final_values(table, selected, m, "train") for k, m in metrics.items()}
    out = []
    for section in section_order(table):
        for model in model_order(m for m in table["model"].unique() if m in BINARITY_MODELS):
            parts = {
                k: _cell(f, section, model).sort_values("seed")["value"].to_numpy()
                for k, f in finals.items()
            }
            n = len(parts["score_mean"])
            if n == 0:
                continue
            stats = {
                "score": parts["score_mean"].mean(),
                "score std": _pooled(parts["score_mean"], parts["score_std"]),
                "min score": parts["score_min"].min(),
                "peak distance": parts["peak_mean"].mean(),
                "peak distance std": _pooled(parts["peak_mean"], parts["peak_std"]),
                "min peak distance": parts["peak_min"].min(),
                "abs cv": parts["abs_cv"].mean() if len(parts["abs_cv"]) else np.nan,
            }
            for column, value in stats.items():
                out.append(
                    {
                        "section": section,
                        "model": model,
                        "column": column,
                        "value": float(value),
                        "seeds": n,
                    }
                )
    return pd.DataFrame(out, columns=["section", "model", "column", "value", "seeds"])


def table4(table: pd.DataFrame, config: dict) -> TableOutput:
    """Binarity (Appendix D) beside the published Table 4 (published/lpc.csv, declared as
    this table's input `published`)."""
    ours = table4_values(table)
    reproduced = pd.DataFrame(
        {
            "table": "Table 4",
            "row": ours["section"] + " " + ours["model"],
            "column": ours["column"],
            "value": ours["value"],
        }
    )
    path = (config.get("inputs") or {}).get("published")
    published = load_published("lpc", path.parent) if path is not None else load_published("lpc")
    merged = side_by_side(reproduced, published[published["table"] == "Table 4"])
    # the paper's order: dataset, then Table 3's model order, then Table 4's columns
    parts = merged["row"].str.partition(" ")
    merged["_section"] = parts[0]
    merged["_model"] = [NAMES.index(m) if m in NAMES else len(NAMES) for m in parts[2]]
    merged["_col"] = merged["column"].map({c: i for i, c in enumerate(TABLE4_COLUMNS)})
    merged = merged.sort_values(["_section", "_model", "_col"], kind="stable")
    merged = merged.drop(columns=["_section", "_model", "_col"]).reset_index(drop=True)
    merged["note"] = np.where(
        merged["reproduced"].isna(),
        "not run in this preset",
        np.where(merged["published"].isna(), "no published value", ""),
    )
    selected = select_runs(table)
    rows = table[table["metric"].str.startswith("binarity_") | (table["metric"] == "abs_cv")]
    rows = rows[rows["run"].isin(selected["run"]) & (rows["split"] == "train")]
    note = (
        "Per penultimate dimension, a 2-component Gaussian mixture on the standardized train "
        "features of the last checkpoint: score = mean log-likelihood per sample (a unimodal "
        "Gaussian dimension scores -1.419), peak distance = |m1 - m2| / mean component std. "
        "Mean, std and min over all (dimension, seed) pairs; abs cv = std/mean of |z|, mean "
        "over seeds. Published: the paper's Table 4 (published/lpc.csv); the paper computes "
        "its train features on augmented images, ours are clean. Rows of a section this "
        "preset does not run have no reproduced value. "
        + settings_sentence(config)
        + stand_in_sentence(config)
    )
    return TableOutput(
        frame=merged,
        title="lpc Table 4: binarity of the penultimate layer, reproduced beside published",
        note=note,
        markdown_columns=["row", "column", "published", "reproduced", "difference", "note"],
        rows=rows,
    )
