"""What the lpc tables, figures and claims share: the best-LR selection of the paper and
per-model values at the final checkpoint.

Selection (Appendix C: "The best session on the test set (in the final epoch) was
selected"; the code's `find_best_results.py`): for every (dataset, model, seed), the run
of the LR grid with the highest test accuracy at its last checkpoint. The selection uses
the test set, as the paper's does; captions say so. Diverged runs are never selected.

Every per-model number is the mean over the selected runs of the seeds, with the sample
standard deviation (ddof 1; NaN for one seed) — "mean and standard deviation of those
trials" (Appendix C).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ncrepro.studies.lpc.models import NAMES

SELECT_METRIC, SELECT_SPLIT = "accuracy", "test"
STD_DDOF = 1


def model_order(models) -> list[str]:
    """Models in the paper's Table 3 order."""
    present = set(models)
    return [m for m in NAMES if m in present]


def section_order(table: pd.DataFrame) -> list[str]:
    """The dataset sections (paper_dataset) in the config's order of appearance."""
    return list(dict.fromkeys(table["paper_dataset"])) if "paper_dataset" in table else []


def final_step(table: pd.DataFrame) -> pd.Series:
    """The last checkpoint step of every run that has metric rows."""
    return table[table["metric"] == SELECT_METRIC].groupby("run")["step"].max()


def select_runs(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (paper_dataset, model, seed): the selected run, its lr and the final
    test accuracy that selected it, and how many LRs competed."""
    last = final_step(table)
    rows = table[
        (table["metric"] == SELECT_METRIC)
        & (table["split"] == SELECT_SPLIT)
        & (table["step"] == table["run"].map(last))
        & (table["status"] != "diverged")
    ]
    rows = rows[np.isfinite(rows["value"].astype(float))]
    columns = ["paper_dataset", "dataset", "model", "seed", "run", "lr", "value"]
    if rows.empty:
        return pd.DataFrame(columns=[*columns, "n_lrs"])
    rows = rows[columns].drop_duplicates("run")
    n_lrs = table.groupby(["paper_dataset", "model", "seed"])["lr"].nunique()
    best = rows.sort_values(["value", "lr"], ascending=[False, True], kind="stable")
    best = best.groupby(["paper_dataset", "model", "seed"], sort=False).head(1)
    best = best.rename(columns={"value": "test_accuracy"})
    best["n_lrs"] = [
        n_lrs[(d, m, s)] for d, m, s in zip(best.paper_dataset, best.model, best.seed, strict=True)
    ]
    return best.reset_index(drop=True)


def final_values(
    table: pd.DataFrame, selected: pd.DataFrame, metric: str, split: str
) -> pd.DataFrame:
    """(paper_dataset, model, seed, run, value) of `metric` on `split` at the last
    checkpoint of each selected run (probe rows count at their own step)."""
    rows = table[
        (table["metric"] == metric) & (table["split"] == split) & table["run"].isin(selected["run"])
    ]
    rows = rows.loc[rows.groupby("run")["step"].idxmax()] if not rows.empty else rows
    keep = ["paper_dataset", "model", "seed", "run", "value"]
    return rows[keep].reset_index(drop=True)


def summary(values: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1) and count over seeds per (paper_dataset, model)."""
    if values.empty:
        return pd.DataFrame(columns=["paper_dataset", "model", "mean", "std", "n"])
    grouped = values.groupby(["paper_dataset", "model"], sort=False)["value"]
    out = grouped.agg(
        mean="mean", std=lambda v: v.std(ddof=STD_DDOF) if len(v) > 1 else np.nan, n="count"
    )
    return out.reset_index()


def per_model(table: pd.DataFrame, selected: pd.DataFrame, metric: str, split: str) -> dict:
    """{(paper_dataset, model): mean over seeds} of a final value."""
    s = summary(final_values(table, selected, metric, split))
    return {(d, m): v for d, m, v in zip(s["paper_dataset"], s["model"], s["mean"], strict=True)}


def curves(table: pd.DataFrame, selected: pd.DataFrame, metric: str, split: str) -> pd.DataFrame:
    """(paper_dataset, model, epoch, mean, std, n) of `metric` over the checkpoints of the
    selected runs."""
    rows = table[
        (table["metric"] == metric) & (table["split"] == split) & table["run"].isin(selected["run"])
    ]
    if rows.empty:
        return pd.DataFrame(columns=["paper_dataset", "model", "epoch", "mean", "std", "n"])
    grouped = rows.groupby(["paper_dataset", "model", "epoch"], sort=False)["value"]
    out = grouped.agg(mean="mean", std=lambda v: v.std(ddof=0), n="count").reset_index()
    return out.sort_values(["paper_dataset", "model", "epoch"]).reset_index(drop=True)


def convergence_epochs(
    table: pd.DataFrame, selected: pd.DataFrame, threshold: float
) -> dict[tuple[str, str], float]:
    """{(paper_dataset, model): mean over the seeds that got there of the first checkpoint
    epoch with train accuracy >= threshold} (Fig. 5's dashed lines; the start of the
    terminal phase of training, Papyan et al.: 99.9 %)."""
    rows = table[
        (table["metric"] == "accuracy")
        & (table["split"] == "train")
        & table["run"].isin(selected["run"])
        & (table["value"] >= threshold)
    ]
    first = rows.groupby(["paper_dataset", "model", "run"])["epoch"].min().reset_index()
    means = first.groupby(["paper_dataset", "model"])["epoch"].mean()
    return {key: float(v) for key, v in means.items()}


def mean_std_text(mean: float, std: float, digits: int = 3) -> str:
    """'m ± s' in `digits` significant digits ('m' alone without a std)."""
    from ncrepro.figures import compact_number

    if not np.isfinite(mean):
        return "—"
    if not np.isfinite(std):
        return compact_number(mean)
    return f"{compact_number(mean)} ± {compact_number(std)}"


def stand_in_sentence(config: dict) -> str:
    """What stood in for the paper's datasets and backbones (empty at paper scale)."""
    block = config["lpc"]
    parts = []
    for entry in block["datasets"]:
        if config["datasets"][entry["dataset"]].get("stands_in_for"):
            source = config["datasets"][entry["dataset"]]["source"]
            parts.append(f"'{entry['dataset']}' ({source}) stands in for {entry['paper_dataset']}")
        if entry.get("arch_stands_in_for"):
            parts.append(f"{entry['arch']} stands in for {entry['arch_stands_in_for']}")
    if block["width"] != 1:
        parts.append(f"backbone channel width x{block['width']}")
    return ("Stand-ins: " + "; ".join(parts) + ". ") if parts else ""


def schedule_text(schedule) -> str:
    """An LR schedule in words."""
    if isinstance(schedule, str):
        return schedule
    if schedule["name"] != "step":
        return schedule["name"]
    every = schedule["every"]
    return (
        f"x{schedule.get('factor', 0.5):g} every {every} epochs from epoch "
        f"{schedule.get('start', every)}"
    )


def settings_sentence(config: dict) -> str:
    """The training settings every lpc caption states."""
    block = config["lpc"]
    t, p = block["training"], block["penalty"]
    heads = "; ".join(
        f"{e['paper_dataset']}: "
        + "/".join(str(e["head_widths"][w]) for w in ("intermediate", "wide", "narrow"))
        for e in block["datasets"]
    )
    lrs = ", ".join(f"{lr:g}" for lr in block["lrs"])
    return (
        f"Preset '{config['preset']}': {t['epochs']} epochs, batch {t['batch_size']}, AdamW "
        f"(weight decay {t['weight_decay']:g}), LR grid {{{lrs}}}, seeds {block['seeds']}, "
        f"LR {schedule_text(t['lr_schedule'])} (the classifier's: "
        f"{schedule_text(t.get('classifier_lr_schedule') or t['lr_schedule'])}), augmentation "
        f"{t['augment']}; "
        f"gamma = min({p['gamma']:g} x {p.get('gamma_factor', 1):g}^epoch, "
        f"{p.get('gamma_max', math.inf):g}); "
        f"penultimate widths (intermediate/wide/narrow) {heads}. Best LR per seed by final test "
        "accuracy (the selection uses the test set, as the paper's). "
    )
